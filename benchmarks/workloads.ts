/**
 * The workloads. Each returns plain figures; run.ts orders them and report.ts prints them.
 *
 * Throughput runs in rounds: in each round every contender runs once, in an order that
 * rotates from round to round (A B C …, then B C … A, …), so drift on the machine and the
 * place in the round touch all of them alike, and round i of one contender can be paired
 * with round i of another.
 */
import hdr from 'hdr-histogram-js';
import {
  CLUSTER_CONTENDER,
  CONTENDER_NAMES,
  createContender,
  createFailoverContender,
  FAILOVER_CONTENDER_NAMES,
  type Contender,
  type ContenderName,
  type FailoverContender,
  type FailoverContenderName,
  type Queryable,
} from './contenders.js';
import { busyWait, sleep, type TestServer } from '../test/helpers/mariadb.js';
import { startReplication, type Replication, type ReplicationNode } from '../test/helpers/replication.js';

/** The table the row workloads read and write: created and filled once per run. */
export const TABLE = 'fresh_pool_bench_rows';
export const TABLE_ROWS = 100_000;

export interface Workload {
  readonly id: 'select1' | 'pk' | 'rows100' | 'transaction';
  readonly title: string;
  /** The SQL, as shown in the report. */
  readonly sql: string;
  /** One operation on a borrowed connection: the same statements for every contender. */
  run(conn: Queryable): Promise<unknown>;
}

const randomId = (upTo: number) => 1 + Math.floor(Math.random() * upTo);

export const WORKLOADS: readonly Workload[] = [
  {
    id: 'select1',
    title: 'SELECT 1',
    sql: 'SELECT 1',
    run: (conn) => conn.query('SELECT 1'),
  },
  {
    id: 'pk',
    title: 'primary-key lookup',
    sql: `SELECT id, k, c, created FROM ${TABLE} WHERE id = ? (${TABLE_ROWS.toLocaleString('en')} rows)`,
    run: (conn) => conn.query(`SELECT id, k, c, created FROM ${TABLE} WHERE id = ?`, [randomId(TABLE_ROWS)]),
  },
  {
    id: 'rows100',
    title: '100-row result',
    sql: `SELECT id, k, c, created FROM ${TABLE} WHERE id >= ? ORDER BY id LIMIT 100`,
    run: (conn) => conn.query(`SELECT id, k, c, created FROM ${TABLE} WHERE id >= ? ORDER BY id LIMIT 100`, [randomId(TABLE_ROWS - 100)]),
  },
  {
    id: 'transaction',
    title: 'short transaction',
    sql: `START TRANSACTION; UPDATE ${TABLE} SET k = k + 1 WHERE id = ?; COMMIT`,
    run: async (conn) => {
      await conn.query('START TRANSACTION');
      await conn.query(`UPDATE ${TABLE} SET k = k + 1 WHERE id = ?`, [randomId(TABLE_ROWS)]);
      await conn.query('COMMIT');
    },
  },
];

/**
 * Creates and fills the table (MariaDB's Sequence engine; a cross join of digits elsewhere).
 * On the benchmark's private server also makes room for it in the buffer pool and stops
 * InnoDB from syncing the log on every COMMIT, so the transaction workload measures the
 * pools, not the disk.
 */
export async function prepareTable(server: TestServer): Promise<{ fill: 'sequence' | 'digits'; serverTuned: boolean }> {
  if (server.canRestart) {
    await server.query('SET GLOBAL innodb_buffer_pool_size = 67108864').catch(() => undefined);
    await server.query('SET GLOBAL innodb_flush_log_at_trx_commit = 2');
  }
  await server.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await server.query(
    `CREATE TABLE ${TABLE} (id INT UNSIGNED NOT NULL PRIMARY KEY, k INT UNSIGNED NOT NULL, c CHAR(32) NOT NULL, created DATETIME NOT NULL) ENGINE=InnoDB`,
  );
  const columns = (n: string) => `${n}, (${n} * 7919) % ${TABLE_ROWS}, MD5(${n}), TIMESTAMP'2026-01-01 00:00:00' + INTERVAL ${n} SECOND`;
  try {
    await server.query(`INSERT INTO ${TABLE} SELECT ${columns('seq')} FROM seq_1_to_${TABLE_ROWS}`);
    return { fill: 'sequence', serverTuned: server.canRestart };
  } catch {
    const digits = '(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)';
    const n = '(1 + a.d + 10 * b.d + 100 * c.d + 1000 * d.d + 10000 * e.d)';
    await server.query(`INSERT INTO ${TABLE} SELECT ${columns(n)} FROM ${digits} a, ${digits} b, ${digits} c, ${digits} d, ${digits} e`);
    return { fill: 'digits', serverTuned: server.canRestart };
  }
}

