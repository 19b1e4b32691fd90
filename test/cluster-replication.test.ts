// createCluster over a primary with two replicas (GTID replication, an application user):
// roles found by the monitor, reads on replicas, and each fault under 16 concurrent callers:
// a replica stopped, a replica's SQL thread stopped (lag unknown), a switchover, and a crash of
// the primary followed by a promotion, as an orchestrator would do it. One topology for the
// file; each test leaves it whole for the next.
import t from 'tap';
import { Kysely, MysqlDialect, sql, type Generated } from 'kysely';
import { AcquireTimeoutError, ClusterUnavailableError, createCluster, createMysql2Adapter, type FreshCluster, type TopologyEvent } from '../lib/index.js';
import { startReplication, type ReplicationNode } from './helpers/replication.js';

t.setTimeout(300_000);

const rep = await startReplication(t);
const [primary, replica1, replica2] = rep.nodes as [ReplicationNode, ReplicationNode, ReplicationNode];
const silent = { debug() {}, info() {}, warn() {}, error() {} };

function clusterOf(t: { teardown(fn: () => unknown): void }, extra: Record<string, unknown> = {}): FreshCluster {
  const cluster = createCluster({
    nodes: rep.nodes.map((n) => ({ name: n.name, uri: n.url })),
    monitorInterval: 200,
    monitorBackoffMax: 400,
    pingTimeout: 1_000,
    acquireTimeout: 15_000,
    max: 8,
    logger: silent,
    ...extra,
  });
  t.teardown(() => cluster.end());
  return cluster;
}

const serverIdOf = async (cluster: FreshCluster, readOnly: boolean) => {
  const [rows] = (await cluster.query('SELECT @@server_id AS id', undefined, { readOnly })) as unknown as [Array<{ id: number }>];
  return Number(rows[0]!.id);
};

const roleOf = (cluster: FreshCluster, name: string) => {
  const node = cluster.stats().nodes.find((n) => n.name === name)!;
  return `${node.role}/${node.health}`;
};

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface Load {
  stop(): Promise<void>;
  readonly ok: { reads: number; writes: number };
  readonly readErrors: unknown[];
  readonly writeErrors: unknown[];
  readonly readServers: Map<number, number>;
}

/** 8 callers reading and 8 writing (when `writes`), until stopped. */
function load(cluster: FreshCluster, options: { writes: boolean }): Load {
  let running = true;
  const result: Load = {
    ok: { reads: 0, writes: 0 },
    readErrors: [],
    writeErrors: [],
    readServers: new Map(),
    stop: async () => {
      running = false;
      await Promise.all(workers);
    },
  };
  const reader = async () => {
    while (running) {
      try {
        const id = await serverIdOf(cluster, true);
        result.readServers.set(id, (result.readServers.get(id) ?? 0) + 1);
        result.ok.reads++;
      } catch (err) {
        result.readErrors.push(err);
      }
    }
  };
  const writer = async (w: number) => {
    while (running) {
      try {
        await cluster.query('INSERT INTO test.cluster_writes (worker) VALUES (?)', [w]);
        result.ok.writes++;
      } catch (err) {
        result.writeErrors.push(err);
      }
    }
  };
  const workers = [...Array.from({ length: 8 }, reader), ...(options.writes ? Array.from({ length: 8 }, (_, w) => writer(w)) : [])];
  return result;
}

const CONNECTION_LOST = new Set(['PROTOCOL_CONNECTION_LOST', 'ECONNRESET', 'EPIPE', 'ER_SERVER_SHUTDOWN', 'ER_CONNECTION_KILLED']);
const isConnectionLost = (err: unknown) => CONNECTION_LOST.has((err as { code?: string }).code ?? '');

const describeErrors = (errors: unknown[]) => [...new Set(errors.map((e) => `${(e as Error).name}:${(e as { code?: string }).code ?? ''}:${(e as Error).message}`))].slice(0, 5);

await primary.query('CREATE TABLE IF NOT EXISTS test.cluster_writes (id INT AUTO_INCREMENT PRIMARY KEY, worker INT)');
await rep.waitReplicated(replica1);
await rep.waitReplicated(replica2);

