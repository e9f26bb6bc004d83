import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { parseAllDocuments } from 'yaml';
import { findNatsServer, NatsServerNotFoundError } from '../src/local/nats';
import { freePort } from '../src/local/ports';
import { synthesizedManifests } from './support/cluster';

// The nats-server config the constructs synthesize for JobStore.jetStream()
// (the ConfigMap of the hub-and-spoke example), run as three local servers:
// only addresses and the store directory are rewritten. It must form a
// JetStream cluster that holds a 3-replica work-queue stream and KV bucket
// under the names the agents' configs carry, and its monitoring endpoint
// must show the consumer's pending count where KEDA's nats-jetstream scaler
// reads it (account $G).

interface Node { child: ChildProcess; client: number; monitor: number; exited: Promise<void> }
const nodes: Node[] = [];
const dirs: string[] = [];

afterAll(async () => {
  for (const n of nodes) {
    n.child.kill('SIGTERM');
    await n.exited;
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('the synthesized JetStream config forms a 3-server cluster that keeps the job stream, consumer and KV with 3 replicas; /jsz shows the pending count', async () => {
  const binary = findNatsServer();
  if (!binary) throw new NatsServerNotFoundError(process.env.PATH ?? '');
  const file = synthesizedManifests({ jobStore: { jetStream: {} } })['hub-and-spoke'];
  const docs = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJSON() as { kind: string; metadata: { name: string }; data?: Record<string, string> });
  const conf = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name.endsWith('-nats-config'))!.data!['nats.conf'];
  const agentConfig = JSON.parse(docs.find((d) => d.kind === 'ConfigMap' && d.data?.['agent-config.json'])!.data!['agent-config.json']) as { jobStore: { stream: string; consumer: string; bucket: string; replicas: number } };
  const { stream, consumer, bucket, replicas } = agentConfig.jobStore;
  expect(replicas).toBe(3);
  const routeHosts = [...conf.matchAll(/nats:\/\/([^:\s]+):6222/g)].map((m) => m[1]);
  expect(routeHosts).toHaveLength(3);

  const ports = await Promise.all([0, 1, 2].map(async () => ({ client: await freePort(), route: await freePort(), monitor: await freePort() })));
  for (let i = 0; i < 3; i++) {
    const dir = mkdtempSync(path.join(os.tmpdir(), `nats-node-${i}-`));
    dirs.push(dir);
    let local = conf
      .replace('listen: 0.0.0.0:4222', `listen: 127.0.0.1:${ports[i].client}`)
      .replace('http: 0.0.0.0:8222', `http: 127.0.0.1:${ports[i].monitor}`)
      .replace('store_dir: /data', `store_dir: ${dir}`)
      .replace('listen: 0.0.0.0:6222', `listen: 127.0.0.1:${ports[i].route}`);
    routeHosts.forEach((h, j) => (local = local.replace(`nats://${h}:6222`, `nats://127.0.0.1:${ports[j].route}`)));
    writeFileSync(path.join(dir, 'nats.conf'), local);
    // the pod name, as the StatefulSet's downward API gives it
    const child = spawn(binary, ['-c', path.join(dir, 'nats.conf')], { env: { POD_NAME: routeHosts[i].split('.')[0] }, stdio: 'ignore' });
    nodes.push({ child, client: ports[i].client, monitor: ports[i].monitor, exited: new Promise((r) => child.once('exit', () => r())) });
  }
  // every server passes the probe the StatefulSet uses
  for (const n of nodes) {
    await until('/healthz?js-enabled-only=true', async () => ((await fetch(`http://127.0.0.1:${n.monitor}/healthz?js-enabled-only=true`)).status === 200 ? true : undefined));
  }

  const nc = await connect({ servers: nodes.map((n) => `nats://127.0.0.1:${n.client}`) });
  try {
    // JetStream answers once the servers have elected a meta leader: retry while the cluster forms
    const jsm = await until('a JetStream meta leader', () => jetstreamManager(nc, { timeout: 2000 }), 60000);
    await until('a 3-replica stream', () => jsm.streams.add({ name: stream, subjects: [`${stream}.>`], retention: RetentionPolicy.Workqueue, storage: StorageType.File, num_replicas: 3 }));
    await jsm.consumers.add(stream, { durable_name: consumer, ack_policy: AckPolicy.Explicit });
    const js = jetstream(nc);
    for (let i = 0; i < 4; i++) await js.publish(`${stream}.submit`, `job ${i}`);
    const kv = await new Kvm(nc).create(bucket, { replicas: 3 });
    const rev = await kv.create('budget', '0');
    expect(await kv.update('budget', '1', rev)).toBeGreaterThan(rev);
    const info = await jsm.streams.info(stream);
    expect(info.config.num_replicas).toBe(3);
    expect([info.cluster?.leader, ...(info.cluster?.replicas ?? []).map((r) => r.name)].sort()).toEqual(routeHosts.map((h) => h.split('.')[0]).sort());

    // what KEDA's scaler reads: the consumer under account $G, with its pending count
    const jsz = (await until('the consumer in /jsz', async () => {
      const body = (await (await fetch(`http://127.0.0.1:${nodes[0].monitor}/jsz?accounts=true&streams=true&consumers=true`)).json()) as {
        account_details?: Array<{ name: string; stream_detail?: Array<{ name: string; consumer_detail?: Array<{ name: string; num_pending: number }> }> }>;
      };
      const c = body.account_details?.find((a) => a.name === '$G')?.stream_detail?.find((s) => s.name === stream)?.consumer_detail?.find((x) => x.name === consumer);
      return c && c.num_pending === 4 ? c : undefined;
    })) as { num_pending: number };
    expect(jsz.num_pending).toBe(4);
  } finally {
    await nc.close();
  }
});