export interface ThroughputFigure {
  workload: Workload['id'];
  pool: ContenderName;
  concurrency: number;
  /** Median over rounds of operations per second. */
  opsPerSec: number;
  /** Operations per second in each round; round i of every contender ran in the same round. */
  rounds: number[];
  /** p99 latency in each round, µs. */
  roundP99Us: number[];
  /** Over every measured operation of every round, µs. */
  p50Us: number;
  p99Us: number;
}

/** Told how far the current step is (0 to 1) and what runs now. */
export type Tick = (fraction: number, detail: string) => void;

export interface ThroughputSettings {
  size: number;
  concurrencies: number[];
  rounds: number;
  /** Measured part of each round, per contender. */
  roundMs: number;
  /** Unmeasured run before each measured one: warm code, connections back in use. */
  warmMs: number;
  /** Unmeasured run of each contender before the first round at a concurrency. */
  firstWarmMs: number;
}

/** Planned wall time of one workload, ms (plus gc and the tail of operations in flight). */
export const throughputPlanMs = (s: ThroughputSettings, contenders: number) =>
  s.concurrencies.length * contenders * (s.firstWarmMs + s.rounds * (s.warmMs + s.roundMs + 30));

const newHistogram = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });

async function drive(contender: Contender, workload: Workload, concurrency: number, durationMs: number, histogram: hdr.Histogram | undefined): Promise<{ opsPerSec: number; ops: number }> {
  let ops = 0;
  const until = performance.now() + durationMs;
  const worker = async (index: number) => {
    while (performance.now() < until) {
      const start = performance.now();
      await contender.use(index, workload.run);
      histogram?.recordValue(Math.max(1, Math.round((performance.now() - start) * 1000)));
      ops++;
    }
  };
  const startedAt = performance.now();
  await Promise.all(Array.from({ length: concurrency }, (_, i) => worker(i)));
  return { opsPerSec: (ops * 1000) / (performance.now() - startedAt), ops };
}

const gc = () => (globalThis as { gc?: () => void }).gc?.();

export const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]! ) / 2;
};

/** Opens every contender for the throughput workloads. */
export function openContenders(server: TestServer, size: number): Contender[] {
  return CONTENDER_NAMES.map((name) => createContender(name, { url: server.url, size }));
}

/**
 * One workload at each concurrency, every contender, in rotating rounds. Also counts the
 * pings this library's pools sent in the measured parts, and their operations.
 */
