/**
 * The workloads. Each returns plain figures; run.ts orders them and report.ts prints them.
 * Pools run in interleaved rounds (A B C D A B C D ...) so drift on the machine touches all
 * of them alike.
 */
import hdr from 'hdr-histogram-js';
import { CONTENDER_NAMES, createContender, type Contender } from './contenders.js';
import { busyWait, sleep, type TestServer } from '../test/helpers/mariadb.js';

type Name = (typeof CONTENDER_NAMES)[number];

export interface ThroughputFigure {
  pool: Name;
  size: number;
  concurrency: number;
  /** Median over rounds of operations per second. */
  opsPerSec: number;
  /** Every round's operations per second. */
  rounds: number[];
  /**
   * Median over rounds of this pool's ops/s divided by mysql2's pool's in the same round:
   * paired, so drift on the machine between rounds cancels out.
   */
  ratioToMysql2: number;
  p50Us: number;
  p99Us: number;
}

export interface Progress {
  (line: string): void;
}

async function drive(contender: Contender, concurrency: number, durationMs: number, histogram: hdr.Histogram | undefined): Promise<number> {
  let ops = 0;
  const until = performance.now() + durationMs;
  const worker = async () => {
    while (performance.now() < until) {
      const start = performance.now();
      await contender.query('SELECT 1');
      histogram?.recordValue(Math.max(1, Math.round((performance.now() - start) * 1000)));
      ops++;
    }
  };
  const startedAt = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return (ops * 1000) / (performance.now() - startedAt);
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** SELECT 1 at each concurrency, for each pool size; also counts this library's pings. */
export async function throughput(
  server: TestServer,
  sizes: number[],
  concurrencies: number[],
  rounds: number,
  roundMs: number,
  progress: Progress,
): Promise<{ figures: ThroughputFigure[]; hotPings: number; hotOps: number }> {
  const figures: ThroughputFigure[] = [];
  let hotPings = 0;
  let hotOps = 0;
  for (const size of sizes) {
    const contenders = CONTENDER_NAMES.map((name) => createContender(name, { url: server.url, size }));
    try {
      for (const c of contenders) await drive(c, size, 300, undefined); // open the connections, warm the JIT
      for (const concurrency of concurrencies) {
        const results = contenders.map(() => ({ rounds: [] as number[], histogram: hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 }) }));
        const fresh = contenders[0]!;
        for (let round = 0; round < rounds; round++) {
          for (const [i, c] of contenders.entries()) {
            progress(`throughput size=${size} concurrency=${concurrency} round ${round + 1}/${rounds} ${c.name}`);
            // Each pool starts its round on equal terms: no garbage left by the one before,
            // its own connections and code warm again.
            (globalThis as { gc?: () => void }).gc?.();
            await drive(c, concurrency, Math.min(200, roundMs / 2), undefined);
            // Pings are counted in the measured part only: the warm-up may bring back
            // connections that sat idle past connWaitAge while other pools ran, which are
            // pinged once, as they should be.
            const pingsBefore = c.pings();
            const opsPerSec = await drive(c, concurrency, roundMs, results[i]!.histogram);
            if (c === fresh) hotPings += c.pings() - pingsBefore;
            results[i]!.rounds.push(opsPerSec);
            if (i === 0) hotOps += Math.round((opsPerSec * roundMs) / 1000);
          }
        }
        const baselineRounds = results[CONTENDER_NAMES.indexOf('mysql2-pool')]!.rounds;
        for (const [i, c] of contenders.entries()) {
          const r = results[i]!;
          figures.push({
            pool: c.name as Name,
            size,
            concurrency,
            opsPerSec: median(r.rounds),
            rounds: r.rounds.map(Math.round),
            ratioToMysql2: median(r.rounds.map((ops, round) => ops / baselineRounds[round]!)),
            p50Us: r.histogram.getValueAtPercentile(50),
            p99Us: r.histogram.getValueAtPercentile(99),
          });
          r.histogram.destroy();
        }
      }
    } finally {
      await Promise.all(contenders.map((c) => c.end()));
    }
  }
  return { figures, hotPings, hotOps };
}