t.test('roles are found, not configured: writes on the primary, reads spread over the replicas', async (t) => {
  const cluster = clusterOf(t);
  await cluster.ready();
  t.same(
    cluster.stats().nodes.map((n) => [n.name, n.role, n.health]),
    [
      ['primary', 'writer', 'up'],
      ['replica1', 'reader', 'up'],
      ['replica2', 'reader', 'up'],
    ],
  );
  t.equal(cluster.stats().writer, 'primary');
  t.equal(await serverIdOf(cluster, false), primary.serverId);
  const readers = new Set<number>();
  for (let i = 0; i < 10; i++) readers.add(await serverIdOf(cluster, true));
  t.same([...readers].sort(), [replica1.serverId, replica2.serverId].sort(), 'both replicas take reads, the primary none');
  await t.rejects(cluster.withConnection(() => 1, { readOnly: 'yes' as never }), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'readOnly' });
});

t.test('Kysely on the cluster: the adapter writes to the writer; the readers() adapter reads from replicas', async (t) => {
  const cluster = clusterOf(t);
  await cluster.ready();
  interface Db {
    cluster_writes: { id: Generated<number>; worker: number };
  }
  const writes = new Kysely<Db>({ dialect: new MysqlDialect({ pool: createMysql2Adapter(cluster) }) });
  const reads = new Kysely<Db>({ dialect: new MysqlDialect({ pool: createMysql2Adapter(cluster.readers()) }) });
  await writes.insertInto('cluster_writes').values({ worker: 42 }).execute();
  const writer = await sql<{ id: number }>`SELECT @@server_id AS id`.execute(writes);
  t.equal(Number(writer.rows[0]!.id), primary.serverId);
  const readers = new Set<number>();
  for (let i = 0; i < 6; i++) readers.add(Number((await sql<{ id: number }>`SELECT @@server_id AS id`.execute(reads)).rows[0]!.id));
  t.same([...readers].sort(), [replica1.serverId, replica2.serverId].sort());
  await writes.transaction().execute(async (tx) => {
    await tx.insertInto('cluster_writes').values({ worker: 43 }).execute();
  });
  await rep.waitReplicated(replica1);
  await rep.waitReplicated(replica2);
  const seen = await reads.selectFrom('cluster_writes').select('worker').where('worker', 'in', [42, 43]).execute();
  t.same(seen.map((r) => r.worker).sort(), [42, 43], 'replicated writes are read from a replica');
  const readOnlyWrite = await reads.transaction().execute((tx) => tx.insertInto('cluster_writes').values({ worker: 44 }).execute()).catch((e: unknown) => e);
  t.ok(readOnlyWrite instanceof Error, 'a write through the readers adapter is refused');
});

t.test('a replica stopped: only the reads in flight on it fail, the rest move to the other replica; back, it is used again', async (t) => {
  const cluster = clusterOf(t);
  await cluster.ready();
  const running = load(cluster, { writes: false });
  await until('some reads', () => running.ok.reads > 50);
  await rep.stop(replica2);
  await until('replica2 out of reads', () => roleOf(cluster, 'replica2') === 'none/down');
  const servedBefore = running.ok.reads;
  await until('reads go on', () => running.ok.reads > servedBefore + 200);
  await rep.start(replica2);
  await until('replica2 back in reads', () => roleOf(cluster, 'replica2') === 'reader/up');
  const seenOnReplica2 = running.readServers.get(replica2.serverId) ?? 0;
  await until('reads on replica2 again', () => (running.readServers.get(replica2.serverId) ?? 0) > seenOnReplica2 + 20);
  await running.stop();
  // An orderly shutdown closes the connections under the reads running on them at that moment:
  // those fail (they may have run), none other.
  t.ok(running.readErrors.length <= 8, `at most the 8 reads in flight failed (${running.readErrors.length}): ${describeErrors(running.readErrors)}`);
  for (const err of running.readErrors) t.ok(isConnectionLost(err), 'a failed read lost its connection mid-statement');
  t.ok(running.ok.reads > 300);
});