export async function throughput(
  contenders: Contender[],
  workload: Workload,
  s: ThroughputSettings,
  tick: Tick,
): Promise<{ figures: ThroughputFigure[]; freshPings: number; freshOps: number }> {
  const figures: ThroughputFigure[] = [];
  let freshPings = 0;
  let freshOps = 0;
  const n = contenders.length;
  const unitsPerConcurrency = n + s.rounds * n;
  const totalUnits = s.concurrencies.length * unitsPerConcurrency;
  for (const [ci, concurrency] of s.concurrencies.entries()) {
    let unit = ci * unitsPerConcurrency;
    for (const c of contenders) {
      tick(unit++ / totalUnits, `concurrency ${concurrency} · warm-up · ${c.name}`);
      await drive(c, workload, concurrency, s.firstWarmMs, undefined);
    }
    const results = contenders.map(() => ({ rounds: [] as number[], roundP99: [] as number[], all: newHistogram() }));
    const roundHistogram = newHistogram();
    for (let round = 0; round < s.rounds; round++) {
      for (let k = 0; k < n; k++) {
        const i = (round + k) % n;
        const c = contenders[i]!;
        tick(unit++ / totalUnits, `concurrency ${concurrency} · round ${round + 1}/${s.rounds} · ${c.name}`);
        // Each contender starts its round on equal terms: no garbage left by the one before,
        // its own connections and code warm again.
        gc();
        await drive(c, workload, concurrency, s.warmMs, undefined);
        // Pings are counted in the measured part only.
        const pingsBefore = c.pings();
        roundHistogram.reset();
        const { opsPerSec, ops } = await drive(c, workload, concurrency, s.roundMs, roundHistogram);
        if (c.name.startsWith('fresh-pool')) {
          freshPings += c.pings() - pingsBefore;
          freshOps += ops;
        }
        const r = results[i]!;
        r.rounds.push(opsPerSec);
        r.roundP99.push(roundHistogram.getValueAtPercentile(99));
        r.all.add(roundHistogram);
      }
    }
    roundHistogram.destroy();
    for (const [i, c] of contenders.entries()) {
      const r = results[i]!;
      figures.push({
        workload: workload.id,
        pool: c.name,
        concurrency,
        opsPerSec: median(r.rounds),
        rounds: r.rounds.map((x) => Math.round(x * 10) / 10),
        roundP99Us: r.roundP99,
        p50Us: r.all.getValueAtPercentile(50),
        p99Us: r.all.getValueAtPercentile(99),
      });
      r.all.destroy();
    }
  }
  tick(1, 'done');
  return { figures, freshPings, freshOps };
}

/** The contenders that are pools, for the borrow and fault workloads. */
const POOLS: ContenderName[] = ['fresh-pool', 'mysql2-pool', 'generic-pool', 'generic-pool+ping'];

/** Borrow and give back with no statement, one caller, for `roundMs` per round: the pool's own cost. */
export async function borrowOverhead(server: TestServer, rounds: number, roundMs: number, tick: Tick): Promise<Array<{ pool: ContenderName; usPerBorrow: number; rounds: number[] }>> {
  const contenders = POOLS.map((name) => createContender(name, { url: server.url, size: 4 }));
  const perRound = contenders.map(() => [] as number[]);
  try {
    for (const c of contenders) for (let i = 0; i < 200; i++) await c.borrow!();
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < contenders.length; k++) {
        const i = (round + k) % contenders.length;
        const c = contenders[i]!;
        tick((round * contenders.length + k) / (rounds * contenders.length), `round ${round + 1}/${rounds} · ${c.name}`);
        gc();
        let borrows = 0;
        const start = performance.now();
        const until = start + roundMs;
        while (performance.now() < until) {
          // Batches of 10, so reading the clock costs little next to a borrow.
          for (let b = 0; b < 10; b++) await c.borrow!();
          borrows += 10;
        }
        perRound[i]!.push(((performance.now() - start) * 1000) / borrows);
      }
    }
  } finally {
    await Promise.all(contenders.map((c) => c.end()));
  }
  return contenders.map((c, i) => ({ pool: c.name, usPerBorrow: median(perRound[i]!), rounds: perRound[i]!.map((x) => Math.round(x * 1000) / 1000) }));
}

