// createCluster over a three-node Galera cluster (issue 12), one cluster for the whole file
// under 16 concurrent callers (8 readers, 8 writers): roles found by the monitor (one writer,
// the lowest wsrep_local_index; the others take reads); the fault shown real first (a mysql2
// pool and PoolCluster go on lending an isolated node's connections: COM_PING passes, every
// table access fails with 1047), then each fault: a node isolated from
// the others (it still answers SELECT 1 and COM_PING), frozen (SIGSTOP), killed (kill -9, back
// by IST), every node down; then read-your-writes by causal reads. Each test leaves the
// cluster whole (three nodes Synced, one writer, two readers) for the next.
//
// Galera's failure detection is shortened so that a fault shows within seconds: keepalives
// every 0.5 s, a silent peer evicted after 2 s, a membership change given 3 s to install
// (defaults 1 s, 5 s, 7.5 s; evs.inactive_timeout stays 15 s: at 4 s, a thawed node's return
// sometimes took the whole cluster out of the primary component for seconds, which the
// defaults never do). The facts this file relies on hold as with the defaults, only sooner:
// an isolated node goes non-Primary by itself, a frozen node is evicted by the others, a
// thawed one reports a stale Synced (1.5-3 s here, 6 s with the defaults) until it learns it
// was evicted. GALERA_OPTS in the environment replaces these options ('' for Galera's
// defaults). The nodes write their redo log without an fsync per commit (see below), which
// changes nothing a process crash can show.
import t, { type Test } from 'tap';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { AcquireTimeoutError, ClusterUnavailableError, createCluster, DEFAULTS, type FreshCluster, type PoolConnection, type TopologyEvent } from '../lib/index.js';
import { startGalera, type GaleraNode } from './helpers/galera.js';

t.setTimeout(300_000);

const PROVIDER_OPTIONS = process.env.GALERA_OPTS ?? ['evs.keepalive_period=PT0.5S', 'evs.suspect_timeout=PT2S', 'evs.install_timeout=PT3S'].join(';');
const CALLERS = 16;
const MONITOR = { monitorInterval: 200, monitorBackoffMax: 1_000, pingTimeout: 1_000 } as const;
const ACQUIRE_TIMEOUT = 15_000;
const RECONNECT_TIMEOUT = MONITOR.pingTimeout; // the cluster's default for its node pools

