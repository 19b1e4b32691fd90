/**
 * Turns the benchmark's figures into the table printed on stdout (and quoted in the README),
 * the SVG chart, and the verdict on each target of the issue.
 */
import type { FaultFigure, ThroughputFigure } from './workloads.js';

export interface BenchResult {
  date: string;
  quick: boolean;
  machine: { cores: number; cpu: string; node: string; platform: string };
  server: { version: string };
  versions: Record<string, string>;
  throughput: ThroughputFigure[];
  hotWorkload: { borrows: number; pings: number; pingsPer1000: number };
  borrowOverhead: Array<{ pool: string; usPerBorrow: number }>;
  idleStretches: { connWaitAgeMs: number; borrows: number; pings: number; pingsPer1000: number };
  faults: FaultFigure[] | undefined;
  memory: { borrows: number; heapBeforeBytes: number; heapAfterBytes: number; bytesPerBorrow: number } | undefined;
}

export interface Target {
  name: string;
  met: boolean;
  figure: string;
}

const baseline = (figures: ThroughputFigure[], f: ThroughputFigure) =>
  figures.find((b) => b.pool === 'mysql2-pool' && b.size === f.size && b.concurrency === f.concurrency)!;
const fixed = (n: number, digits = 2) => n.toFixed(digits);

/** The targets, each with the figure that decides it. */
export function targetsOf(r: BenchResult): Target[] {
  const ours = r.throughput.filter((f) => f.pool === 'fresh-pool');
  const vsMysql2 = ours.map((f) => f.ratioToMysql2);
  const vsPing = ours.map((f) => {
    const ping = r.throughput.find((o) => o.pool === 'generic-pool+ping' && o.size === f.size && o.concurrency === f.concurrency)!;
    return f.ratioToMysql2 / ping.ratioToMysql2;
  });
  const targets: Target[] = [
    { name: 'throughput >= 0.95 x mysql2 pool at every concurrency', met: Math.min(...vsMysql2) >= 0.95, figure: `min ${fixed(Math.min(...vsMysql2))}` },
    { name: 'throughput >= 1.7 x generic-pool pinging on every borrow', met: Math.min(...vsPing) >= 1.7, figure: `min ${fixed(Math.min(...vsPing))}` },
    { name: 'zero pings on the hot workload', met: r.hotWorkload.pings === 0, figure: `${r.hotWorkload.pings} pings in ${r.hotWorkload.borrows} borrows` },
  ];
  if (r.faults) {
    const mine = r.faults.find((f) => f.pool === 'fresh-pool')!;
    const theirs = r.faults.find((f) => f.pool === 'mysql2-pool')!;
    targets.push({ name: 'zero user-visible errors under faults (mysql2 pool has some)', met: mine.errors === 0 && theirs.errors > 0, figure: `ours ${mine.errors}, mysql2 ${theirs.errors}` });
  }
  if (r.memory) {
    // Noise from a GC'd heap is a few hundred KB; growth per borrow below 0.1 byte is none.
    targets.push({ name: 'no heap growth per borrow', met: r.memory.bytesPerBorrow < 0.1, figure: `${fixed(r.memory.bytesPerBorrow, 3)} B/borrow` });
  }
  return targets;
}