/** Connections left idle past connWaitAge, then used: the ping is paid then, and only then. */
export async function idleStretches(
  server: TestServer,
  cycles: number,
  idleMs: number,
  burst: number,
  tick: Tick,
): Promise<{ connWaitAgeMs: number; borrows: number; pings: number; pingsPer1000: number }> {
  const connWaitAgeMs = Math.floor(idleMs * 0.6);
  const fresh = createContender('fresh-pool', { url: server.url, size: 8, connWaitAge: connWaitAgeMs });
  const select1 = WORKLOADS[0]!.run;
  let borrows = 0;
  try {
    await fresh.use(0, select1);
    const before = fresh.pings();
    for (let cycle = 0; cycle < cycles; cycle++) {
      tick(cycle / cycles, `cycle ${cycle + 1}/${cycles}: ${idleMs} ms idle, then ${burst} borrows`);
      await sleep(idleMs);
      for (let i = 0; i < burst; i++) {
        await fresh.use(0, select1);
        borrows++;
      }
    }
    const pings = fresh.pings() - before;
    return { connWaitAgeMs, borrows, pings, pingsPer1000: (pings * 1000) / borrows };
  } finally {
    await fresh.end();
  }
}

export interface FaultFigure {
  pool: ContenderName;
  calls: number;
  errors: number;
  /** Error codes seen, with counts. */
  codes: Record<string, number>;
}

/** Planned wall time of the fault workload, ms. */
export const faultsPlanMs = (waitTimeoutSeconds: number, cycles: number) => cycles * (2 * (waitTimeoutSeconds * 1000 + 1_000) + 300 + 400);

/**
 * A server with a short wait_timeout; each cycle: an idle stretch past it, a busy-loop
 * stretch past it, and a KILL of every pooled connection while the loop is busy; after each,
 * `callsPerPhase` concurrent calls on every pool, issued at once. Counts what users would see.
 */
export async function faults(server: TestServer, waitTimeoutSeconds: number, cycles: number, callsPerPhase: number, tick: Tick): Promise<FaultFigure[]> {
  const contenders = POOLS.map((name) => createContender(name, { url: server.url, size: callsPerPhase }));
  const figures: FaultFigure[] = contenders.map((c) => ({ pool: c.name, calls: 0, errors: 0, codes: {} }));
  const select1 = WORKLOADS[0]!.run;
  const burst = () =>
    Promise.all(
      contenders.flatMap((c, i) =>
        Array.from({ length: callsPerPhase }, (_, worker) => {
          figures[i]!.calls++;
          return c.use(worker, select1).catch((err: { code?: unknown; message?: string }) => {
            const code = String(err.code ?? err.message);
            figures[i]!.errors++;
            figures[i]!.codes[code] = (figures[i]!.codes[code] ?? 0) + 1;
          });
        }),
      ),
    );
  const stretchMs = waitTimeoutSeconds * 1000 + 1_000;
  try {
    for (let cycle = 0; cycle < cycles; cycle++) {
      tick(cycle / cycles, `cycle ${cycle + 1}/${cycles}: idle stretch past wait_timeout`);
      await burst();
      await sleep(stretchMs);
      await burst();
      tick((cycle + 0.45) / cycles, `cycle ${cycle + 1}/${cycles}: busy event loop past wait_timeout`);
      // The event loop is blocked here: the display cannot move until it is free.
      busyWait(stretchMs);
      await burst();
      tick((cycle + 0.9) / cycles, `cycle ${cycle + 1}/${cycles}: KILL while busy`);
      const ids = await server.query<Array<{ id: number }>>(
        "SELECT ID AS id FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND COMMAND <> 'Daemon' AND USER = 'root'",
      );
      server.killSync(ids.map((r) => r.id));
      busyWait(300);
      await burst();
    }
  } finally {
    await Promise.all(contenders.map((c) => c.end().catch(() => undefined)));
  }
  return figures;
}

/** Heap after a warm-up and after `borrows` borrows of this library's pool. Needs --expose-gc. */
export async function memory(server: TestServer, borrows: number, tick: Tick): Promise<{ borrows: number; heapBeforeBytes: number; heapAfterBytes: number; bytesPerBorrow: number } | undefined> {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) return undefined;
  const fresh = createContender('fresh-pool', { url: server.url, size: 4 });
  try {
    for (let i = 0; i < 20_000; i++) await fresh.borrow!();
    collect();
    collect();
    const heapBeforeBytes = process.memoryUsage().heapUsed;
    for (let i = 0; i < borrows; i++) {
      if (i % 25_000 === 0) tick(i / borrows, `${i.toLocaleString('en')} / ${borrows.toLocaleString('en')} borrows`);
      await fresh.borrow!();
    }
    collect();
    collect();
    const heapAfterBytes = process.memoryUsage().heapUsed;
    return { borrows, heapBeforeBytes, heapAfterBytes, bytesPerBorrow: (heapAfterBytes - heapBeforeBytes) / borrows };
  } finally {
    await fresh.end();
  }
}