// innodb_flush_log_at_trx_commit=2: no fsync per commit (a kill -9 of the process loses
// nothing still), else a node rejoining by IST while 8 callers write applies one fsync per
// transaction and takes a minute to catch up on this machine instead of a few seconds.
const g = await startGalera(t, { providerOptions: PROVIDER_OPTIONS, extraArgs: ['--innodb-flush-log-at-trx-commit=2'] });
t.comment(`galera up in ${g.timings.start} ms`);
const nodeNamed = (name: string | undefined): GaleraNode => {
  const node = g.nodes.find((n) => n.name === name);
  if (node === undefined) throw new Error(`no node named ${name}`);
  return node;
};
const nameOfPort = (port: number | undefined) => g.nodes.find((n) => n.port === port)?.name ?? `port ${port}`;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}; cluster: ${describe(cluster)}`);
    await sleep(50);
  }
}

/** `promise`, or a rejection naming `what` after `ms`: nothing in this file may wait forever. */
async function within<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

await g.nodes[0]!.query('CREATE TABLE test.galera_writes (id BIGINT AUTO_INCREMENT PRIMARY KEY, caller INT, port INT)');
await g.nodes[0]!.query('CREATE TABLE test.probe (id INT PRIMARY KEY)');
await g.nodes[0]!.query('INSERT INTO test.probe VALUES (1)');
await g.nodes[0]!.query('CREATE TABLE test.ryw (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT)');

// The monitor's failed checks, from its debug line, to see its cadence while nodes are down.
const failedChecks: Array<{ cluster: string; node: string; at: number }> = [];
const logger = {
  debug(fields: object, msg: string) {
    if (msg !== 'node check failed') return;
    const f = fields as { pool?: unknown; node?: unknown };
    failedChecks.push({ cluster: String(f.pool), node: String(f.node), at: Date.now() });
  },
  info() {},
  warn() {},
  error() {},
};

const cluster = createCluster({
  name: 'galera',
  nodes: g.nodes.map((n) => ({ name: n.name, uri: n.url })),
  ...MONITOR,
  acquireTimeout: ACQUIRE_TIMEOUT,
  max: 8,
  readYourWrites: true,
  logger,
});
t.teardown(() => cluster.end({ timeout: 5_000 }));
const history: Array<{ at: number; event: TopologyEvent }> = [];
cluster.on('topology', (event) => history.push({ at: Date.now(), event }));
await within('cluster.ready()', 30_000, cluster.ready());

function describe(c: FreshCluster): string {
  return c
    .stats()
    .nodes.map((n) => `${n.name} ${n.role}/${n.health}`)
    .join(', ');
}
const roleOf = (name: string, c: FreshCluster = cluster) => {
  const node = c.stats().nodes.find((n) => n.name === name)!;
  return `${node.role}/${node.health}`;
};
const writerNode = () => nodeNamed(cluster.stats().writer);
const readerNodes = () => cluster.stats().nodes.filter((n) => n.role === 'reader').map((n) => nodeNamed(n.name));

/** The first topology event at or after `since` in which `name` satisfies `pred`; its time. */
function firstEvent(since: number, pred: (event: TopologyEvent) => boolean): number | undefined {
  return history.find((h) => h.at >= since && pred(h.event))?.at;
}
const healthIn = (event: TopologyEvent, name: string) => event.nodes.find((n) => n.name === name)!.health;

/** Three nodes Synced in one component, and the cluster seeing one writer and two readers, all up. */
async function whole(): Promise<void> {
  for (const node of g.nodes) await g.waitSynced(node, { size: 3, timeoutMs: 60_000 });
  await until('one writer and two readers, all up', () => {
    const nodes = cluster.stats().nodes;
    return nodes.every((n) => n.health === 'up') && nodes.filter((n) => n.role === 'writer').length === 1 && nodes.filter((n) => n.role === 'reader').length === 2;
  });
}

interface Call {
  readonly kind: 'read' | 'write';
  readonly caller: number;
  readonly start: number;
  /** When `fn` got the connection; undefined when the borrow itself failed. */
  lentAt?: number;
  /** The node's SQL port, from the lent connection's configuration. */
  port?: number;
  end?: number;
  err?: unknown;
  /** A write: the row's id. A read: the highest id the node had. */
  id?: number;
}

interface Load {
  readonly calls: Call[];
  ok(kind: 'read' | 'write', port?: number): number;
  /** Stops the callers; bounded (a caller hung on a frozen node must have been released). */
  stop(): Promise<void>;
}

/** 8 callers reading the probe table (a table: an isolated node fails it) and 8 inserting, until stopped. */
function load(c: FreshCluster = cluster): Load {
  let running = true;
  const calls: Call[] = [];
  const one = async (call: Call, fn: (conn: PoolConnection) => Promise<number>) => {
    calls.push(call);
    try {
      await c.withConnection(
        async (conn) => {
          call.lentAt = Date.now();
          call.port = conn.config.port;
          call.id = await fn(conn);
        },
        { readOnly: call.kind === 'read' },
      );
    } catch (err) {
      call.err = err;
    } finally {
      call.end = Date.now();
    }
  };
  const caller = async (i: number) => {
    const kind = i < CALLERS / 2 ? 'read' : 'write';
    while (running) {
      const call: Call = { kind, caller: i, start: Date.now() };
      await one(call, async (conn) => {
        if (kind === 'write') return ((await conn.query('INSERT INTO test.galera_writes (caller, port) VALUES (?, @@port)', [i])) as unknown as [{ insertId: number }])[0].insertId;
        const [rows] = (await conn.query('SELECT @@port AS port, MAX(id) AS maxId FROM test.galera_writes')) as unknown as [Array<{ maxId: number | null }>];
        return Number(rows[0]!.maxId ?? 0);
      });
      // A breath between calls: 16 callers, not 16 busy loops on a 2-core machine that also
      // runs the three nodes (whose group communication must keep its 0.5 s heartbeat).
      await sleep(5);
    }
  };
  const workers = Array.from({ length: CALLERS }, (_, i) => caller(i));
  return {
    calls,
    ok: (kind, port) => calls.filter((x) => x.kind === kind && x.end !== undefined && x.err === undefined && (port === undefined || x.port === port)).length,
    stop: async () => {
      running = false;
      await within('the callers to finish', 30_000, Promise.all(workers));
    },
  };
}

/**
 * Reads that missed a write committed more than `lagMs` before they were lent: served by a
 * node that was not applying the cluster's writes (Galera applies in milliseconds here).
 */
function staleReads(running: Load, lagMs = 1_000): string[] {
  const writes = running.calls.filter((c) => c.kind === 'write' && c.err === undefined && c.end !== undefined).sort((a, b) => a.end! - b.end!);
  // The highest id committed by the end of each write, in the order they ended.
  const highest: Call[] = [];
  for (const w of writes) highest.push(highest.length !== 0 && highest.at(-1)!.id! > w.id! ? highest.at(-1)! : w);
  const stale: string[] = [];
  for (const read of running.calls) {
    if (read.kind !== 'read' || read.err !== undefined || read.end === undefined) continue;
    let lo = 0;
    let hi = writes.length; // the writes [0, lo) ended before read.lentAt - lagMs
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (writes[mid]!.end! < read.lentAt! - lagMs) lo = mid + 1;
      else hi = mid;
    }
    const missed = lo === 0 ? undefined : highest[lo - 1]!;
    if (missed !== undefined && missed.id! > read.id!) stale.push(`read on ${nameOfPort(read.port)} saw id ${read.id}, not ${missed.id} committed ${read.lentAt! - missed.end!} ms before`);
  }
  return stale;
}

const kindOf = (err: unknown): string => {
  const e = err as { name?: string; code?: string; errno?: number; fatal?: boolean; timeoutMs?: number };
  if (err instanceof ClusterUnavailableError) return `ClusterUnavailableError(${err.timeoutMs} ms)`;
  if (err instanceof AcquireTimeoutError) return `AcquireTimeoutError(${err.timeoutMs} ms)`;
  if (e.fatal === true || CONNECTION_LEVEL.has(e.code ?? '')) return `connection:${e.code}`;
  return `${e.name}:${e.code ?? ''}:${e.errno ?? ''}:${(err as Error).message}`;
};
const CONNECTION_LEVEL = new Set(['PROTOCOL_CONNECTION_LOST', 'ECONNRESET', 'EPIPE', 'ER_SERVER_SHUTDOWN', 'ER_CONNECTION_KILLED']);
const isConnectionLevel = (err: unknown) => (err as { fatal?: boolean }).fatal === true || CONNECTION_LEVEL.has((err as { code?: string }).code ?? '');
const isNotReady = (err: unknown) => [1047, 1180].includes((err as { errno?: number }).errno ?? 0);

/** Counts of each kind of failure, with the node it happened on: `{ 'node3 read connection:ECONNRESET': 2 }`. */
function tally(calls: readonly Call[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of calls) {
    if (c.err === undefined) continue;
    const key = `${c.port === undefined ? 'no node' : nameOfPort(c.port)} ${c.kind} ${kindOf(c.err)}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

