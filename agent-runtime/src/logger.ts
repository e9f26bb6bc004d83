import pino, { Logger } from 'pino';

export type { Logger };

/** JSON logs, one line per event, tagged with the agent's id and role. */
export function createLogger(opts: { level?: string; agentId?: string; role?: string }): Logger {
  return pino({ level: opts.level ?? 'info', base: { agent: opts.agentId, role: opts.role } });
}
