import type { IncomingMessage } from 'node:http';
import type { Route } from '../http/server';
import { JobCaller, JobService } from '../jobs/job-service';
import { AgentCore } from '../server/core';
import { A2A_RPC_PATH, AGENT_CARD_PATH } from './card';
import { A2aHttp } from './http';

/**
 * The entry's A2A routes: `GET /.well-known/agent-card.json` (public: it is
 * how a client discovers the agent and its auth scheme) and `POST /a2a`
 * (JSON-RPC), whose tasks are the jobs of `jobs`. `callerOf` says who a
 * request is (the tenant of its API key, as the job routes see it), so a
 * task is visible only to the tenant that sent it.
 */
export function a2aRoutes(core: AgentCore, jobs: JobService, callerOf: (req: IncomingMessage) => JobCaller): Route[] {
  const a2a = new A2aHttp({ config: core.config, jobs, logger: core.logger });
  return [
    {
      method: 'GET',
      path: AGENT_CARD_PATH,
      name: 'a2a-card',
      handle: (c) => {
        const card = a2a.card(c.req);
        c.send(card.status, card.body);
      },
    },
    {
      method: 'POST',
      path: A2A_RPC_PATH,
      name: 'a2a',
      handle: async (c) => {
        if (core.lifecycle.draining) {
          c.req.resume();
          return c.fail(503, `agent ${core.env.agentId} is draining; retry on another pod`);
        }
        const raw = await c.body();
        await a2a.rpc(c, raw, callerOf(c.req));
      },
    },
  ];
}