/** Borrow and give back with no statement, one caller: the pool's own cost per borrow. */
export async function borrowOverhead(server: TestServer, borrows: number, rounds: number, progress: Progress): Promise<Array<{ pool: Name; usPerBorrow: number }>> {
  const contenders = CONTENDER_NAMES.map((name) => createContender(name, { url: server.url, size: 4 }));
  const perRound = contenders.map(() => [] as number[]);
  try {
    for (const c of contenders) for (let i = 0; i < 1_000; i++) await c.borrow();
    for (let round = 0; round < rounds; round++) {
      for (const [i, c] of contenders.entries()) {
        progress(`borrow overhead round ${round + 1}/${rounds} ${c.name}`);
        const start = performance.now();
        for (let n = 0; n < borrows; n++) await c.borrow();
        perRound[i]!.push(((performance.now() - start) * 1000) / borrows);
      }
    }
  } finally {
    await Promise.all(contenders.map((c) => c.end()));
  }
  return contenders.map((c, i) => ({ pool: c.name as Name, usPerBorrow: median(perRound[i]!) }));
}

/** Connections left idle past connWaitAge, then used: the ping is paid then, and only then. */
export async function idleStretches(
  server: TestServer,
  cycles: number,
  idleMs: number,
  burst: number,
  progress: Progress,
): Promise<{ connWaitAgeMs: number; borrows: number; pings: number; pingsPer1000: number }> {
  const connWaitAgeMs = Math.floor(idleMs * 0.6);
  const fresh = createContender('fresh-pool', { url: server.url, size: 8, connWaitAge: connWaitAgeMs });
  let borrows = 0;
  try {
    await fresh.query('SELECT 1');
    const before = fresh.pings();
    for (let cycle = 0; cycle < cycles; cycle++) {
      progress(`idle stretches cycle ${cycle + 1}/${cycles}`);
      await sleep(idleMs);
      for (let i = 0; i < burst; i++) {
        await fresh.query('SELECT 1');
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
  pool: Name;
  calls: number;
  errors: number;
  /** Error codes seen, with counts. */
  codes: Record<string, number>;
}

/**
 * A server with a short wait_timeout; each cycle: an idle stretch past it, a busy-loop
 * stretch past it, and a KILL of every pooled connection while the loop is busy; after each,
 * `callsPerPhase` concurrent calls on every pool, issued at once. Counts what users would see.
 */
export async function faults(server: TestServer, waitTimeoutSeconds: number, cycles: number, callsPerPhase: number, progress: Progress): Promise<FaultFigure[]> {
  const contenders = CONTENDER_NAMES.map((name) => createContender(name, { url: server.url, size: callsPerPhase }));
  const figures: FaultFigure[] = contenders.map((c) => ({ pool: c.name as Name, calls: 0, errors: 0, codes: {} }));
  const burst = () =>
    Promise.all(
      contenders.flatMap((c, i) =>
        Array.from({ length: callsPerPhase }, () => {
          figures[i]!.calls++;
          return c.query('SELECT 1').catch((err: { code?: unknown; message?: string }) => {
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
      progress(`faults cycle ${cycle + 1}/${cycles}: idle stretch`);
      await burst();
      await sleep(stretchMs);
      await burst();
      progress(`faults cycle ${cycle + 1}/${cycles}: busy event loop`);
      busyWait(stretchMs);
      await burst();
      progress(`faults cycle ${cycle + 1}/${cycles}: KILL while busy`);
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
export async function memory(server: TestServer, borrows: number, progress: Progress): Promise<{ borrows: number; heapBeforeBytes: number; heapAfterBytes: number; bytesPerBorrow: number } | undefined> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return undefined;
  const fresh = createContender('fresh-pool', { url: server.url, size: 4 });
  try {
    for (let i = 0; i < 20_000; i++) await fresh.borrow();
    gc();
    gc();
    const heapBeforeBytes = process.memoryUsage().heapUsed;
    for (let i = 0; i < borrows; i++) {
      if (i % 100_000 === 0) progress(`memory: ${i.toLocaleString('en')} / ${borrows.toLocaleString('en')} borrows`);
      await fresh.borrow();
    }
    gc();
    gc();
    const heapAfterBytes = process.memoryUsage().heapUsed;
    return { borrows, heapBeforeBytes, heapAfterBytes, bytesPerBorrow: (heapAfterBytes - heapBeforeBytes) / borrows };
  } finally {
    await fresh.end();
  }
}