/**
 * What a fault on `node` may cost the callers: only the statements in flight on it, that is
 * calls lent a connection to it before the cluster took it out (`gone`), each failing with
 * `allowed` (connection lost; 1047/1180 not ready), at most one per caller.
 */
function checkFailures(t: Test, running: Load, node: GaleraNode, gone: number, allowed: (err: unknown) => boolean, watch: GaleraWatch): void {
  const all = running.calls.filter((c) => c.err !== undefined);
  t.comment(`${node.name}: ${running.ok('read')} reads and ${running.ok('write')} writes succeeded; failed: ${JSON.stringify(tally(running.calls))}`);
  // Galera itself may take the other nodes out of the primary component for a moment as the
  // faulty node comes back (seen with a thawed node): what was in flight there fails too, and
  // no pool can help it. Told apart by what the nodes said of themselves, not by the cluster.
  const collateral = all.filter(
    (c) => c.port !== node.port && c.port !== undefined && watch.lostPrimaryWhileLent(nameOfPort(c.port), c.lentAt!, c.end!) && (isConnectionLevel(c.err) || isNotReady(c.err)),
  );
  if (collateral.length !== 0) t.comment(`Galera took other nodes out of the primary component; in flight there: ${JSON.stringify(tally(collateral))}`);
  t.ok(new Set(collateral.map((c) => `${c.caller}@${c.port}`)).size === collateral.length, 'no caller failed twice on a node that left the primary component');
  const failed = all.filter((c) => !collateral.includes(c));
  t.ok(failed.length <= CALLERS, `at most one failure per caller (${failed.length})`);
  t.same(new Set(failed.map((c) => c.caller)).size, failed.length, 'no caller failed twice');
  const elsewhere = failed.filter((c) => c.port !== node.port);
  t.same(tally(elsewhere), {}, `every other failed call had been lent a connection to ${node.name}`);
  const late = failed.filter((c) => c.port === node.port && (c.lentAt ?? Infinity) >= gone);
  t.same(
    late.map((c) => `${c.kind} lent ${c.lentAt! - gone} ms after ${node.name} was taken out: ${kindOf(c.err)}`),
    [],
    `every failed call was lent its connection before the cluster took ${node.name} out`,
  );
  const other = failed.filter((c) => !allowed(c.err));
  t.same(tally(other), {}, 'every failure is one a statement in flight on the node may meet');
  const stale = staleReads(running);
  t.same(stale.slice(0, 5), [], `no read was served by a node behind the cluster (${stale.length} were)`);
  const astray = writesAstray(running);
  t.same(astray.slice(0, 5), [], `every write went to the writer of the moment (${astray.length} did not)`);
}

interface GaleraWatch {
  /** `name` said it was Synced in the primary component before `from`, and not so by `to` (+1 s). */
  lostPrimaryWhileLent(name: string, from: number, to: number): boolean;
  stop(): Promise<void>;
}

/**
 * What each node says of itself (as root, every 100 ms; each node polled on its own, so a
 * frozen one holds up only its own poll), to tell what Galera did from what the cluster did.
 */
function watchGalera(): GaleraWatch {
  let running = true;
  const samples = new Map(g.nodes.map((n) => [n.name, [] as Array<{ at: number; primary: boolean }>]));
  const loops = g.nodes.map(async (n) => {
    while (running) {
      const primary = await g.status(n).then(
        (st) => st.ready && st.localState === 4 && st.clusterStatus === 'Primary',
        () => false,
      );
      samples.get(n.name)!.push({ at: Date.now(), primary });
      await sleep(100);
    }
  });
  return {
    lostPrimaryWhileLent(name, from, to) {
      const list = samples.get(name)!;
      const before = list.filter((x) => x.at <= from).at(-1);
      return before?.primary === true && list.some((x) => x.at > from && x.at <= to + 1_000 && !x.primary);
    },
    stop: async () => {
      running = false;
      await within('the status polls to end', 40_000, Promise.all(loops));
    },
  };
}

/** The writers the topology events named between `from` and `to`. */
function writersDuring(from: number, to: number): Set<string | undefined> {
  const writers = new Set<string | undefined>();
  let before: TopologyEvent | undefined;
  for (const h of history) {
    if (h.at <= from) before = h.event;
    else if (h.at <= to) writers.add(h.event.writer);
  }
  writers.add(before?.writer);
  return writers;
}

/** Successful writes lent on a node that was not the writer at any time while they borrowed. */
function writesAstray(running: Load): string[] {
  return running.calls
    .filter((c) => c.kind === 'write' && c.err === undefined && c.end !== undefined && !writersDuring(c.start, c.lentAt!).has(nameOfPort(c.port)))
    .map((c) => `write on ${nameOfPort(c.port)}, writers meanwhile ${[...writersDuring(c.start, c.lentAt!)].join(', ')}`);
}

/** Back in the topology: up, as a reader or as the writer (an IST donor desyncs for a moment, and the writer may move to the node back). */
const isUp = (name: string) => roleOf(name).endsWith('/up');
/** Successful calls of both kinds lent on `port` from `from` on. */
const used = (running: Load, port: number, from: number) => served(running, 'read', port, from) + served(running, 'write', port, from);

/** Successful calls of `kind` lent in [from, to) on `port`. */
const served = (running: Load, kind: 'read' | 'write', port: number, from: number, to = Infinity) =>
  running.calls.filter((c) => c.kind === kind && c.err === undefined && c.end !== undefined && c.port === port && c.lentAt! >= from && c.lentAt! < to).length;

