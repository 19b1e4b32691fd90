/**
 * Turns a benchmark result (the JSON run.ts writes) into the text printed on stdout, the
 * Markdown block of the README, and the verdict on each target. Every figure is computed
 * here from the per-round numbers in the JSON, so a result can be re-reported at any time.
 *
 * Two statistics, and the tables say which is which:
 * - ops/s: the median over rounds of one contender's operations per second;
 * - × X: the median over rounds of the ratio of two contenders' ops/s in the same round
 *   (paired, so drift on the machine between rounds cancels), with the smallest and largest
 *   per-round ratio in brackets. The median of ratios is not the ratio of the medians.
 */
import { CLUSTER_CONTENDER, CONTENDER_NAMES, CONTENDER_NOTES, FAILOVER_NOTES, type ContenderName } from './contenders.js';
import { FAILOVER_GRACE_MS, median, type ClusterRoutingResult, type FailoverFigure, type FailoverResult, type FaultFigure, type ThroughputFigure, type Workload } from './workloads.js';

export interface BenchResult {
  schema: 2;
  date: string;
  quick: boolean;
  durationMs?: number;
  settings: {
    size: number;
    concurrencies: number[];
    rounds: number;
    roundMs: number;
    warmMs: number;
    firstWarmMs: number;
    [key: string]: unknown;
  };
  machine: { cores: number; cpu: string; memoryBytes: number; node: string; platform: string };
  pinning: { client: number | null; server: number | null; note: string };
  server: { version: string; external: boolean; tuned: boolean };
  versions: Record<string, string>;
  workloads: Array<Pick<Workload, 'id' | 'title' | 'sql'>>;
  throughput: ThroughputFigure[];
  hotWorkload: { borrows: number; pings: number; pingsPer1000: number };
  borrowOverhead: Array<{ pool: string; usPerBorrow: number; rounds: number[] }>;
  idleStretches: { connWaitAgeMs: number; borrows: number; pings: number; pingsPer1000: number };
  faults: FaultFigure[] | undefined;
  memory: { borrows: number; heapBeforeBytes: number; heapAfterBytes: number; bytesPerBorrow: number } | undefined;
  /** The cluster section; absent in results made before it existed. */
  cluster?: {
    routing: ClusterRoutingResult;
    /** Undefined when skipped (MYSQL_URL) or failed (`failoverError` says why). */
    failover: FailoverResult | undefined;
    failoverError?: string;
  };
}

export interface Ratio {
  median: number;
  min: number;
  max: number;
}

export interface Target {
  name: string;
  met: boolean;
  figure: string;
}

/** Per-round ratios a[i] / b[i], summarised. */
export function pairedRatio(a: number[], b: number[]): Ratio {
  const ratios = a.map((x, i) => x / b[i]!).filter((x) => Number.isFinite(x));
  if (ratios.length === 0) return { median: NaN, min: NaN, max: NaN };
  return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) };
}

/** The spread of the per-round ratios is wider than the ratio's distance from 1. */
export const withinNoise = (r: Ratio) => Math.abs(r.median - 1) < (r.max - r.min) / 2;

const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '—');
export const ratioText = (r: Ratio) => `${f2(r.median)} [${f2(r.min)}–${f2(r.max)}]${withinNoise(r) ? ' *' : ''}`;
const int = (n: number) => Math.round(n).toLocaleString('en');

export function figureOf(r: BenchResult, workload: string, pool: ContenderName, concurrency: number): ThroughputFigure | undefined {
  return r.throughput.find((f) => f.workload === workload && f.pool === pool && f.concurrency === concurrency);
}

/** Throughput of `a` ÷ throughput of `b`, per round; undefined when either is missing. */
export function opsRatio(r: BenchResult, workload: string, concurrency: number, a: ContenderName, b: ContenderName): Ratio | undefined {
  const fa = figureOf(r, workload, a, concurrency);
  const fb = figureOf(r, workload, b, concurrency);
  return fa && fb ? pairedRatio(fa.rounds, fb.rounds) : undefined;
}

