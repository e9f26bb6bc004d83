#!/usr/bin/env node
import { startAgent } from './agent';
import { ConfigError, loadRuntimeSettings } from './config';
import { runLocalCli } from './local/launcher';
import { runMockUpstreamCli } from './mock/cli';

const USAGE = `agent-runtime <command>

  serve           run one agent from the environment (AGENT_CONFIG_FILE, AGENT_ROLE, ...)
  local           run a synthesized topology as local processes:
                    --manifests dist/<topology>.k8s.yaml --upstream-url <url> [--replicas N]
                    [--node-arg=<flag>]... (e.g. --node-arg=--cpu-prof for every agent)
                    [--mcp-url <server>=<url>]... (e.g. docs=http://127.0.0.1:8765/mcp, a local mcp-docs)
                    [--api-keys <keys.json>] (without it the entry's API runs open)
                    [--nats-url <url>] (the job store's NATS; default: a nats-server from PATH
                    when the manifests name a job store)
                    [--no-mtls] (plain-text gRPC between agents; default: mTLS with a throwaway CA)
                  prints 'agent <pod> pid <pid> http <port> grpc <port>' per agent process start
                  (dead agents are started again) and 'ready <entry URL>' once all are ready
  mock-upstream   a local OpenAI-compatible mock: [--port N] [--latency-ms N] [--error-rate F] [--api-key K]
  mcp-docs        an MCP server (Streamable HTTP) over the in-repo docs, tools search_docs and get_doc:
                    [--port N] [--host H] [--docs DIR] [--token-env NAME (require that bearer token)]
`;

async function serve(): Promise<void> {
  let settings;
  try {
    settings = loadRuntimeSettings();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`agent-runtime: invalid configuration: ${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
  let agent;
  try {
    agent = await startAgent(settings.config, settings.env);
  } catch (e) {
    // what only booting can check (keys.json, the job store, the mTLS files) is a configuration problem too
    if (e instanceof ConfigError) {
      process.stderr.write(`agent-runtime: invalid configuration: ${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
  const stop = () => {
    void agent.shutdown().then(
      () => process.exit(0),
      (e: Error) => {
        process.stderr.write(`agent-runtime: shutdown failed: ${e.message}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve();
    case 'local':
      return runLocalCli(rest);
    case 'mock-upstream':
      return runMockUpstreamCli(rest);
    case 'mcp-docs':
      // loaded here so `serve` does not pay for the MCP server side of the SDK
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return (require('./tools/docs-server') as typeof import('./tools/docs-server')).runDocsMcpCli(rest);
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE);
      return;
    default:
      process.stderr.write(`agent-runtime: unknown command '${command}'\n\n${USAGE}`);
      process.exit(2);
  }
}

main(process.argv.slice(2)).catch((e: Error) => {
  process.stderr.write(`agent-runtime: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