t.test('roles: the lowest wsrep_local_index writes, the other two read; kind galera', async (t) => {
  await whole();
  const statuses = await Promise.all(g.nodes.map(async (n) => ({ node: n, index: (await g.status(n)).localIndex })));
  const lowest = statuses.reduce((a, b) => (b.index < a.index ? b : a)).node;
  const stats = cluster.stats();
  t.equal(stats.writer, lowest.name, `the writer is ${lowest.name}, wsrep_local_index ${statuses.map((s) => `${s.node.name}=${s.index}`).join(' ')}`);
  t.same(
    stats.nodes.map((n) => [n.name, n.role, n.health, n.kind]),
    g.nodes.map((n) => [n.name, n === lowest ? 'writer' : 'reader', 'up', 'galera']),
  );
  const readers = g.nodes.filter((n) => n !== lowest);

  const started = Date.now();
  const running = load();
  await until('traffic', () => running.ok('read') >= 300 && running.ok('write') >= 300);
  await running.stop();
  t.same(tally(running.calls), {}, 'no call failed');
  t.same(staleReads(running), [], 'no read missed a write committed a second before');
  t.same(writesAstray(running), [], 'every write went to the writer of the moment');
  const writes = running.calls.filter((c) => c.kind === 'write');
  t.same([...new Set(writes.map((c) => nameOfPort(c.port)))], [lowest.name], 'every write went to the writer');
  const [rows] = (await cluster.query('SELECT port, COUNT(*) AS n FROM test.galera_writes GROUP BY port')) as unknown as [Array<{ port: number; n: number }>];
  t.same(
    rows.map((r) => nameOfPort(r.port)),
    [lowest.name],
    'and every row was written there (@@port in the row)',
  );
  const reads = readers.map((n) => served(running, 'read', n.port, started));
  t.equal(served(running, 'read', lowest.port, started), 0, 'no read on the writer');
  const total = running.ok('read');
  t.ok(
    reads.every((r) => r >= total / 4),
    `reads spread over ${readers.map((n, i) => `${n.name} (${reads[i]})`).join(' and ')}`,
  );
});

/** `CALLERS` callers, each running `op` `rounds` times in turn: successes, failures by errno, nodes used. */
async function hammer(rounds: number, op: () => Promise<number>): Promise<{ ok: number; errnos: Record<string, number>; ports: Set<number>; lastRoundFailures: number }> {
  const out = { ok: 0, errnos: {} as Record<string, number>, ports: new Set<number>(), lastRoundFailures: 0 };
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      for (let round = 0; round < rounds; round++) {
        try {
          out.ports.add(await op());
          out.ok++;
        } catch (err) {
          const key = String((err as { errno?: number }).errno ?? (err as { code?: string }).code ?? err);
          out.errnos[key] = (out.errnos[key] ?? 0) + 1;
          if (round === rounds - 1) out.lastRoundFailures++;
        }
      }
    }),
  );
  return out;
}

t.test('fault is real: a mysql2 pool and PoolCluster keep lending an isolated node (COM_PING passes, table access fails with 1047)', async (t) => {
  await whole();
  const node = readerNodes()[0]!;
  const options = (url: string): mysql.PoolOptions => ({ uri: url, connectionLimit: CALLERS });
  const pool = mysql.createPool(options(node.url));
  t.teardown(() => pool.end());
  const poolCluster = mysql.createPoolCluster(); // round robin over the three, mysql2's defaults
  const events: string[] = [];
  for (const name of ['remove', 'offline']) poolCluster.on(name, (arg: unknown) => events.push(`${name}:${String(arg)}`));
  t.teardown(() => poolCluster.end());
  for (const n of g.nodes) poolCluster.add(n.name.toUpperCase(), options(n.url));
  const read = (q: { query: mysql.Pool['query'] }) => async () => {
    const [rows] = await q.query<Array<RowDataPacket & { port: number }>>('SELECT @@port AS port, COUNT(*) AS n FROM test.probe');
    return rows[0]!.port;
  };
  const warm = await hammer(3, read(poolCluster.of('*')));
  t.equal(warm.ok, CALLERS * 3, 'before: every read through the PoolCluster succeeds');
  t.equal((await hammer(2, read(pool))).ok, CALLERS * 2, `and through the pool on ${node.name}`);
  try {
    await g.isolate(node);
    await g.waitStatus(node, (st) => !st.ready, 'wsrep_ready=OFF', 15_000);
    const ROUNDS = 4;
    const out = await hammer(ROUNDS, read(pool));
    t.same(out.errnos, { 1047: CALLERS * ROUNDS }, `after isolation every read on ${node.name} fails with 1047`);
    const conns = await Promise.all(Array.from({ length: CALLERS }, () => pool.getConnection()));
    try {
      const pings = await Promise.allSettled(conns.map((c) => c.ping()));
      t.ok(pings.every((p) => p.status === 'fulfilled'), `while COM_PING succeeds on all ${CALLERS} of its connections`);
    } finally {
      for (const c of conns) c.release();
    }
    const viaCluster = await hammer(ROUNDS, read(poolCluster.of('*')));
    t.ok(viaCluster.ok < CALLERS * ROUNDS && Object.keys(viaCluster.errnos).join() === '1047', `through the PoolCluster ${CALLERS * ROUNDS - viaCluster.ok} of ${CALLERS * ROUNDS} reads fail, with 1047: ${JSON.stringify(viaCluster.errnos)}`);
    t.ok(viaCluster.lastRoundFailures > 0, `still in the last round (${viaCluster.lastRoundFailures} of ${CALLERS})`);
    t.same(events, [], 'the PoolCluster never took the node offline');
  } finally {
    await g.rejoin(node);
  }
});

