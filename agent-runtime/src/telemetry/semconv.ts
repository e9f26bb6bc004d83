// Names from the OpenTelemetry GenAI semantic conventions that the spans and
// histograms use. They are written out here rather than imported: this
// package resolves modules the node10 way, which cannot see
// `@opentelemetry/semantic-conventions/incubating` (an `exports`-only
// subpath) where the GenAI names live, and the stable entry point has none of
// them. Stable names (error.type, server.address, ...) come from the package.

export const GEN_AI_OPERATION_NAME = 'gen_ai.operation.name';
export const GEN_AI_PROVIDER_NAME = 'gen_ai.provider.name';
export const GEN_AI_REQUEST_MODEL = 'gen_ai.request.model';
export const GEN_AI_REQUEST_MAX_TOKENS = 'gen_ai.request.max_tokens';
export const GEN_AI_REQUEST_TEMPERATURE = 'gen_ai.request.temperature';
export const GEN_AI_RESPONSE_MODEL = 'gen_ai.response.model';
export const GEN_AI_RESPONSE_ID = 'gen_ai.response.id';
export const GEN_AI_RESPONSE_FINISH_REASONS = 'gen_ai.response.finish_reasons';
export const GEN_AI_USAGE_INPUT_TOKENS = 'gen_ai.usage.input_tokens';
export const GEN_AI_USAGE_OUTPUT_TOKENS = 'gen_ai.usage.output_tokens';
export const GEN_AI_AGENT_NAME = 'gen_ai.agent.name';
export const GEN_AI_AGENT_ID = 'gen_ai.agent.id';

/** `gen_ai.operation.name` values. */
export const OPERATION_CHAT = 'chat';
export const OPERATION_INVOKE_AGENT = 'invoke_agent';

/**
 * `gen_ai.provider.name`: the runtime speaks OpenAI's chat completions API
 * to its upstream (a provider or a gateway in front of several), so its
 * telemetry has the `openai` flavour.
 */
export const PROVIDER_OPENAI = 'openai';

/** Bucket boundaries the conventions advise for gen_ai.client.token.usage (tokens, powers of 4). */
export const TOKEN_USAGE_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
/** Bucket boundaries the conventions advise for gen_ai.client.operation.duration (seconds, powers of 2 from 10 ms). */
export const OPERATION_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
