/**
 * `npm run bench`: starts a private MariaDB (or uses MYSQL_URL), pins this process and the
 * server to different cores when it can, runs every workload, prints the report on stdout,
 * and stops the server. Last comes the cluster section: a one-node cluster against a pool on the
 * same server (the routing cost), then a scripted failover (kill -9 the primary, promote a
 * replica) on a primary with two replicas of its own for this cluster and for mysql2's
 * PoolCluster (needs mariadbd; skipped with MYSQL_URL).
 *
 * Output: benchmarks/results/local/latest.{json,svg,png} (git-ignored; `quick.*` for a quick
 * run). Committed files are never touched unless asked: `--save` also writes the dated result
 * benchmarks/results/YYYY-MM-DD.{json,svg}, from which `npm run bench:report` makes the
 * README's table block and chart.
 *
 * Flags (after `npm run bench --`): --save, --quick (same as BENCH_QUICK=1: shortens every
 * workload, for checking the benchmark itself, not for figures), --no-pin, --help.
 */
import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { createRequire } from 'node:module';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { startServer, type TestServer } from '../test/helpers/mariadb.js';
import { Progress, type Step } from './progress.js';
import { renderReport, noiseWarnings, targetsOf, type BenchResult } from './report.js';
import { CONTENDER_NAMES } from './contenders.js';
import { REPO_ROOT, RESULTS_DIR } from './paths.js';
import {
  borrowOverhead,
  CLUSTER_WORKLOADS,
  clusterRouting,
  clusterRoutingPlanMs,
  failover,
  failoverPlanMs,
  faults,
  faultsPlanMs,
  idleStretches,
  memory,
  openContenders,
  prepareTable,
  throughput,
  throughputPlanMs,
  TABLE,
  WORKLOADS,
  type FailoverResult,
  type ThroughputFigure,
} from './workloads.js';

const args = new Set(process.argv.slice(2));
if (args.has('--help') || args.has('-h')) {
  process.stdout.write(`npm run bench -- [--save] [--quick] [--no-pin]
  --save     also write benchmarks/results/YYYY-MM-DD.{json,svg} (committed; the README's figures come from it)
  --quick    short run for checking the benchmark (same as BENCH_QUICK=1); cannot be saved
  --no-pin   do not pin this process and the server to separate cores
Every run writes benchmarks/results/local/ (git-ignored).
`);
  process.exit(0);
}
for (const a of args) {
  if (!['--save', '--quick', '--no-pin'].includes(a)) {
    process.stderr.write(`unknown option ${a}; see npm run bench -- --help\n`);
    process.exit(2);
  }
}
const quick = process.env.BENCH_QUICK === '1' || args.has('--quick');
const save = args.has('--save');
if (quick && save) {
  process.stderr.write('--save with a quick run: quick figures are not for committing; run without --quick / BENCH_QUICK\n');
  process.exit(2);
}

const settings = quick
  ? { size: 8, concurrencies: [1, 16, 64], rounds: 2, roundMs: 100, warmMs: 20, firstWarmMs: 50, borrowRounds: 2, borrowMs: 50, idleCycles: 3, idleMs: 300, idleBurst: 50, faultCycles: 1, faultCalls: 4, waitTimeoutSeconds: 1, memoryBorrows: 50_000, clusterConcurrencies: [1, 16], failoverCycleMs: 10, failoverLeadMs: 500, failoverWindowMs: 1_500 }
  : { size: 8, concurrencies: [1, 16, 64], rounds: 7, roundMs: 300, warmMs: 50, firstWarmMs: 150, borrowRounds: 5, borrowMs: 150, idleCycles: 10, idleMs: 500, idleBurst: 100, faultCycles: 3, faultCalls: 8, waitTimeoutSeconds: 1, memoryBorrows: 1_000_000, clusterConcurrencies: [1, 16], failoverCycleMs: 10, failoverLeadMs: 1_000, failoverWindowMs: 3_000 };

const teardowns: Array<() => unknown> = [];
const holder = { teardown: (fn: () => unknown) => void teardowns.push(fn) };
const tearDown = async () => {
  for (const fn of teardowns.splice(0).reverse()) await fn();
};