t.test('a node isolated from the others (the writer): writes move; only its statements in flight fail; back once Synced', async (t) => {
  await whole();
  const node = writerNode();
  const running = load();
  const watch = watchGalera();
  try {
    await until('traffic', () => running.ok('read') >= 100 && running.ok('write') >= 100);
    const isolatedAt = Date.now();
    await g.isolate(node);
    await until(`${node.name} notSynced`, () => roleOf(node.name) === 'none/notSynced');
    // The node leaves the primary component by itself (the cluster may have seen its stale
    // view a moment before: the other two had evicted it already).
    const status = await g.waitStatus(node, (st) => !st.ready, 'wsrep_ready=OFF', 15_000);
    t.match(status, { ready: false, clusterStatus: 'non-Primary' }, `${node.name} reports wsrep_ready=OFF, non-Primary`);
    t.equal(roleOf(node.name), 'none/notSynced', 'and takes no borrows');
    const gone = firstEvent(isolatedAt, (e) => healthIn(e, node.name) !== 'up')!;
    t.comment(`${node.name} taken out ${gone - isolatedAt} ms after the isolation (first as ${healthIn(history.find((h) => h.at === gone)!.event, node.name)})`);
    await until('a new writer', () => cluster.stats().writer !== undefined && cluster.stats().writer !== node.name);
    const next = writerNode();
    const movedAt = firstEvent(isolatedAt, (e) => e.writer === next.name)!;
    const written = running.ok('write');
    await until('writes on the new writer', () => running.ok('write') >= written + 100);
    t.equal(served(running, 'write', node.port, movedAt), 0, `no write lent on ${node.name} once ${next.name} was the writer`);
    t.equal(
      running.calls.filter((c) => c.kind === 'write' && c.err === undefined && c.lentAt! >= movedAt && c.port !== next.port).length,
      0,
      `every write after the move went to ${next.name}`,
    );
    const rejoinAt = Date.now();
    await g.rejoin(node);
    await until(`${node.name} up again`, () => isUp(node.name));
    const backAt = firstEvent(rejoinAt, (e) => healthIn(e, node.name) === 'up')!;
    t.equal(served(running, 'read', node.port, gone, backAt) + served(running, 'write', node.port, gone, backAt), 0, `nothing was lent on ${node.name} while it was out`);
    await until(`${node.name} used again`, () => used(running, node.port, backAt) >= 20);
    t.comment(`back as ${roleOf(node.name)}; writer ${cluster.stats().writer}`);
    await running.stop();
    checkFailures(t, running, node, gone, (err) => isConnectionLevel(err) || isNotReady(err), watch);
  } finally {
    await running.stop().catch(() => undefined);
    await watch.stop();
  }
});

/**
 * Freezes `node` (SIGSTOP) under load, until the other two have evicted it; then thaws it. A
 * thawed node reports the Synced it had before the freeze (same configuration id, size 3)
 * until it learns it was evicted: it must not be used before it has truly rejoined.
 */
