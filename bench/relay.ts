// A do-nothing HTTP relay, the baseline for "two processes in the path":
// `ts-node bench/relay.ts <upstream origin>` listens on a free port, prints
// `listening <url>`, and forwards every request to the upstream as it came
// (method, path, headers, body) and the answer back as it came. Two of them
// in a chain have the shape of the path through the agents (entry, worker)
// with none of its work, so the latency they add is the floor any design
// with two hops pays on this machine.
import { createServer } from 'node:http';
import { Pool } from 'undici';

const pool = new Pool(process.argv[2], { connections: 64, pipelining: 1 });
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    pool
      .request({ method: req.method as 'POST', path: req.url!, headers: { 'content-type': req.headers['content-type'] ?? 'application/json', 'authorization': req.headers.authorization ?? '' }, body: Buffer.concat(chunks) })
      .then(async (up) => {
        const body = Buffer.from(await up.body.arrayBuffer());
        res.writeHead(up.statusCode, { 'content-type': String(up.headers['content-type'] ?? 'application/json'), 'content-length': body.length });
        res.end(body);
      })
      .catch((e: Error) => {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `relay: ${e.message}` } }));
      });
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const addr = server.address() as { port: number };
  process.stdout.write(`listening http://127.0.0.1:${addr.port}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  void pool.close().then(() => process.exit(0));
});