// ---------------------------------------------------------------------------------------
// Cluster section: what routing costs, and what users see through a failover.

/** The workloads the routing cost is measured on: the cheapest statements, where it shows most. */
export const CLUSTER_WORKLOADS: readonly Workload[] = WORKLOADS.filter((w) => w.id === 'select1' || w.id === 'pk');

export interface ClusterRoutingResult {
  concurrencies: number[];
  workloads: Array<Workload['id']>;
  /** `fresh-cluster` and `fresh-pool`, rounds paired as in the throughput workloads. */
  figures: ThroughputFigure[];
}

/** Planned wall time of the routing-cost part, ms. */
export const clusterRoutingPlanMs = (s: ThroughputSettings) => CLUSTER_WORKLOADS.length * throughputPlanMs(s, 2);

/**
 * A cluster whose one node is the benchmark's server against a pool on the same server, same
 * settings, in the throughput workloads' paired, rotating rounds: the cost of routing.
 */
export async function clusterRouting(server: TestServer, s: ThroughputSettings, tick: Tick): Promise<ClusterRoutingResult> {
  const contenders = ([CLUSTER_CONTENDER, 'fresh-pool'] as const).map((name) => createContender(name, { url: server.url, size: s.size }));
  const figures: ThroughputFigure[] = [];
  try {
    for (const [wi, w] of CLUSTER_WORKLOADS.entries()) {
      const result = await throughput(contenders, w, s, (fraction, detail) => tick((wi + fraction) / CLUSTER_WORKLOADS.length, `${w.title} · ${detail}`));
      figures.push(...result.figures);
    }
  } finally {
    await Promise.all(contenders.map((c) => c.end().catch(() => undefined)));
  }
  tick(1, 'done');
  return { concurrencies: s.concurrencies, workloads: CLUSTER_WORKLOADS.map((w) => w.id), figures };
}

/** The failover scenario's fixed shape (the issue's: 16 callers). */
export const FAILOVER = { writers: 8, readers: 8, size: 8, monitorIntervalMs: 200 } as const;
const FAILOVER_TABLE = 'fresh_pool_bench_failover';
const FAILOVER_WRITE = `INSERT INTO ${FAILOVER_TABLE} (worker) VALUES (?)`;
const FAILOVER_READ = `SELECT MAX(id) AS id FROM ${FAILOVER_TABLE}`;

export interface FailoverSettings {
  /** Each caller starts one call every `cycleMs` (at once when a call took longer): a steady stream of requests. */
  cycleMs: number;
  /** Calls before the kill. */
  leadMs: number;
  /** Calls after the failover is done (replica promoted, the other repointed). */
  windowMs: number;
}

export interface CallCount {
  calls: number;
  /** Calls that rejected, and calls still unsettled `FAILOVER_GRACE_MS` after the window (code `unsettled`). */
  errors: number;
  /** Error codes seen, with counts. */
  codes: Record<string, number>;
  /** The longest call that settled, failed or not, ms. */
  longestMs: number;
}

export interface FailoverFigure {
  pool: FailoverContenderName;
  /** The replica promoted (the one that had received most, as an orchestrator picks). */
  promoted: string;
  /** From the kill to the promotion and repoint done, ms. */
  failoverMs: number;
  /** Every call of the run: before the kill, through the failover, and in the window after it. */
  writes: CallCount;
  reads: CallCount;
  /** Writes issued after the failover was done that succeeded. */
  writesAfterFailover: number;
  /** From the kill to the end of the first write issued after it that succeeded, ms; null: none did. */
  firstWriteAfterKillMs: number | null;
  /**
   * Exceptions no caller could catch ('uncaughtException', including unhandled rejections),
   * by code: each would have ended a process without a handler. The benchmark counts them.
   */
  uncaught: Record<string, number>;
}