async function frozen(t: Test, node: GaleraNode): Promise<void> {
  const wasWriter = cluster.stats().writer === node.name;
  const others = g.nodes.filter((n) => n !== node);
  const running = load();
  const watch = watchGalera();
  try {
    await until('traffic', () => running.ok('read') >= 100 && running.ok('write') >= 100 && (wasWriter || served(running, 'read', node.port, 0) >= 20));
    const frozenAt = Date.now();
    g.freeze(node);
    await until(`${node.name} down`, () => roleOf(node.name) === 'none/down', 10_000);
    const gone = firstEvent(frozenAt, (e) => healthIn(e, node.name) !== 'up')!;
    t.ok(gone - frozenAt <= MONITOR.monitorInterval + MONITOR.pingTimeout + 500, `marked down ${gone - frozenAt} ms after the freeze (interval ${MONITOR.monitorInterval} + pingTimeout ${MONITOR.pingTimeout})`);
    if (wasWriter) {
      await until('a new writer', () => cluster.stats().writer !== undefined && cluster.stats().writer !== node.name);
      // Every writing caller hangs on the frozen writer; a write of the test's own goes to the
      // new writer (once the others have evicted the frozen one: Galera waits for it until then).
      const [rows] = (await within('a write while the writer is frozen', 20_000, cluster.withConnection((conn) => conn.query('INSERT INTO test.galera_writes (caller, port) VALUES (-2, @@port)').then(() => conn.query('SELECT @@port AS port'))))) as unknown as [Array<{ port: number }>];
      t.equal(nameOfPort(rows[0]!.port), cluster.stats().writer, `a new write went to the new writer, ${cluster.stats().writer}`);
    }
    const read = running.ok('read');
    await until('reads go on', () => running.ok('read') >= read + 200);
    const hung = running.calls.filter((c) => c.port === node.port && c.end === undefined);
    t.comment(`${hung.length} calls hang on ${node.name}`);
    // The others evict it (evs.suspect_timeout): the cluster goes on with two.
    for (const other of others) await g.waitSynced(other, { size: 2, timeoutMs: 30_000 });
    t.ok(
      hung.every((c) => c.end === undefined),
      'the statements in flight on the frozen node are still waiting',
    );
    const thawedAt = Date.now();
    g.thaw(node);
    // Truly back: Synced in the same component (configuration id) as the other two. Until
    // then it may report the Synced it had before the freeze.
    const rejoined = g.waitSynced(node, { size: 3, timeoutMs: 60_000 }).then(() => Date.now());
    rejoined.catch(() => undefined);
    // What the nodes say in the first seconds after the thaw, for the report should it be used early.
    const samples: string[] = [];
    const sampling = (async () => {
      while (Date.now() - thawedAt < 3_000) {
        const views = await Promise.all(
          g.nodes.map((n) => g.status(n).then((st) => `${n.name} ${st.ready ? 'ready' : 'not-ready'} ${st.localStateComment} ${st.clusterStatus} size ${st.clusterSize} conf ${st.confId}`, (e: Error) => `${n.name} ${e.message}`)),
        );
        samples.push(`+${Date.now() - thawedAt} ms: ${views.join('; ')} | cluster: ${describe(cluster)}`);
        await sleep(100);
      }
    })();
    await until('the hung calls to end after the thaw', () => hung.every((c) => c.end !== undefined));
    t.comment(`the hung calls ended ${Math.max(...hung.map((c) => c.end! - thawedAt), 0)} ms after the thaw: ${JSON.stringify(tally(hung))}`);
    const rejoinedAt = await rejoined;
    await until(`${node.name} up again`, () => isUp(node.name));
    const backAt = Date.now();
    await until(`${node.name} used again`, () => used(running, node.port, backAt) >= 20);
    t.comment(`back as ${roleOf(node.name)}; writer ${cluster.stats().writer}`);
    await running.stop();
    const lentWhileOut = running.calls.filter((c) => c.port === node.port && c.lentAt! >= gone && c.lentAt! < thawedAt).length;
    t.equal(lentWhileOut, 0, `nothing was lent on ${node.name} while it was frozen`);
    const ups = history.filter((h) => h.at >= thawedAt && healthIn(h.event, node.name) === 'up').map((h) => h.at - thawedAt);
    t.comment(`after the thaw: ${node.name} marked up at +${ups.join(' ms, +')} ms; Synced with the others at +${rejoinedAt - thawedAt} ms`);
    // The harness polls every 100 ms (three status queries each): the monitor may see it
    // rejoined a little sooner, not seconds sooner.
    await sampling;
    const early = ups[0]! < rejoinedAt - thawedAt - 1_000;
    t.ok(!early, `not used before it rejoined: first marked up at +${ups[0]} ms, rejoined at +${rejoinedAt - thawedAt} ms`);
    if (early) {
      const events = history.filter((h) => h.at >= thawedAt - 500 && h.at <= thawedAt + 1_500).map((h) => `+${h.at - thawedAt} ms: ${h.event.nodes.map((n) => `${n.name} ${n.role}/${n.health}`).join(', ')}`);
      t.comment(`topology events around the thaw:\n${events.join('\n')}\nwhat the nodes said:\n${samples.slice(0, 8).join('\n')}`);
    }
    checkFailures(t, running, node, gone, (err) => isConnectionLevel(err) || isNotReady(err), watch);
  } finally {
    if (node.state === 'frozen') g.thaw(node);
    await running.stop().catch(() => undefined);
    await watch.stop();
  }
}

t.test('a reader frozen (SIGSTOP): down within pingTimeout, reads move; its statements hang until thawed; used again once rejoined', async (t) => {
  await whole();
  await frozen(t, readerNodes()[0]!);
});

t.test('the writer frozen (SIGSTOP): down within pingTimeout, writes move; its statements hang until thawed; used again once rejoined', async (t) => {
  await whole();
  await frozen(t, writerNode());
});

t.test('a node killed (the writer, kill -9): writes move, only its statements in flight fail; back by IST, used again', async (t) => {
  await whole();
  const node = writerNode();
  const running = load();
  const watch = watchGalera();
  try {
    await until('traffic', () => running.ok('read') >= 100 && running.ok('write') >= 100);
    const killedAt = Date.now();
    await g.kill9(node);
    await until(`${node.name} down`, () => roleOf(node.name) === 'none/down', 10_000);
    const gone = firstEvent(killedAt, (e) => healthIn(e, node.name) !== 'up')!;
    t.comment(`${node.name} taken out ${gone - killedAt} ms after the kill (first as ${healthIn(history.find((h) => h.at === gone)!.event, node.name)})`);
    await until('a new writer', () => cluster.stats().writer !== undefined && cluster.stats().writer !== node.name);
    t.comment(`writes moved to ${writerNode().name}`);
    const written = running.ok('write');
    await until('writes on the new writer', () => running.ok('write') >= written + 100);
    const startAt = Date.now();
    await g.start(node); // --wsrep-recover, then IST
    t.comment(`${node.name} back by IST in ${Date.now() - startAt} ms`);
    await until(`${node.name} up again`, () => isUp(node.name));
    const backAt = firstEvent(startAt, (e) => healthIn(e, node.name) === 'up')!;
    await until(`${node.name} used again`, () => used(running, node.port, backAt) >= 20);
    t.comment(`back as ${roleOf(node.name)}; writer ${cluster.stats().writer}`);
    await running.stop();
    t.equal(served(running, 'read', node.port, gone, backAt) + served(running, 'write', node.port, gone, backAt), 0, `nothing was lent on ${node.name} while it was down`);
    // Connection lost mid-statement; or a statement about to be sent on a connection the crash
    // took down, refused after the node pool's reconnectTimeout (nothing sent).
    checkFailures(t, running, node, gone, (err) => isConnectionLevel(err) || (err instanceof AcquireTimeoutError && err.timeoutMs === RECONNECT_TIMEOUT), watch);
  } finally {
    await running.stop().catch(() => undefined);
    await watch.stop();
  }
});