/** p99 of `a` ÷ p99 of `b`, per round. */
export function p99Ratio(r: BenchResult, workload: string, concurrency: number, a: ContenderName, b: ContenderName): Ratio | undefined {
  const fa = figureOf(r, workload, a, concurrency);
  const fb = figureOf(r, workload, b, concurrency);
  return fa && fb ? pairedRatio(fa.roundP99Us, fb.roundP99Us) : undefined;
}

interface Comparison {
  key: string;
  label: string;
  a: ContenderName;
  b: ContenderName;
  kind: 'ops' | 'p99';
  /** Met when the median is at least (ops) or at most (p99) this. */
  threshold: number;
  /** The target holds at these concurrencies only; elsewhere the figure is shown for reference. */
  concurrencies?: number[];
}

/** The comparisons the issue sets targets on, each paired round by round. */
export const COMPARISONS: Comparison[] = [
  { key: 'vsMysql2', label: 'fresh-pool ÷ mysql2-pool, both defaults (target ≥ 1.15)', a: 'fresh-pool', b: 'mysql2-pool', kind: 'ops', threshold: 1.15 },
  {
    key: 'vsMysql2NoTrace',
    label: 'fresh-pool ÷ mysql2-pool, both trace:false (target ≥ 0.97)',
    a: 'fresh-pool trace:false',
    b: 'mysql2-pool trace:false',
    kind: 'ops',
    threshold: 0.97,
  },
  { key: 'vsRaw', label: 'fresh-pool ÷ raw mysql2, both defaults (target ≥ 0.93 at concurrency 1)', a: 'fresh-pool', b: 'raw mysql2', kind: 'ops', threshold: 0.93, concurrencies: [1] },
  { key: 'p99', label: 'p99 fresh-pool ÷ mysql2-pool, both defaults (target ≤ 1.1)', a: 'fresh-pool', b: 'mysql2-pool', kind: 'p99', threshold: 1.1 },
];

/** The cluster's routing cost: a one-node cluster against a pool on the same server, same settings. */
export const ROUTING: Comparison = {
  key: 'clusterRouting',
  label: 'fresh-cluster (one node) ÷ fresh-pool, same server, same settings (target ≥ 0.97)',
  a: CLUSTER_CONTENDER,
  b: 'fresh-pool',
  kind: 'ops',
  threshold: 0.97,
};

const meets = (c: Comparison, x: number) => (c.kind === 'ops' ? x >= c.threshold : x <= c.threshold);
const applies = (c: Comparison, concurrency: number) => !c.concurrencies || c.concurrencies.includes(concurrency);

interface Cell {
  workload: string;
  concurrency: number;
  ratio: Ratio;
}

function cellsOf(r: BenchResult, c: Comparison): Cell[] {
  const cells: Cell[] = [];
  for (const w of r.workloads) {
    for (const concurrency of r.settings.concurrencies) {
      if (!applies(c, concurrency)) continue;
      const ratio = c.kind === 'ops' ? opsRatio(r, w.id, concurrency, c.a, c.b) : p99Ratio(r, w.id, concurrency, c.a, c.b);
      if (ratio) cells.push({ workload: w.title, concurrency, ratio });
    }
  }
  return cells;
}

function routingFigure(r: BenchResult, workload: string, pool: ContenderName, concurrency: number): ThroughputFigure | undefined {
  return r.cluster?.routing.figures.find((f) => f.workload === workload && f.pool === pool && f.concurrency === concurrency);
}

/** The routing-cost cells: one per workload and concurrency of the cluster section. */
function routingCells(r: BenchResult): Cell[] {
  const routing = r.cluster?.routing;
  if (!routing) return [];
  const cells: Cell[] = [];
  for (const id of routing.workloads) {
    const title = r.workloads.find((w) => w.id === id)?.title ?? id;
    for (const concurrency of routing.concurrencies) {
      const a = routingFigure(r, id, ROUTING.a, concurrency);
      const b = routingFigure(r, id, ROUTING.b, concurrency);
      if (a && b) cells.push({ workload: title, concurrency, ratio: pairedRatio(a.rounds, b.rounds) });
    }
  }
  return cells;
}