/** The cores this process may run on, from `taskset -cp`; undefined when it cannot tell. */
function allowedCores(): number[] | undefined {
  try {
    const out = execFileSync('taskset', ['-cp', String(process.pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const list = out.slice(out.lastIndexOf(':') + 1).trim();
    const cores: number[] = [];
    for (const part of list.split(',')) {
      const [a, b] = part.split('-').map(Number);
      if (a === undefined || Number.isNaN(a)) continue;
      for (let c = a; c <= (b ?? a); c++) cores.push(c);
    }
    return cores;
  } catch {
    return undefined;
  }
}

/** Pins this process (every thread) to one core and picks another for the server. */
function pin(external: boolean): BenchResult['pinning'] {
  if (args.has('--no-pin')) return { client: null, server: null, note: 'Not pinned to cores (--no-pin)' };
  if (process.platform !== 'linux') return { client: null, server: null, note: `Not pinned to cores (taskset is for Linux; this is ${process.platform})` };
  const cores = allowedCores();
  if (!cores) return { client: null, server: null, note: 'Not pinned to cores (taskset not found)' };
  if (cores.length < 2) return { client: null, server: null, note: `Not pinned to cores (only core ${cores.join(',')} available): client and server share it` };
  const [client, server] = cores as [number, number];
  execFileSync('taskset', ['-a', '-cp', String(client), String(process.pid)], { stdio: 'ignore' });
  return external
    ? { client, server: null, note: `Client (Node) pinned to core ${client}; the external server is not pinned` }
    : { client, server, note: `Client (Node) pinned to core ${client}, server (mariadbd) to core ${server}` };
}

async function serverVersion(server: TestServer): Promise<string> {
  const rows = await server.query<Array<{ v: string }>>('SELECT VERSION() AS v');
  return rows[0]!.v;
}

/**
 * Every throughput workload on one set of contenders, opened here and ended here, so that
 * nothing of theirs (mysql2 keeps about half a megabyte per connection) is left on the heap
 * for the memory workload.
 */
async function throughputAll(server: TestServer, t: typeof settings, progress: Progress, nextStep: () => number) {
  const figures: ThroughputFigure[] = [];
  let hotPings = 0;
  let hotOps = 0;
  const contenders = openContenders(server, t.size);
  try {
    for (const w of WORKLOADS) {
      progress.begin(nextStep());
      const result = await throughput(contenders, w, t, progress.tick);
      figures.push(...result.figures);
      hotPings += result.freshPings;
      hotOps += result.freshOps;
    }
  } finally {
    await Promise.all(contenders.map((c) => c.end().catch(() => undefined)));
  }
  return { figures, hotPings, hotOps };
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const external = Boolean(process.env.MYSQL_URL);
  const t = { ...settings, contenders: CONTENDER_NAMES.length };
  const routingSettings = { ...t, concurrencies: t.clusterConcurrencies };
  const failoverSettings = { cycleMs: t.failoverCycleMs, leadMs: t.failoverLeadMs, windowMs: t.failoverWindowMs };
  const steps: Step[] = [
    { title: external ? 'setup: fill the 100k-row table' : 'setup: private MariaDB, 100k-row table', planMs: 4_000 },
    ...WORKLOADS.map((w) => ({ title: `throughput: ${w.title}`, planMs: throughputPlanMs(t, t.contenders), paced: true })),
    { title: 'borrow cost, no statement', planMs: 4 * t.borrowRounds * t.borrowMs + 500 },
    { title: 'idle stretches past connWaitAge', planMs: t.idleCycles * (t.idleMs + 50) },
    { title: 'faults: wait_timeout, busy loop, KILL', planMs: 2_500 + faultsPlanMs(t.waitTimeoutSeconds, t.faultCycles) },
    { title: `memory: ${t.memoryBorrows.toLocaleString('en')} borrows`, planMs: t.memoryBorrows * 0.004 + 500 },
    { title: `cluster: routing cost, one-node cluster vs pool (${CLUSTER_WORKLOADS.map((w) => w.title).join(', ')})`, planMs: clusterRoutingPlanMs(routingSettings), paced: true },
    { title: 'cluster: failover (kill -9 the primary, promote a replica), ours vs mysql2 PoolCluster', planMs: failoverPlanMs(failoverSettings) },
  ];
  const progress = new Progress(steps);
  progress.say(`mysql-fresh-pool benchmark${quick ? ' (quick: for checking the benchmark, not for figures)' : ''}`);
  const pinning = pin(external);
  progress.say(pinning.note);
  progress.say(
    `throughput: ${WORKLOADS.length} workloads × concurrency ${t.concurrencies.join('/')} × ${t.contenders} pools (size ${t.size}) × ${t.rounds} rounds of ${t.roundMs} ms; ` +
      `about ${Math.round(steps.reduce((sum, s) => sum + s.planMs, 0) / 1000)} s in all`,
  );
  try {
    let step = 0;
    progress.begin(step++);
    const serverOptions = pinning.server === null ? {} : { cpu: pinning.server };
    const server = await startServer(holder, serverOptions);
    progress.tick(0.6, external ? 'using MYSQL_URL' : `server on port ${server.port}`);
    const table = await prepareTable(server);
    progress.tick(1, `${TABLE} filled (${table.fill})`);

    const { figures, hotPings, hotOps } = await throughputAll(server, t, progress, () => step++);

    progress.begin(step++);
    const borrow = await borrowOverhead(server, t.borrowRounds, t.borrowMs, progress.tick);
    progress.begin(step++);
    const idle = await idleStretches(server, t.idleCycles, t.idleMs, t.idleBurst, progress.tick);
    progress.begin(step++);
    let faultFigures: Awaited<ReturnType<typeof faults>> | undefined;
    if (server.canRestart) {
      progress.tick(0, 'starting a server with wait_timeout 1 s');
      const faultServer = await startServer(holder, { waitTimeoutSeconds: t.waitTimeoutSeconds, ...serverOptions });
      faultFigures = await faults(faultServer, t.waitTimeoutSeconds, t.faultCycles, t.faultCalls, progress.tick);
      await faultServer.destroy();
    } else {
      progress.say('faults skipped: with MYSQL_URL the benchmark cannot set wait_timeout');
    }
    progress.begin(step++);
    const mem = await memory(server, t.memoryBorrows, progress.tick);
    // The cluster section comes after the memory workload, so nothing of it is on that heap.
    progress.begin(step++);
    const routing = await clusterRouting(server, routingSettings, progress.tick);
    progress.begin(step++);
    let failoverResult: FailoverResult | undefined;
    let failoverError: string | undefined;
    if (server.canRestart) {
      try {
        failoverResult = await failover(holder, failoverSettings, progress.tick);
      } catch (err) {
        // The rest of the run stands; the result says the failover did not run, and why.
        failoverError = (err as Error).message ?? String(err);
        progress.say(`cluster failover failed: ${(err as Error).stack ?? String(err)}`);
      }
    } else {
      progress.say('cluster failover skipped: with MYSQL_URL the benchmark starts no servers of its own');
    }

    const version = await serverVersion(server);
    if (external) await server.query(`DROP TABLE IF EXISTS ${TABLE}`);
    progress.end();

    const require = createRequire(import.meta.url);
    const versionOf = (name: string) => (require(`${name}/package.json`) as { version: string }).version;
    const result: BenchResult = {
      schema: 2,
      date: startedAt.toISOString(),
      quick,
      durationMs: Math.round(Date.now() - startedAt.getTime()),
      settings,
      machine: { cores: cpus().length, cpu: cpus()[0]?.model.trim() ?? 'unknown', memoryBytes: totalmem(), node: process.version, platform: `${process.platform} ${process.arch}` },
      pinning,
      server: { version, external, tuned: table.serverTuned },
      versions: { mysql2: versionOf('mysql2'), 'generic-pool': versionOf('generic-pool'), pino: versionOf('pino') },
      workloads: WORKLOADS.map(({ id, title, sql }) => ({ id, title, sql })),
      throughput: figures,
      hotWorkload: { borrows: hotOps, pings: hotPings, pingsPer1000: (hotPings * 1000) / Math.max(1, hotOps) },
      borrowOverhead: borrow,
      idleStretches: idle,
      faults: faultFigures,
      memory: mem,
      cluster: { routing, failover: failoverResult, ...(failoverError === undefined ? {} : { failoverError }) },
    };
    const json = `${JSON.stringify({ ...result, targets: targetsOf(result) }, null, 2)}\n`;
    // Loaded only now: Vega's code stays out of the heap while the pools are measured.
    const { renderChartSvg, svgToPng } = await import('./chart.js');
    const svg = await renderChartSvg(result);
    const png = await svgToPng(svg);

    const written: string[] = [];
    const write = (path: string, data: string | Buffer) => {
      writeFileSync(path, data);
      written.push(relative(REPO_ROOT, path));
    };
    const localDir = join(RESULTS_DIR, 'local');
    mkdirSync(localDir, { recursive: true });
    const name = quick ? 'quick' : 'latest';
    write(join(localDir, `${name}.json`), json);
    write(join(localDir, `${name}.svg`), svg);
    if (png) write(join(localDir, `${name}.png`), png);
    if (save) {
      const dated = join(RESULTS_DIR, result.date.slice(0, 10));
      write(`${dated}.json`, json);
      write(`${dated}.svg`, svg);
    }

    process.stdout.write(`\n${renderReport(result)}`);
    const warnings = noiseWarnings(result).length;
    process.stderr.write(`\nwritten: ${written.join(', ')}\n`);
    if (save) process.stderr.write(`to put these figures in the README: npm run bench:report -- ${relative(REPO_ROOT, join(RESULTS_DIR, `${result.date.slice(0, 10)}.json`))}\n`);
    if (warnings) process.stderr.write(`${warnings} target comparison(s) within noise: see the WARNING above\n`);
  } catch (err) {
    progress.stop();
    throw err;
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\n${signal}: stopping the benchmark's server\n`);
    void tearDown().finally(() => process.exit(130));
  });
}

try {
  await main();
} finally {
  await tearDown();
}