t.test('every node down: a borrow rejects with ClusterUnavailableError within acquireTimeout; monitors back off; recovery', async (t) => {
  await whole();
  const quick = createCluster({ name: 'quick', nodes: g.nodes.map((n) => ({ name: n.name, uri: n.url })), ...MONITOR, acquireTimeout: 1_500, max: 2, logger });
  t.teardown(() => quick.end({ timeout: 5_000 }));
  await within('quick.ready()', 30_000, quick.ready());
  const running = load();
  const watch = watchGalera();
  const phases: Array<[string, number]> = [];
  const phaseOf = (at: number) => phases.filter(([, from]) => from <= at).at(-1)?.[0] ?? 'before';
  try {
    await until('traffic', () => running.ok('read') >= 100 && running.ok('write') >= 100);
    phases.push(['stopping', Date.now()]);
    await g.stopAll();
    t.comment(`stopAll took ${Date.now() - phases[0]![1]} ms`);
    await until('every node down', () => cluster.stats().nodes.every((n) => n.health === 'down') && quick.stats().nodes.every((n) => n.health === 'down'), 10_000);
    const downFrom = Date.now();
    phases.push(['all down', downFrom]);
    const attempts = (c: FreshCluster) => [...c.pools.values()].map((p) => p.stats().connectAttempts);
    const attemptsFrom = [...attempts(cluster), ...attempts(quick)];

    const timed = async (readOnly: boolean) => {
      const at = Date.now();
      const err = await within('a borrow with every node down', 10_000, quick.query('SELECT 1', undefined, { readOnly }).then(() => undefined, (e: unknown) => e));
      return { err, ms: Date.now() - at };
    };
    for (const { err, ms } of await Promise.all([timed(false), timed(true)])) {
      t.ok(err instanceof ClusterUnavailableError, `rejected with ClusterUnavailableError: ${kindOf(err)}`);
      t.match(err, { code: 'ERR_FRESH_POOL_CLUSTER_UNAVAILABLE', timeoutMs: 1_500 });
      t.match((err as Error).message, /node1 none down, node2 none down, node3 none down/, 'naming every node down');
      t.ok(ms >= 1_450 && ms <= 1_500 + 1_000, `after ${ms} ms (acquireTimeout 1500)`);
    }
    await sleep(3_000);
    const downTo = Date.now();
    const span = downTo - downFrom;
    // No connect storm. A monitor checks every monitorInterval, doubling while the node is
    // down up to monitorBackoffMax: at most the ramp (200, 400, 800 ms) and one check per
    // monitorBackoffMax. A node pool dials only for a borrow still queued in it (one the
    // cluster gave up on as the node went down waits out the pool's acquireTimeout there), one
    // attempt at a time, paced by its connect backoff (jittered in [max/2, max]).
    const ramp = (from: number, to: number) => Math.ceil(Math.log2(to / from));
    const monitorBound = Math.floor(span / MONITOR.monitorBackoffMax) + ramp(MONITOR.monitorInterval, MONITOR.monitorBackoffMax) + 1;
    for (const c of ['galera', 'quick']) {
      for (const node of g.nodes) {
        const checks = failedChecks.filter((f) => f.cluster === c && f.node === node.name && f.at >= downFrom && f.at < downTo).length;
        t.ok(checks >= 1 && checks <= monitorBound, `${c}'s monitor checked ${node.name} ${checks} times in ${span} ms (at most ${monitorBound})`);
      }
    }
    const poolBound = Math.floor(span / (DEFAULTS.connectBackoffMax / 2)) + ramp(DEFAULTS.connectBackoffInitial, DEFAULTS.connectBackoffMax) + 1;
    const dialed = [...attempts(cluster), ...attempts(quick)].map((n, i) => n - attemptsFrom[i]!);
    t.ok(
      dialed.every((n) => n <= poolBound),
      `the node pools dialed ${JSON.stringify(dialed)} times in ${span} ms (at most ${poolBound} each)`,
    );

    phases.push(['starting', Date.now()]);
    await g.startAll();
    t.comment(`startAll took ${Date.now() - phases.at(-1)![1]} ms`);
    phases.push(['started', Date.now()]);
    await until('a writer', () => cluster.stats().writer !== undefined);
    const written = running.ok('write');
    await until('writes again', () => running.ok('write') >= written + 100);
    await until('quick writes again', async () => await quick.query('INSERT INTO test.galera_writes (caller, port) VALUES (-1, @@port)').then(() => true, () => false));
    await whole();
    await running.stop();
    const failed = running.calls.filter((c) => c.err !== undefined);
    const byPhase: Record<string, number> = {};
    for (const c of failed) {
      const key = `${phaseOf(c.lentAt ?? c.start)}: ${c.port === undefined ? 'no node' : nameOfPort(c.port)} ${c.kind} ${kindOf(c.err)}`;
      byPhase[key] = (byPhase[key] ?? 0) + 1;
    }
    t.comment(`failed, by the phase in which each was lent (or began): ${JSON.stringify(byPhase, null, 1)}`);
    // While the nodes stop one after the other: what was in flight on each as it left (connection
    // lost, 1047/1180 once it had left the cluster), lent before the cluster took it out. While
    // none is up: borrows that waited the whole acquireTimeout. As they come back: only what was
    // in flight on a node that Galera took out of the primary component meanwhile (as the
    // others joined), by the node's own word.
    const stopping = (c: Call) => c.lentAt! < downFrom;
    const unexpected = failed.filter((c) => {
      if (c.err instanceof ClusterUnavailableError) return !(c.err.timeoutMs === ACQUIRE_TIMEOUT && c.end! - c.start >= ACQUIRE_TIMEOUT - 50 && c.end! - c.start <= ACQUIRE_TIMEOUT + 2_000);
      if (c.port === undefined) return true;
      const node = g.nodes.find((n) => n.port === c.port)!;
      if (!stopping(c)) return !(watch.lostPrimaryWhileLent(node.name, c.lentAt!, c.end!) && (isConnectionLevel(c.err) || isNotReady(c.err)));
      const gone = firstEvent(c.lentAt!, (e) => healthIn(e, node.name) !== 'up');
      if (gone === undefined || gone > c.end! + 2_000) return true;
      return !(isConnectionLevel(c.err) || isNotReady(c.err) || (c.err instanceof AcquireTimeoutError && c.err.timeoutMs === RECONNECT_TIMEOUT));
    });
    t.same(tally(unexpected), {}, 'every failure was a statement in flight on a node as it left the primary component, or a borrow that waited acquireTimeout while none was up');
    const perCallerNode = new Map<string, number>();
    for (const c of failed) {
      if (c.port === undefined) continue;
      const key = `${c.caller}@${c.port} ${stopping(c) ? 'stopping' : 'starting'}`;
      perCallerNode.set(key, (perCallerNode.get(key) ?? 0) + 1);
    }
    t.ok([...perCallerNode.values()].every((n) => n === 1), 'no caller failed twice on one node as it left');
  } finally {
    await running.stop().catch(() => undefined);
    await watch.stop();
  }
});

