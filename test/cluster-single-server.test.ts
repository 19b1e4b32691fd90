// createCluster against one private server (a "cluster" of one primary): errors, ready(), end()
// and the topology event, where no replication is needed. Each test began as a review finding
// that failed on the first cluster code.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { AcquireTimeoutError, ClusterUnavailableError, ConnectError, createCluster, PoolClosedError, type FreshCluster, type NodeState } from '../lib/index.js';
import { startServer } from './helpers/mariadb.js';

t.setTimeout(120_000);
const server = await startServer(t);
const silent = { debug() {}, info() {}, warn() {}, error() {} };
await server.query("CREATE USER 'plain'@'%' IDENTIFIED BY 'plainpw'");
await server.query("GRANT ALL ON test.* TO 'plain'@'%'");
const urlAs = (user: string, password: string) => `mysql://${user}:${password}@${server.host}:${server.port}/test`;

t.test('every node down: a waiting borrow keeps the process alive and rejects, as a single pool\'s does', async (t) => {
  const lib = new URL('../lib/index.js', import.meta.url).href;
  const code = `
    const { createCluster, createPool } = await import(${JSON.stringify(lib)});
    const silent = { debug() {}, info() {}, warn() {}, error() {} };
    const which = process.argv.at(-1);
    const target = which === 'cluster'
      ? createCluster({ nodes: ['mysql://u@127.0.0.1:1/db'], acquireTimeout: 2000, logger: silent })
      : createPool({ connection: 'mysql://u@127.0.0.1:1/db', acquireTimeout: 2000, logger: silent });
    target.query('SELECT 1').then(() => console.log('settled: resolved'), (e) => console.log('settled: ' + e.name)).finally(() => target.end());
    process.on('exit', (c) => console.log('exit ' + c));`;
  const run = (which: string) =>
    spawnSync(process.execPath, [...process.execArgv.filter((a) => !a.includes('processinfo')), '--input-type=module', '-e', code, which], { encoding: 'utf8', timeout: 30_000 }).stdout;
  const pool = run('pool');
  t.match(pool, /settled: AcquireTimeoutError/, `single pool: ${pool.trim()}`);
  const cluster = run('cluster');
  t.match(cluster, /settled: ClusterUnavailableError/, `cluster: the borrow settles, typed, within acquireTimeout (got: ${JSON.stringify(cluster.trim())})`);
});

function clusterOf(t: { teardown(fn: () => unknown): void }, url: string, extra: Record<string, unknown> = {}): FreshCluster {
  const cluster = createCluster({ nodes: [{ name: 'db', uri: url }], monitorInterval: 200, monitorBackoffMax: 400, pingTimeout: 1_000, acquireTimeout: 3_000, logger: silent, ...extra });
  t.teardown(() => cluster.end());
  return cluster;
}

const outcome = async (p: Promise<unknown>) => {
  const started = Date.now();
  try {
    await p;
    return { ok: true as const, ms: Date.now() - started, err: undefined };
  } catch (err) {
    return { ok: false as const, ms: Date.now() - started, err: err as Error & { cause?: unknown } };
  }
};

t.test('a wrong password: ready() rejects at once with ConnectError, the server\'s error as cause', async (t) => {
  const cluster = clusterOf(t, urlAs('plain', 'wrong'));
  const r = await outcome(cluster.ready());
  t.notOk(r.ok, 'ready() rejects');
  t.ok(r.err instanceof ConnectError || r.err?.cause instanceof ConnectError || /denied/i.test(String((r.err?.cause as Error)?.message)), `the error says access denied (got ${r.err?.name}: ${r.err?.message}; cause ${String(r.err?.cause)})`);
  t.ok(r.ms < 1_500, `fails fast, as a single pool does on a permanent connect failure (took ${r.ms} ms)`);
  const q = await outcome(cluster.query('SELECT 1'));
  t.ok(q.err instanceof ConnectError || q.err?.cause !== undefined, `a query names the reason (got ${q.err?.name}: ${q.err?.message}; cause ${String(q.err?.cause)})`);
});

t.test('an application user without SLAVE MONITOR: roles are still found, and a warning says lag is not checked', async (t) => {
  // The README's cluster setup never says the app user needs SLAVE MONITOR (the harness grants it).
  const direct = await outcome(server.query('SELECT 1'));
  t.ok(direct.ok);
  const cluster = clusterOf(t, urlAs('plain', 'plainpw'));
  const r = await outcome(cluster.ready());
  t.ok(r.ok, `ready() resolves on a reachable writable server (got ${r.err?.name}: ${r.err?.message})`);
  t.same(cluster.stats().nodes.map((n) => `${n.role}/${n.health}`), ['writer/up'], 'the writable server is the writer');
});

t.test('pool exhaustion on a healthy writer rejects with the node pool\'s AcquireTimeoutError, not a cluster error', async (t) => {
  const cluster = clusterOf(t, server.url, { max: 1, acquireTimeout: 800 });
  await cluster.ready();
  const held = await cluster.lease();
  const r = await outcome(cluster.query('SELECT 1'));
  held.release();
  t.notOk(r.ok);
  t.ok(r.err instanceof AcquireTimeoutError, `an AcquireTimeoutError, as a single pool (got ${r.err?.name}: ${r.err?.message}; cause ${(r.err?.cause as Error)?.name}: ${(r.err?.cause as Error)?.message})`);
});

t.test('end() fails a borrow waiting in a node pool with PoolClosedError', async (t) => {
  const cluster = clusterOf(t, server.url, { max: 1 });
  await cluster.ready();
  const held = await cluster.lease();
  let ranAfterEnd = false;
  let endCalled = false;
  const waiting = outcome(cluster.withConnection(async () => void (ranAfterEnd = endCalled)));
  await new Promise((r) => setTimeout(r, 100));
  endCalled = true;
  const ended = cluster.end();
  setTimeout(() => held.release(), 200);
  const r = await waiting;
  await ended;
  t.ok(r.err instanceof PoolClosedError, `the waiting borrow fails with PoolClosedError, as end()'s doc and #leaseWhileEligible intend (got ${r.ok ? 'resolved' : r.err?.name})`);
  t.notOk(ranAfterEnd, 'fn did not run after end()');
});

t.test('the topology event hands out a frozen copy: a listener cannot change routing', async (t) => {
  const cluster = createCluster({ nodes: [{ name: 'db', uri: server.url }], monitorInterval: 200, monitorBackoffMax: 400, pingTimeout: 1_000, acquireTimeout: 800, logger: silent });
  t.teardown(() => cluster.end());
  cluster.on('topology', (event) => {
    t.ok(Object.isFrozen(event.nodes), 'event.nodes is frozen');
    // A careless listener: "I only care about readers"
    const nodes = event.nodes as NodeState[];
    for (const n of nodes) (n as { role: string }).role = n.role === 'writer' ? 'none' : n.role;
  });
  await cluster.ready().catch(() => undefined);
  const r = await outcome(cluster.query('SELECT 1'));
  t.ok(r.ok, `a write still reaches the writer (got ${r.err?.name}: ${r.err?.message})`);
  t.notOk(r.err instanceof ClusterUnavailableError);
});