/** The plain-text table. */
export function renderTable(r: BenchResult & { targets: Target[] }): string {
  const lines: string[] = [];
  lines.push(`mysql-fresh-pool benchmark, ${r.date.slice(0, 10)}: ${r.machine.cores} cores (${r.machine.cpu}), Node ${r.machine.node}, MariaDB ${r.server.version}, mysql2 ${r.versions.mysql2}, generic-pool ${r.versions['generic-pool']}`);
  lines.push('');
  lines.push('SELECT 1 throughput and latency (x mysql2: median of per-round ratios to mysql2 pool, same run)');
  lines.push(row(['pool', 'size', 'conc', 'ops/s', 'x mysql2', 'p50 us', 'p99 us', 'p99 x mysql2']));
  for (const f of r.throughput) {
    const b = baseline(r.throughput, f);
    lines.push(row([f.pool, String(f.size), String(f.concurrency), String(Math.round(f.opsPerSec)), fixed(f.ratioToMysql2), String(f.p50Us), String(f.p99Us), fixed(f.p99Us / b.p99Us)]));
  }
  lines.push('');
  lines.push('Borrow and return, no statement (one caller)');
  for (const b of r.borrowOverhead) lines.push(row([b.pool, `${fixed(b.usPerBorrow)} us/borrow`]));
  lines.push('');
  lines.push(`Pings per 1000 borrows: hot workload ${fixed(r.hotWorkload.pingsPer1000)} (${r.hotWorkload.pings} in ${r.hotWorkload.borrows}); ` +
    `after idle stretches past connWaitAge=${r.idleStretches.connWaitAgeMs} ms ${fixed(r.idleStretches.pingsPer1000)} (${r.idleStretches.pings} in ${r.idleStretches.borrows}); generic-pool+ping 1000`);
  if (r.faults) {
    lines.push('');
    lines.push('Faults (wait_timeout, busy loop, KILL): user-visible errors');
    for (const f of r.faults) lines.push(row([f.pool, `${f.errors} / ${f.calls} calls`, Object.entries(f.codes).map(([c, n]) => `${c}: ${n}`).join(', ')]));
  }
  if (r.memory) {
    lines.push('');
    lines.push(`Memory: heap ${mb(r.memory.heapBeforeBytes)} after warm-up, ${mb(r.memory.heapAfterBytes)} after ${r.memory.borrows.toLocaleString('en')} borrows: ${fixed(r.memory.bytesPerBorrow, 3)} bytes per borrow`);
  }
  lines.push('');
  lines.push('Targets');
  for (const t of r.targets) lines.push(row([t.met ? 'met' : 'MISSED', t.name, t.figure]));
  return `${lines.join('\n')}\n`;
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

function row(cells: string[]): string {
  const widths = [18, 5, 5, 8, 9, 8, 8, 12];
  return cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' ').trimEnd();
}

const COLORS: Record<string, string> = {
  'fresh-pool': '#2b8a3e',
  'mysql2-pool': '#1c7ed6',
  'generic-pool': '#868e96',
  'generic-pool+ping': '#e8590c',
};

/** A grouped bar chart: throughput (ops/s) and p99 (us) per pool, for each size and concurrency. */
export function renderSvg(r: BenchResult): string {
  const groups = [...new Set(r.throughput.map((f) => `${f.size}/${f.concurrency}`))];
  const pools = Object.keys(COLORS);
  const barW = 14;
  const groupW = pools.length * barW + 24;
  const chartH = 180;
  const width = 80 + groups.length * groupW + 20;
  const height = 2 * (chartH + 60) + 60;
  const parts: string[] = [];
  const panel = (top: number, title: string, value: (f: ThroughputFigure) => number, unit: string) => {
    const max = Math.max(...r.throughput.map(value));
    parts.push(`<text x="10" y="${top - 10}" font-size="13" font-weight="bold">${title}</text>`);
    parts.push(`<line x1="70" y1="${top + chartH}" x2="${width - 10}" y2="${top + chartH}" stroke="#333"/>`);
    parts.push(`<text x="10" y="${top + 10}" font-size="10">${Math.round(max)} ${unit}</text>`);
    groups.forEach((g, gi) => {
      const x0 = 80 + gi * groupW;
      pools.forEach((pool, pi) => {
        const f = r.throughput.find((t) => t.pool === pool && `${t.size}/${t.concurrency}` === g);
        if (!f) return;
        const h = (value(f) / max) * chartH;
        parts.push(`<rect x="${x0 + pi * barW}" y="${(top + chartH - h).toFixed(1)}" width="${barW - 2}" height="${h.toFixed(1)}" fill="${COLORS[pool]}"><title>${pool} size ${f.size} concurrency ${f.concurrency}: ${Math.round(value(f))} ${unit}</title></rect>`);
      });
      parts.push(`<text x="${x0}" y="${top + chartH + 14}" font-size="10">size ${g.replace('/', ', conc ')}</text>`);
    });
  };
  panel(40, `SELECT 1 throughput (ops/s, higher is better) — ${r.date.slice(0, 10)}, ${r.machine.cores} cores, Node ${r.machine.node}, MariaDB ${r.server.version}`, (f) => f.opsPerSec, 'ops/s');
  panel(40 + chartH + 60, 'p99 latency (microseconds, lower is better)', (f) => f.p99Us, 'us');
  pools.forEach((pool, i) => {
    const x = 80 + i * 150;
    parts.push(`<rect x="${x}" y="${height - 22}" width="12" height="12" fill="${COLORS[pool]}"/><text x="${x + 16}" y="${height - 12}" font-size="11">${pool}</text>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${parts.join('')}</svg>\n`;
}