/** A comparison's verdict over its cells: met when every cell is; undefined without cells. */
function targetOf(c: Comparison, cells: Cell[]): Target | undefined {
  if (cells.length === 0) return undefined;
  const worst = cells.reduce((w, x) => ((c.kind === 'ops' ? x.ratio.median < w.ratio.median : x.ratio.median > w.ratio.median) ? x : w));
  const met = cells.filter((x) => meets(c, x.ratio.median)).length;
  const straddle = cells.filter((x) => x.ratio.min < c.threshold && x.ratio.max > c.threshold).length;
  return {
    name: c.label.replace(/ \(target (.*)\)$/, ': $1'),
    met: met === cells.length,
    figure: `${met}/${cells.length} cells met; worst ${worst.workload} at concurrency ${worst.concurrency}: ${ratioText(worst.ratio)}` +
      (straddle ? `; ${straddle} cell(s) with rounds on both sides of ${c.threshold}` : ''),
  };
}

const uncaughtOf = (x: FailoverFigure) => Object.values(x.uncaught ?? {}).reduce((a, b) => a + b, 0);

const FAILOVER_TARGET = 'cluster failover: reads never fail, at most the writes in flight fail, writes resume on the new primary (mysql2 PoolCluster fails writes)';

/** The failover target: ours against mysql2's PoolCluster through the same scripted failover. */
function failoverTarget(r: BenchResult): Target | undefined {
  const cluster = r.cluster;
  if (!cluster) return undefined;
  if (!cluster.failover) return cluster.failoverError === undefined ? undefined : { name: FAILOVER_TARGET, met: false, figure: `not run: ${cluster.failoverError}` };
  const f = cluster.failover;
  const mine = f.figures.find((x) => x.pool === 'fresh-cluster');
  const theirs = f.figures.find((x) => x.pool === 'mysql2 PoolCluster');
  if (!mine || !theirs) return undefined;
  const describe = (x: FailoverFigure) =>
    `${x.writes.errors} write errors, ${x.reads.errors} read errors, ${int(x.writesAfterFailover)} writes after the failover` +
    (uncaughtOf(x) ? `, ${uncaughtOf(x)} uncaught exceptions` : '');
  return {
    name: FAILOVER_TARGET,
    met: mine.reads.errors === 0 && mine.writes.errors <= f.writers && mine.writesAfterFailover > 0 && uncaughtOf(mine) === 0 && theirs.writes.errors > 0,
    figure: `ours ${describe(mine)}; PoolCluster ${describe(theirs)}`,
  };
}

/** The issue's targets, each with the figure that decides it. */
export function targetsOf(r: BenchResult): Target[] {
  const targets: Target[] = [];
  for (const c of COMPARISONS) {
    const target = targetOf(c, cellsOf(r, c));
    if (target) targets.push(target);
  }
  targets.push({ name: 'zero pings on the hot workload', met: r.hotWorkload.pings === 0, figure: `${r.hotWorkload.pings} pings in ${int(r.hotWorkload.borrows)} borrows` });
  if (r.faults) {
    const mine = r.faults.find((f) => f.pool === 'fresh-pool');
    const theirs = r.faults.find((f) => f.pool === 'mysql2-pool');
    if (mine && theirs) targets.push({ name: 'zero user-visible errors under faults (mysql2 pool has some)', met: mine.errors === 0 && theirs.errors > 0, figure: `ours ${mine.errors}, mysql2 ${theirs.errors}` });
  }
  if (r.memory) {
    // Noise from a GC'd heap is a few hundred KB; growth per borrow below 0.1 byte is none.
    targets.push({ name: 'no heap growth per borrow', met: r.memory.bytesPerBorrow < 0.1, figure: `${r.memory.bytesPerBorrow.toFixed(3)} B/borrow` });
  }
  const routing = targetOf(ROUTING, routingCells(r));
  if (routing) targets.push(routing);
  const failover = failoverTarget(r);
  if (failover) targets.push(failover);
  return targets;
}