export interface FailoverResult extends FailoverSettings {
  writers: number;
  readers: number;
  size: number;
  monitorIntervalMs: number;
  figures: FailoverFigure[];
}

/** Planned wall time of the failover part, ms: two topologies started at once, then each contender's run. */
export const failoverPlanMs = (s: FailoverSettings) => 10_000 + FAILOVER_CONTENDER_NAMES.length * (s.leadMs + 1_500 + s.windowMs + 500);

interface Call {
  write: boolean;
  start: number;
  end: number;
  error?: string;
}

/** How long calls still in flight at the end of the window may take to settle; later, they count as `unsettled` errors. */
export const FAILOVER_GRACE_MS = 2_000;

/** What identifies an error in the tables: its code, else its errno, else its class, else (a plain Error) its message. */
const errorKey = (err: unknown) => {
  const e = err as { code?: unknown; errno?: unknown; name?: unknown; message?: unknown } | undefined;
  if (e?.code !== undefined || e?.errno !== undefined) return String(e.code ?? e.errno);
  if (typeof e?.name === 'string' && e.name !== 'Error') return e.name;
  return String(e?.message ?? err);
};

/**
 * `FAILOVER.writers` callers writing and `FAILOVER.readers` reading, each one call per
 * `cycleMs`, until stopped. `stop()` waits up to `FAILOVER_GRACE_MS` for the calls in flight,
 * then gives every call of the run, those still unsettled marked as such.
 */
function failoverLoad(c: FailoverContender, cycleMs: number): { stop(): Promise<Call[]> } {
  const calls: Call[] = [];
  const inFlight = new Set<Call>();
  let running = true;
  const caller = async (write: boolean, worker: number) => {
    while (running) {
      const start = performance.now();
      const call: Call = { write, start, end: start };
      inFlight.add(call);
      try {
        await (write ? c.write(FAILOVER_WRITE, [worker]) : c.read(FAILOVER_READ));
      } catch (err) {
        call.error = errorKey(err);
      }
      call.end = performance.now();
      if (!inFlight.delete(call)) return; // counted as unsettled already
      calls.push(call);
      const rest = start + cycleMs - call.end;
      if (rest > 0 && running) await sleep(rest);
    }
  };
  const workers = [
    ...Array.from({ length: FAILOVER.writers }, (_, w) => caller(true, w)),
    ...Array.from({ length: FAILOVER.readers }, (_, w) => caller(false, FAILOVER.writers + w)),
  ];
  return {
    stop: async () => {
      running = false;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(workers), new Promise((resolve) => (timer = setTimeout(resolve, FAILOVER_GRACE_MS)))]);
      clearTimeout(timer);
      for (const call of inFlight) calls.push({ ...call, end: call.start, error: 'unsettled' });
      inFlight.clear();
      return calls;
    },
  };
}

/** Transactions received from the primary (the sum of Gtid_IO_Pos's sequence numbers). */
async function received(r: Replication, node: ReplicationNode): Promise<number> {
  const pos = (await r.slaveStatus(node))?.Gtid_IO_Pos ?? '';
  return pos
    .split(',')
    .map((g) => Number(g.trim().split('-')[2] ?? 0))
    .reduce((a, b) => a + b, 0);
}

function countOf(calls: Call[]): CallCount {
  const codes: Record<string, number> = {};
  let errors = 0;
  let longestMs = 0;
  for (const c of calls) {
    if (c.error !== 'unsettled') longestMs = Math.max(longestMs, c.end - c.start);
    if (c.error === undefined) continue;
    errors++;
    codes[c.error] = (codes[c.error] ?? 0) + 1;
  }
  return { calls: calls.length, errors, codes, longestMs: Math.round(longestMs) };
}