t.test('a replica whose SQL thread stopped (lag unknown) takes no reads until it applies again', async (t) => {
  const cluster = clusterOf(t);
  await cluster.ready();
  const events: TopologyEvent[] = [];
  cluster.on('topology', (e) => events.push(e));
  await rep.stopSqlThread(replica1);
  await until('replica1 out of reads', () => roleOf(cluster, 'replica1') === 'none/replicationBroken');
  t.ok(events.some((e) => e.nodes.some((n) => n.name === 'replica1' && n.health === 'replicationBroken')), 'a topology event said so');
  const readers = new Set<number>();
  for (let i = 0; i < 20; i++) readers.add(await serverIdOf(cluster, true));
  t.same([...readers], [replica2.serverId], 'every read went to the healthy replica');
  await rep.startSqlThread(replica1);
  await rep.waitReplicated(replica1);
  await until('replica1 back', () => roleOf(cluster, 'replica1') === 'reader/up');
});

t.test('read-your-writes: replicas 2 s behind; plain reads miss a write just made, a session\'s reads never do', async (t) => {
  const delay = async (seconds: number) => {
    for (const node of [replica1, replica2]) {
      await node.query('STOP SLAVE');
      await node.query(`CHANGE MASTER TO MASTER_DELAY = ${seconds}`);
      await node.query('START SLAVE');
    }
  };
  await delay(2);
  t.teardown(async () => {
    await delay(0);
    await rep.waitReplicated(replica1);
    await rep.waitReplicated(replica2);
  });
  const cluster = clusterOf(t, { readYourWrites: true, readYourWritesTimeout: 5_000 });
  await cluster.ready();
  const sees = async (run: (sql: string, values: unknown[]) => Promise<unknown>, id: number) => {
    const [rows] = (await run('SELECT COUNT(*) AS n FROM test.cluster_writes WHERE id = ?', [id])) as [Array<{ n: number }>];
    return Number(rows[0]!.n) === 1;
  };
  const insertId = async (run: (sql: string, values: unknown[]) => Promise<unknown>) => {
    const [result] = (await run('INSERT INTO test.cluster_writes (worker) VALUES (?)', [7])) as [{ insertId: number }];
    return result.insertId;
  };

  // The fault is real: a read right after a write, on a replica, does not see it.
  const plainId = await insertId((sql, v) => cluster.query(sql, v));
  t.equal(await sees((sql, v) => cluster.query(sql, v, { readOnly: true }), plainId), false, 'a plain read on a lagging replica misses the write');

  const session = cluster.session();
  t.equal(session.token(), undefined, 'no token before a write');
  const readServers = new Set<number>();
  for (let i = 0; i < 3; i++) {
    const id = await insertId((sql, v) => session.query(sql, v));
    t.ok(await sees((sql, v) => session.query(sql, v, { readOnly: true }), id), `session read ${i} sees its write`);
    const [rows] = (await session.query('SELECT @@server_id AS id', undefined, { readOnly: true })) as unknown as [Array<{ id: number }>];
    readServers.add(Number(rows[0]!.id));
  }
  t.notOk(readServers.has(primary.serverId), 'the session read from replicas, which waited for its writes');
  t.match(session.token(), /^0-\d+-\d+$/, 'the token names the last write');

  // A token carries the writes to another session, as a next request would.
  const writer = cluster.session();
  const id = await insertId((sql, v) => writer.query(sql, v));
  const reader = cluster.session({ after: writer.token() });
  t.ok(await sees((sql, v) => reader.query(sql, v, { readOnly: true }), id), 'a later session given the token sees the write');
  t.throws(() => cluster.session({ after: 'not-a-gtid' }), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'after' });

  // A replica that cannot catch up within readYourWritesTimeout: the read goes to the writer.
  const impatient = clusterOf(t, { readYourWrites: true, readYourWritesTimeout: 100 });
  await impatient.ready();
  const hurried = impatient.session();
  const hurriedId = await insertId((sql, v) => hurried.query(sql, v));
  t.ok(await sees((sql, v) => hurried.query(sql, v, { readOnly: true }), hurriedId), 'the read still sees the write');
  const [rows] = (await hurried.query('SELECT @@server_id AS id', undefined, { readOnly: true })) as unknown as [Array<{ id: number }>];
  t.equal(Number(rows[0]!.id), primary.serverId, 'read from the writer: the replicas were too far behind');
  t.throws(() => cluster.pools && clusterOf(t).session(), { code: 'ERR_FRESH_POOL_CONFIG', field: 'readYourWrites' });
});