/** Target comparisons whose per-round spread is wider than their distance from 1. */
export function noiseWarnings(r: BenchResult): string[] {
  const out: string[] = [];
  for (const c of COMPARISONS) {
    for (const cell of cellsOf(r, c)) {
      if (withinNoise(cell.ratio)) out.push(`${cell.workload}, concurrency ${cell.concurrency}, ${c.label.replace(/ \(target.*\)/, '')}: ${ratioText(cell.ratio)}`);
    }
  }
  for (const cell of routingCells(r)) {
    if (withinNoise(cell.ratio)) out.push(`${cell.workload}, concurrency ${cell.concurrency}, ${ROUTING.label.replace(/ \(target.*\)/, '')}: ${ratioText(cell.ratio)}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Tables: one model, rendered as aligned text (terminal) or Markdown (README).

interface Table {
  headers: string[];
  rows: string[][];
  /** Right-aligned columns (numbers). */
  right?: number[];
}

function renderText(t: Table): string {
  const n = t.headers.length;
  const widths = Array.from({ length: n }, (_, i) => {
    const cells = Math.max(0, ...t.rows.map((row) => (row[i] ?? '').length));
    const longestWord = Math.max(...t.headers[i]!.split(' ').map((w) => w.length));
    return Math.max(cells, longestWord, Math.min(t.headers[i]!.length, 16));
  });
  // Headers wrap onto as many lines as they need within their column.
  const wrapped = t.headers.map((h, i) => {
    const lines: string[] = [];
    for (const word of h.split(' ')) {
      const last = lines.length - 1;
      if (last >= 0 && lines[last]!.length + 1 + word.length <= widths[i]!) lines[last] += ` ${word}`;
      else lines.push(word);
    }
    return lines;
  });
  const height = Math.max(...wrapped.map((l) => l.length));
  const pad = (s: string, i: number) => (t.right?.includes(i) ? s.padStart(widths[i]!) : s.padEnd(widths[i]!));
  const lines: string[] = [];
  for (let l = 0; l < height; l++) lines.push(wrapped.map((w, i) => pad(w[l] ?? '', i)).join('  ').trimEnd());
  lines.push(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of t.rows) lines.push(row.map((c, i) => pad(c, i)).join('  ').trimEnd());
  return lines.join('\n');
}

function renderMarkdown(t: Table): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const lines = [`| ${t.headers.map(esc).join(' | ')} |`, `| ${t.headers.map((_, i) => (t.right?.includes(i) ? '---:' : '---')).join(' | ')} |`];
  for (const row of t.rows) lines.push(`| ${row.map(esc).join(' | ')} |`);
  return lines.join('\n');
}

const HEADERS = {
  ops: 'ops/s (median of rounds)',
  ratio: '× mysql2-pool (median of per-round ratios) [min–max]',
  p50: 'p50 µs (all rounds)',
  p99: 'p99 µs (all rounds)',
  p99Ratio: 'p99 × mysql2-pool (median of per-round ratios) [min–max]',
};

function workloadTable(r: BenchResult, workload: string): Table {
  const rows: string[][] = [];
  for (const concurrency of r.settings.concurrencies) {
    for (const pool of CONTENDER_NAMES) {
      const f = figureOf(r, workload, pool, concurrency);
      if (!f) continue;
      const baseline = pool === 'mysql2-pool';
      const ops = opsRatio(r, workload, concurrency, pool, 'mysql2-pool');
      const p99 = p99Ratio(r, workload, concurrency, pool, 'mysql2-pool');
      rows.push([
        String(concurrency),
        pool,
        int(f.opsPerSec),
        baseline ? '1 (baseline)' : ops ? ratioText(ops) : '—',
        int(f.p50Us),
        int(f.p99Us),
        baseline ? '1 (baseline)' : p99 ? ratioText(p99) : '—',
      ]);
    }
  }
  return { headers: ['concurrency', 'pool', HEADERS.ops, HEADERS.ratio, HEADERS.p50, HEADERS.p99, HEADERS.p99Ratio], rows, right: [0, 2, 4, 5] };
}

function comparisonTable(r: BenchResult): Table {
  const rows: string[][] = [];
  for (const w of r.workloads) {
    for (const concurrency of r.settings.concurrencies) {
      const cells = COMPARISONS.map((c) => {
        const ratio = c.kind === 'ops' ? opsRatio(r, w.id, concurrency, c.a, c.b) : p99Ratio(r, w.id, concurrency, c.a, c.b);
        if (!ratio) return '—';
        const mark = applies(c, concurrency) ? (meets(c, ratio.median) ? ' ✓' : ' ✗') : '';
        return `${ratioText(ratio)}${mark}`;
      });
      rows.push([w.title, String(concurrency), ...cells]);
    }
  }
  return { headers: ['workload', 'concurrency', ...COMPARISONS.map((c) => c.label)], rows, right: [1] };
}

function contenderTable(): Table {
  return { headers: ['pool', 'what it is'], rows: CONTENDER_NAMES.map((n) => [n, CONTENDER_NOTES[n]]) };
}

function borrowTable(r: BenchResult): Table {
  return { headers: ['pool', 'µs per borrow (median of rounds)'], rows: r.borrowOverhead.map((b) => [b.pool, b.usPerBorrow.toFixed(2)]), right: [1] };
}

function faultTable(faults: FaultFigure[]): Table {
  return {
    headers: ['pool', 'errors / calls', 'codes'],
    rows: faults.map((f) => [f.pool, `${f.errors} / ${f.calls}`, Object.entries(f.codes).map(([c, n]) => `${c}: ${n}`).join(', ') || '—']),
  };
}

function routingTable(r: BenchResult): Table {
  const rows: string[][] = [];
  const routing = r.cluster!.routing;
  for (const id of routing.workloads) {
    const title = r.workloads.find((w) => w.id === id)?.title ?? id;
    for (const concurrency of routing.concurrencies) {
      const a = routingFigure(r, id, ROUTING.a, concurrency);
      const b = routingFigure(r, id, ROUTING.b, concurrency);
      if (!a || !b) continue;
      const ratio = pairedRatio(a.rounds, b.rounds);
      rows.push([
        title,
        String(concurrency),
        int(a.opsPerSec),
        int(b.opsPerSec),
        `${ratioText(ratio)}${meets(ROUTING, ratio.median) ? ' ✓' : ' ✗'}`,
        `${int(a.p99Us)} / ${int(b.p99Us)}`,
      ]);
    }
  }
  return {
    headers: [
      'workload',
      'concurrency',
      `${ROUTING.a} ops/s (median of rounds)`,
      `${ROUTING.b} ops/s (median of rounds)`,
      `${ROUTING.a} ÷ ${ROUTING.b} (median of per-round ratios) [min–max], target ≥ ${ROUTING.threshold}`,
      'p99 µs cluster / pool (all rounds)',
    ],
    rows,
    right: [1, 2, 3, 5],
  };
}

function failoverTable(f: FailoverResult): Table {
  const ms = (n: number | null) => (n === null ? 'never' : int(n));
  const codes = (x: FailoverFigure) =>
    Object.entries({ ...x.writes.codes, ...x.reads.codes })
      .map(([code]) => `${code}: ${(x.writes.codes[code] ?? 0) + (x.reads.codes[code] ?? 0)}`)
      .join(', ') || '—';
  return {
    headers: [
      'pool',
      'write errors / writes',
      'read errors / reads',
      'writes after the failover',
      'first write after the kill, ms',
      'longest write / read, ms',
      'failover (kill → promoted), ms',
      'uncaught exceptions (each fatal without a handler)',
      'codes',
    ],
    rows: f.figures.map((x) => [
      x.pool,
      `${int(x.writes.errors)} / ${int(x.writes.calls)}`,
      `${int(x.reads.errors)} / ${int(x.reads.calls)}`,
      int(x.writesAfterFailover),
      ms(x.firstWriteAfterKillMs),
      `${int(x.writes.longestMs)} / ${int(x.reads.longestMs)}`,
      int(x.failoverMs),
      uncaughtOf(x) ? `${uncaughtOf(x)} (${Object.entries(x.uncaught).map(([code, k]) => `${code}: ${k}`).join(', ')})` : '0',
      codes(x),
    ]),
    right: [1, 2, 3, 4, 5, 6],
  };
}

function failoverContenderTable(): Table {
  return { headers: ['pool', 'what it is'], rows: Object.entries(FAILOVER_NOTES) };
}

/** The cluster section: routing cost and failover, each a heading, a line on how, and a table. */
function clusterSections(r: BenchResult, render: (t: Table) => string, heading: (s: string) => string): string[] {
  const c = r.cluster;
  if (!c) return [];
  const out: string[] = [];
  out.push(
    heading('Cluster: routing cost (a one-node createCluster ÷ createPool on the same server, same settings)') +
      `Both with max ${r.settings.size}, acquireTimeout 30 s, a silent logger, borrows by withConnection (the cluster's default route, the writer); ` +
      `the same paired, rotating rounds as above (${r.settings.rounds} of ${r.settings.roundMs} ms each). The cluster's monitor checks its node every second on a connection of its own.\n\n` +
      render(routingTable(r)),
  );
  const f = c.failover;
  const title = 'Cluster: failover (kill -9 the primary, promote a replica, repoint the other) — what the callers saw';
  if (f) {
    out.push(
      heading(title) +
        `Each pool on a primary with two replicas of its own (MariaDB GTID replication on loopback, application user): ${f.writers} callers inserting and ${f.readers} reading, ` +
        `each starting one call every ${f.cycleMs} ms (at once when a call took longer); ${int(f.leadMs)} ms of calls, then the primary killed (kill -9), ` +
        `the replica that received most promoted and the other repointed at it, as an orchestrator does, then ${int(f.windowMs)} ms more. ` +
        `Every call of the run is counted; a call still unsettled ${int(FAILOVER_GRACE_MS)} ms after the window counts as an error (unsettled). ` +
        `Uncaught exceptions are counted by a process listener for the run: without one, each would have ended the process. ${f.size} connections per node.\n\n` +
        render(failoverContenderTable()) +
        '\n\n' +
        render(failoverTable(f)),
    );
  } else if (c.failoverError !== undefined) {
    out.push(heading(title) + `Not run: ${c.failoverError}`);
  }
  return out;
}

function targetTable(targets: Target[]): Table {
  return { headers: ['target', 'verdict', 'figure'], rows: targets.map((t) => [t.name, t.met ? 'met' : 'MISSED', t.figure]) };
}

export function describeRun(r: BenchResult): string {
  const s = r.settings;
  return (
    `${r.date.slice(0, 10)}${r.quick ? ' (QUICK RUN: not for figures)' : ''}: ${r.machine.cores} cores (${r.machine.cpu}), ${r.machine.platform}, Node ${r.machine.node}, ` +
    `MariaDB ${r.server.version}${r.server.external ? ' (external server)' : ' (private server on loopback)'}, ` +
    `${Object.entries(r.versions).map(([k, v]) => `${k} ${v}`).join(', ')}. ${r.pinning.note}. ` +
    `Pool size ${s.size}; concurrency ${s.concurrencies.join(', ')}; ${s.rounds} rounds of ${s.roundMs} ms per pool ` +
    `(after ${s.warmMs} ms unmeasured), the pools' order rotating each round.`
  );
}

const LEGEND = [
  'ops/s (median of rounds): each pool\'s operations per second, median over the rounds.',
  '× X (median of per-round ratios) [min–max]: in each round, this pool\'s ops/s ÷ X\'s ops/s in the same round; the median of those ratios, ' +
    'then the smallest and largest. The median of ratios is not the ratio of the medians, so the two columns need not divide exactly.',
  '`*` after a ratio: the spread of the per-round ratios is wider than the difference from 1 (|median − 1| < (max − min) / 2): within noise.',
  'µs columns: latency of one operation (borrow, statements, give back), from an HDR histogram over every measured operation of every round.',
];

function notes(r: BenchResult): string[] {
  const out = [
    "Every pool runs the same SQL through mysql2's promise query(). The short transaction is START TRANSACTION, UPDATE, COMMIT on one borrowed " +
      'connection for every pool: for fresh-pool that is withConnection with the three statements, not withTransaction, so the SQL is identical.',
    `Pools have ${r.settings.size} connections; raw mysql2 has one connection per caller (at concurrency 64, 64 connections).`,
  ];
  if (r.server.tuned) {
    out.push('On its private server the benchmark sets innodb_flush_log_at_trx_commit = 2 and a 64 MB buffer pool, so the transaction measures the pools, not the disk.');
  }
  return out;
}

interface Sections {
  comparison: string;
  /** Every pool, every workload, borrow cost, pings, faults, memory. */
  details: string[];
  cluster: string[];
  verdicts: string;
}

function sections(r: BenchResult, targets: Target[], render: (t: Table) => string, heading: (s: string) => string): Sections {
  const comparison = heading('Targets, per workload and concurrency: each cell the median of the per-round ratios [min–max]; ✓ met, ✗ missed, no mark: shown for reference') + render(comparisonTable(r));
  const out: string[] = [];
  for (const w of r.workloads) out.push(heading(w.sql === w.title ? w.title : `${w.title}: ${w.sql}`) + render(workloadTable(r, w.id)));
  out.push(heading('Borrow and give back, no statement, one caller (the pool\'s own cost)') + render(borrowTable(r)));
  out.push(
    heading('Pings') +
      `Hot workloads (every throughput round above, both fresh-pool contenders): ${r.hotWorkload.pings} pings in ${int(r.hotWorkload.borrows)} borrows. ` +
      `After idle stretches past connWaitAge = ${r.idleStretches.connWaitAgeMs} ms: ${r.idleStretches.pingsPer1000.toFixed(1)} per 1000 borrows ` +
      `(${r.idleStretches.pings} in ${int(r.idleStretches.borrows)}, one per stretch expected). generic-pool+ping: 1000 per 1000.`,
  );
  if (r.faults) {
    out.push(
      heading(`Faults: wait_timeout ${String(r.settings.waitTimeoutSeconds ?? 1)} s, idle and busy-loop stretches past it, KILL while busy — errors the callers saw`) +
        render(faultTable(r.faults)),
    );
  }
  if (r.memory) {
    out.push(
      heading('Memory') +
        `Heap ${mb(r.memory.heapBeforeBytes)} after a warm-up, ${mb(r.memory.heapAfterBytes)} after ${int(r.memory.borrows)} borrows: ${r.memory.bytesPerBorrow.toFixed(3)} bytes per borrow.`,
    );
  }
  return {
    comparison,
    details: out,
    cluster: clusterSections(r, render, heading),
    verdicts: heading('Target verdicts') + render(targetTable(targets)),
  };
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** The report for a terminal. */
export function renderReport(r: BenchResult): string {
  const targets = targetsOf(r);
  const out = [`mysql-fresh-pool benchmark, ${describeRun(r)}`, '', ...[...LEGEND, ...notes(r)].map((l) => `  ${l.replace(/`/g, '')}`), ''];
  const s = sections(r, targets, renderText, (h) => `${h}\n`);
  out.push([s.comparison, ...s.details, ...s.cluster, s.verdicts].join('\n\n'));
  const warnings = noiseWarnings(r);
  if (warnings.length) {
    out.push('', `WARNING: ${warnings.length} target comparison(s) within noise (spread of per-round ratios wider than the difference from 1):`);
    for (const w of warnings) out.push(`  ${w}`);
  }
  return `${out.join('\n')}\n`;
}

/** The Markdown block for the README, between the bench:table markers. */
export function renderMarkdownBlock(r: BenchResult, chartPath: string): string {
  const targets = targetsOf(r);
  const out: string[] = [];
  out.push(`Figures: ${describeRun(r)}`);
  out.push(`![Throughput per pool, workload and concurrency, and its ratio to mysql2's pool](${chartPath})`);
  out.push([...LEGEND, ...notes(r)].map((l) => `- ${l}`).join('\n'));
  out.push(renderMarkdown(contenderTable()));
  const s = sections(r, targets, renderMarkdown, (h) => `**${h}**\n\n`);
  // The long per-workload tables fold away; the targets, the cluster section and the verdicts stay in view.
  out.push(s.comparison, `<details><summary>Every pool, every workload, borrow cost, pings, faults, memory</summary>\n\n${s.details.join('\n\n')}\n\n</details>`, ...s.cluster, s.verdicts);
  const warnings = noiseWarnings(r);
  if (warnings.length) out.push(`**Within noise** (spread of the per-round ratios wider than the difference from 1):\n\n${warnings.map((w) => `- ${w}`).join('\n')}`);
  return out.join('\n\n');
}

export const MARKERS = { start: '<!-- bench:table:start -->', end: '<!-- bench:table:end -->' };

/** `text` with the block between the markers replaced; undefined when the markers are absent. */
export function replaceBlock(text: string, block: string): string | undefined {
  const start = text.indexOf(MARKERS.start);
  const end = text.indexOf(MARKERS.end);
  if (start < 0 || end < start) return undefined;
  return `${text.slice(0, start + MARKERS.start.length)}\n${block}\n${text.slice(end)}`;
}