t.test('read-your-writes: a session reads its write at once on another node (causal read), and leaves wsrep_sync_wait at 0', async (t) => {
  await whole();
  const running = load(); // writes going on: the readers apply them as the session reads
  const sessionThreads = new Set<string>();
  let plainMisses = 0;
  const ROUNDS = 40;
  try {
    await until('traffic', () => running.ok('write') >= 100);
    const writer = writerNode();
    const session = cluster.session();
    for (let i = 0; i < ROUNDS; i++) {
      const [res] = (await session.query('INSERT INTO test.ryw (v) VALUES (?)', [i])) as unknown as [{ insertId: number }];
      const seen = await session.withConnection(
        async (conn) => {
          const [rows] = (await conn.query('SELECT @@port AS port, @@session.wsrep_sync_wait AS syncWait, CONNECTION_ID() AS thread, (SELECT COUNT(*) FROM test.ryw WHERE id = ?) AS n', [
            res.insertId,
          ])) as unknown as [Array<{ port: number; syncWait: number; thread: number; n: number }>];
          return rows[0]!;
        },
        { readOnly: true },
      );
      sessionThreads.add(`${seen.port}/${seen.thread}`);
      if (Number(seen.n) !== 1 || seen.port === writer.port || Number(seen.syncWait) !== 1) {
        t.fail(`round ${i}: the session read on ${nameOfPort(seen.port)} saw ${seen.n} row(s) with wsrep_sync_wait=${seen.syncWait}`);
      }
      // The same without a session: a plain read at once on another node may miss the write.
      const [plain] = (await cluster.query('INSERT INTO test.ryw (v) VALUES (?)', [-i])) as unknown as [{ insertId: number }];
      const [rows] = (await cluster.query('SELECT COUNT(*) AS n FROM test.ryw WHERE id = ?', [plain.insertId], { readOnly: true })) as unknown as [Array<{ n: number }>];
      if (Number(rows[0]!.n) !== 1) plainMisses++;
    }
    t.pass(`${ROUNDS} session reads, each on a reader with wsrep_sync_wait=1, each saw its write`);
    t.comment(`plain reads right after a write missed it ${plainMisses} times in ${ROUNDS}`);
    // A token hands the writes to a later request's session. These nodes have no binary log,
    // so MariaDB reports no last_gtid: the token says 'causal', and that session reads causally.
    t.comment(`session token: ${session.token()}`);
    const later = cluster.session({ after: session.token() });
    const [last] = (await session.query('INSERT INTO test.ryw (v) VALUES (?)', [ROUNDS])) as unknown as [{ insertId: number }];
    const [after] = (await later.query('SELECT @@session.wsrep_sync_wait AS syncWait', undefined, { readOnly: true })) as unknown as [Array<{ syncWait: number }>];
    t.equal(session.token(), 'causal', 'a session that wrote without learning a GTID hands on a causal token');
    t.equal(Number(after[0]!.syncWait), 1, `a session given the token reads causally (write ${last.insertId})`);
  } finally {
    await running.stop();
  }
  t.same(tally(running.calls), {}, 'no call of the 16 callers failed');
  // The next borrowers of the session's connections read with wsrep_sync_wait back at 0. The
  // pool lends its most recently used connection first, so sequential reads would keep meeting
  // the same one: 16 plain reads held at once take every connection of both readers (8 each).
  const seenAgain = new Set<string>();
  const nonZero: string[] = [];
  await until('a plain read on one of the session\'s connections', async () => {
    const all = await Promise.all(
      Array.from({ length: 16 }, () =>
        cluster.withConnection(
          async (conn) => {
            const [rows] = (await conn.query('SELECT @@port AS port, CONNECTION_ID() AS thread, @@session.wsrep_sync_wait AS syncWait')) as unknown as [
              Array<{ port: number; thread: number; syncWait: number }>,
            ];
            await sleep(200); // held, so that the others get other connections
            return rows[0]!;
          },
          { readOnly: true },
        ),
      ),
    );
    for (const row of all) {
      const key = `${row.port}/${row.thread}`;
      if (Number(row.syncWait) !== 0) nonZero.push(key);
      if (sessionThreads.has(key)) seenAgain.add(key);
    }
    return seenAgain.size >= Math.min(2, sessionThreads.size);
  }, 10_000);
  t.same(nonZero, [], `plain reads ran with wsrep_sync_wait=0, on ${seenAgain.size} of the session's connections among them`);
});
