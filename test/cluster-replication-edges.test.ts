// createCluster over a primary with two replicas: edge cases that need real replication. Each test began as a review finding that failed on the first cluster code. One topology, tests in order.
import t from 'tap';
import { createCluster, type FreshCluster } from '../lib/index.js';
import { startReplication, type ReplicationNode } from './helpers/replication.js';

t.setTimeout(240_000);
const rep = await startReplication(t);
const [primary, replica1, replica2] = rep.nodes as [ReplicationNode, ReplicationNode, ReplicationNode];
const silent = { debug() {}, info() {}, warn() {}, error() {} };

function clusterOf(t: { teardown(fn: () => unknown): void }, extra: Record<string, unknown> = {}): FreshCluster {
  const cluster = createCluster({
    nodes: rep.nodes.map((n) => ({ name: n.name, uri: n.url })),
    monitorInterval: 200,
    monitorBackoffMax: 400,
    pingTimeout: 1_000,
    acquireTimeout: 4_000,
    max: 4,
    logger: silent,
    ...extra,
  });
  t.teardown(() => cluster.end({ timeout: 1_000 }));
  return cluster;
}
const roles = (c: FreshCluster) => c.stats().nodes.map((n) => `${n.name}=${n.role}/${n.health}`).join(' ');
async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const settleWithin = async (p: Promise<unknown>, ms: number) => {
  const started = Date.now();
  const r = await Promise.race([p.then(() => 'resolved', (e: Error) => `rejected ${e.name}: ${e.message}`), new Promise<string>((res) => setTimeout(() => res('pending'), ms))]);
  return { r, ms: Date.now() - started };
};

t.test('the primary crashed and the failover takes longer than acquireTimeout: reads on the replicas go on', async (t) => {
  const cluster = clusterOf(t);
  await cluster.ready();
  await until('both replicas read', () => cluster.stats().nodes.filter((n) => n.role === 'reader').length === 2);
  await rep.kill9(primary);
  await until('no writer', () => cluster.stats().writer === undefined);
  await new Promise((r) => setTimeout(r, 1_000));
  const status = await rep.slaveStatus(replica2);
  t.comment(`replica2 after the crash: IO=${status?.Slave_IO_Running} SQL=${status?.Slave_SQL_Running} lag=${status?.Seconds_Behind_Master}; ${roles(cluster)}`);
  const { r } = await settleWithin(cluster.query('SELECT @@server_id', undefined, { readOnly: true }), 6_000);
  t.equal(r, 'resolved', `a read succeeds on a replica (${roles(cluster)})`);
});

t.test('a replica promoted by STOP SLAVE + read_only=0 (no RESET SLAVE ALL) becomes the writer: writes go on', async (t) => {
  const cluster = clusterOf(t);
  await cluster.ready().catch(() => undefined); // no writer now: the primary is down
  await replica1.query('STOP SLAVE');
  await replica1.query('SET GLOBAL read_only = 0');
  await new Promise((r) => setTimeout(r, 1_000));
  const { r } = await settleWithin(cluster.query('SELECT @@server_id'), 6_000);
  t.equal(r, 'resolved', `a write borrow reaches the only writable node (${roles(cluster)})`);
  t.equal(cluster.stats().writer, 'replica1');
});