/**
 * For each failover contender, on a primary with two replicas of its own (both topologies
 * started at once, before either runs): 16 callers (8 writing, 8 reading) for `leadMs`; then
 * the failover an orchestrator scripts: kill -9 the primary, promote the replica that received
 * most, repoint the other at it; then `windowMs` more. Counts what the callers saw.
 */
export async function failover(holder: { teardown(fn: () => unknown): void }, s: FailoverSettings, tick: Tick): Promise<FailoverResult> {
  const n = FAILOVER_CONTENDER_NAMES.length;
  tick(0, `starting ${n} primaries with 2 replicas each`);
  // Writes commit to the OS, not the disk: the run measures the pools, not fsync.
  const topologies = await Promise.all(
    FAILOVER_CONTENDER_NAMES.map(() => startReplication(holder, { replicas: 2, extraArgs: ['--innodb-flush-log-at-trx-commit=2'] })),
  );
  const figures: FailoverFigure[] = [];
  for (const [i, name] of FAILOVER_CONTENDER_NAMES.entries()) {
    const r = topologies[i]!;
    const at = (part: number, detail: string) => tick(0.3 + (0.7 * (i + part)) / n, `${name}: ${detail}`);
    // Counted, not fatal, from this contender's start until its servers are gone.
    const uncaught: Record<string, number> = {};
    const onUncaught = (err: unknown) => void (uncaught[errorKey(err)] = (uncaught[errorKey(err)] ?? 0) + 1);
    process.on('uncaughtException', onUncaught);
    try {
      const [primary, replica1, replica2] = r.nodes as [ReplicationNode, ReplicationNode, ReplicationNode];
      await primary.query(`CREATE TABLE ${FAILOVER_TABLE} (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, worker INT NOT NULL)`);
      await r.waitReplicated(replica1);
      await r.waitReplicated(replica2);
      const contender = createFailoverContender(name, r.nodes, { size: FAILOVER.size, monitorInterval: FAILOVER.monitorIntervalMs });
      let load: ReturnType<typeof failoverLoad> | undefined;
      try {
        await contender.ready();
        at(0, `${FAILOVER.writers + FAILOVER.readers} callers for ${s.leadMs} ms`);
        load = failoverLoad(contender, s.cycleMs);
        await sleep(s.leadMs);
        at(0.2, 'kill -9 the primary');
        const killAt = performance.now();
        await r.kill9(primary);
        // As an orchestrator does: the replica that received most becomes the primary.
        const [next, other] = (await received(r, replica2)) > (await received(r, replica1)) ? [replica2, replica1] : [replica1, replica2];
        at(0.3, `promote ${next.name}, repoint ${other.name}`);
        await r.promote(next, { catchUp: true });
        await r.repoint(other, next);
        const failedOverAt = performance.now();
        at(0.4, `${s.windowMs} ms after the failover`);
        await sleep(s.windowMs);
        const calls = await load.stop();
        const writes = calls.filter((c) => c.write);
        const firstWrite = writes.filter((c) => c.error === undefined && c.start >= killAt).reduce((min, c) => Math.min(min, c.end), Infinity);
        figures.push({
          pool: name,
          promoted: next.name,
          failoverMs: Math.round(failedOverAt - killAt),
          writes: countOf(writes),
          reads: countOf(calls.filter((c) => !c.write)),
          writesAfterFailover: writes.filter((c) => c.error === undefined && c.start >= failedOverAt).length,
          firstWriteAfterKillMs: Number.isFinite(firstWrite) ? Math.round(firstWrite - killAt) : null,
          uncaught,
        });
      } finally {
        at(0.95, 'ending');
        // The callers stop even when the script failed half-way (a second stop costs nothing).
        await load?.stop();
        // Bounded: a pool left in a broken state by the failover must not hold up the run.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([contender.end().catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, FAILOVER_GRACE_MS)))]);
        clearTimeout(timer);
      }
    } finally {
      await r.destroy();
      process.off('uncaughtException', onUncaught);
    }
  }
  tick(1, 'done');
  return { ...s, ...FAILOVER, figures };
}