t.test('switchover: the writer made read-only and a replica promoted; writes follow with at most the ones in flight failing', async (t) => {
  const cluster = clusterOf(t);
  await cluster.ready();
  const running = load(cluster, { writes: true });
  await until('writes flow', () => running.ok.writes > 100);
  // As an orchestrator does it: old primary read-only, the replica caught up and promoted, the
  // others re-pointed.
  await rep.setReadOnly(primary, true);
  await rep.promote(replica1);
  await rep.repoint(replica2, replica1);
  await rep.repoint(primary, replica1);
  await until('replica1 is the writer', () => cluster.stats().writer === 'replica1');
  const written = running.ok.writes;
  await until('writes go on', () => running.ok.writes > written + 200);
  await running.stop();
  t.same(describeErrors(running.readErrors), [], 'no read failed');
  t.ok(running.writeErrors.length <= 8, `at most the 8 writes in flight failed (${running.writeErrors.length})`);
  for (const err of running.writeErrors) t.equal((err as { errno?: number }).errno, 1290, 'a failed write met the read-only server: it did not run');
  const [rows] = (await cluster.query('SELECT @@server_id AS id')) as unknown as [Array<{ id: number }>];
  t.equal(Number(rows[0]!.id), replica1.serverId, 'writes now reach the new primary, no restart or config change');
  // Back as it was: primary on top again, for the next test.
  await rep.setReadOnly(replica1, true);
  await rep.promote(primary);
  await rep.repoint(replica1, primary);
  await rep.repoint(replica2, primary);
  await until('primary is the writer again', () => cluster.stats().writer === 'primary');
});

t.test('the primary crashes (kill -9); a replica is promoted: writes wait for it and resume; reads never fail', async (t) => {
  const cluster = clusterOf(t);
  await cluster.ready();
  const running = load(cluster, { writes: true });
  await until('writes flow', () => running.ok.writes > 100);
  await rep.kill9(primary);
  await until('no writer', () => cluster.stats().writer === undefined);
  await rep.promote(replica1, { catchUp: true });
  await rep.repoint(replica2, replica1);
  await until('replica1 is the writer', () => cluster.stats().writer === 'replica1');
  const written = running.ok.writes;
  await until('writes go on', () => running.ok.writes > written + 200);
  await running.stop();
  t.same(describeErrors(running.readErrors), [], 'no read failed');
  t.ok(running.writeErrors.length <= 8, `at most the 8 writes in flight failed (${running.writeErrors.length}): ${describeErrors(running.writeErrors)}`);
  for (const err of running.writeErrors) {
    // In flight on the crashed primary, or about to be sent on a connection it took down
    // (nothing sent: rejected after reconnectTimeout, not after acquireTimeout).
    const ok = isConnectionLost(err) || (err instanceof AcquireTimeoutError && err.timeoutMs === 1_000);
    t.ok(ok, `a write that failed was cut by the crash: ${describeErrors([err])}`);
  }
  // The old primary comes back as a replica of the new one, rebuilt from it: it crashed under
  // writes, so its binlog may hold a transaction no replica received.
  await rep.rebuild(primary, replica1);
  await until('old primary reads again', () => roleOf(cluster, 'primary') === 'reader/up');
});

t.test('no writer at all: a write rejects within acquireTimeout, typed and naming the cluster state; reads go on', async (t) => {
  const cluster = clusterOf(t, { acquireTimeout: 1_500 });
  await until('topology known', async () => {
    await cluster.ready().catch(() => undefined);
    return cluster.stats().writer !== undefined;
  });
  const writer = cluster.stats().writer!;
  const node = rep.nodes.find((n) => n.name === writer)!;
  await rep.setReadOnly(node, true);
  await until('no writer', () => cluster.stats().writer === undefined);
  const err = await cluster.query('INSERT INTO test.cluster_writes (worker) VALUES (99)').catch((e: unknown) => e);
  t.ok(err instanceof ClusterUnavailableError);
  t.match(err, { code: 'ERR_FRESH_POOL_CLUSTER_UNAVAILABLE', need: 'writer', timeoutMs: 1_500 });
  t.match((err as Error).message, new RegExp(`${writer} reader up`));
  t.type(await serverIdOf(cluster, true), 'number', 'reads still work');
  await rep.setReadOnly(node, false);
  await until('writer back', () => cluster.stats().writer === writer);
  await cluster.query('INSERT INTO test.cluster_writes (worker) VALUES (99)');
});
