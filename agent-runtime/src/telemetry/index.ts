// Tracing is switched by the standard OTEL_* variables alone. This module is
// what the rest of the runtime imports: it reads the environment and, only
// when an OTLP endpoint is set, loads the OpenTelemetry SDK (./tracer). With
// no endpoint nothing of the SDK is required, and every call site holds
// `undefined` instead of a tracer, so the hot paths pay one comparison.

import type { AgentTracer, TracerIdentity } from './tracer';

export type { AgentTracer, TracerIdentity, TraceCarrier, TraceContext } from './tracer';

/**
 * The OTLP endpoint spans go to, or undefined when tracing is off: no
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` nor `OTEL_EXPORTER_OTLP_ENDPOINT`, or
 * `OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER=none`.
 */
export function tracesEndpoint(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return undefined;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (exporters[0] === 'none') return undefined;
  const endpoint = (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT || '').trim();
  return endpoint === '' ? undefined : endpoint;
}

/**
 * Starts the OpenTelemetry SDK for this process when the environment names
 * an endpoint (exporter, protocol, sampler, batch sizes: all from OTEL_*),
 * and returns the runtime's tracer; returns undefined, loading nothing, when
 * tracing is off.
 */
export function startTracing(identity: TracerIdentity, env: NodeJS.ProcessEnv = process.env): AgentTracer | undefined {
  if (tracesEndpoint(env) === undefined) return undefined;
  // required here, not imported at the top: the SDK takes about a second to load
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { AgentTracer: Tracer } = require('./tracer') as typeof import('./tracer');
  return Tracer.start(identity);
}
