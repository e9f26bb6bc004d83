import { NatsServer, NatsServerOptions, startNatsServer } from '../../src/local/nats';

/**
 * Starts a real `nats-server` (JetStream on, temp store) for a test. When the
 * binary is missing this throws the install message: tests that need NATS
 * fail with `apt-get install -y nats-server`, they never skip.
 */
export function startTestNats(opts: NatsServerOptions = {}): Promise<NatsServer> {
  return startNatsServer(opts);
}

/**
 * One server for a whole test file: started in beforeAll, stopped in afterAll.
 * Read `.server` (or `.url`) inside tests, not at module load.
 *
 *   const nats = useNatsServer();
 *   test('...', async () => { const nc = await connect({ servers: nats.url }); ... });
 */
export function useNatsServer(opts: NatsServerOptions = {}): { readonly server: NatsServer; readonly url: string } {
  let server: NatsServer | undefined;
  beforeAll(async () => {
    server = await startNatsServer(opts);
  });
  afterAll(async () => {
    await server?.stop();
  });
  const get = () => {
    if (!server) throw new Error('useNatsServer: the server did not start (see the beforeAll error above)');
    return server;
  };
  return {
    get server() {
      return get();
    },
    get url() {
      return get().url;
    },
  };
}
