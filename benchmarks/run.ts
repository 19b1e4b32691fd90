/**
 * `npm run bench`: starts a private MariaDB (or uses MYSQL_URL), runs every workload, prints a
 * table, writes benchmarks/results/latest.json and latest.svg, and stops the server.
 *
 * BENCH_QUICK=1 shortens every workload (for checking the benchmark itself, not for figures).
 */
import { cpus, totalmem } from 'node:os';
import { createRequire } from 'node:module';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, type TestServer } from '../test/helpers/mariadb.js';
import { renderSvg, renderTable, targetsOf } from './report.js';
import { borrowOverhead, faults, idleStretches, memory, throughput } from './workloads.js';

const quick = process.env.BENCH_QUICK === '1';
const settings = quick
  ? { sizes: [8], concurrencies: [1, 16], rounds: 2, roundMs: 300, borrows: 5_000, borrowRounds: 2, idleCycles: 3, idleMs: 300, idleBurst: 50, faultCycles: 1, faultCalls: 4, waitTimeoutSeconds: 1, memoryBorrows: 50_000 }
  : { sizes: [8, 16], concurrencies: [1, 16, 64], rounds: 9, roundMs: 600, borrows: 20_000, borrowRounds: 5, idleCycles: 10, idleMs: 500, idleBurst: 100, faultCycles: 3, faultCalls: 8, waitTimeoutSeconds: 1, memoryBorrows: 1_000_000 };

const tty = process.stderr.isTTY;
const progress = (line: string) => {
  if (tty) process.stderr.write(`\r\x1b[K${line}`);
};
const say = (line: string) => process.stderr.write(`${tty ? '\r\x1b[K' : ''}${line}\n`);

const teardowns: Array<() => unknown> = [];
const holder = { teardown: (fn: () => unknown) => void teardowns.push(fn) };

async function serverVersion(server: TestServer): Promise<string> {
  const rows = await server.query<Array<{ v: string }>>('SELECT VERSION() AS v');
  return rows[0]!.v;
}

async function main(): Promise<void> {
  const startedAt = new Date();
  say(`mysql-fresh-pool benchmark${quick ? ' (quick: not for figures)' : ''}`);
  const server = await startServer(holder);
  say(`server: ${server.url}`);

  say('1/5 throughput and latency, SELECT 1');
  const hot = await throughput(server, settings.sizes, settings.concurrencies, settings.rounds, settings.roundMs, progress);
  say('2/5 borrow and return, no statement');
  const borrow = await borrowOverhead(server, settings.borrows, settings.borrowRounds, progress);
  say('3/5 idle stretches past connWaitAge');
  const idle = await idleStretches(server, settings.idleCycles, settings.idleMs, settings.idleBurst, progress);
  let faultFigures: Awaited<ReturnType<typeof faults>> | undefined;
  if (server.canRestart) {
    say('4/5 faults: idle and busy stretches past wait_timeout, KILL while busy');
    const faultServer = await startServer(holder, { waitTimeoutSeconds: settings.waitTimeoutSeconds });
    faultFigures = await faults(faultServer, settings.waitTimeoutSeconds, settings.faultCycles, settings.faultCalls, progress);
  } else {
    say('4/5 faults: skipped (MYSQL_URL: the benchmark cannot set wait_timeout there)');
  }
  say('5/5 memory');
  const mem = await memory(server, settings.memoryBorrows, progress);

  const require = createRequire(import.meta.url);
  const version = (name: string) => (require(`${name}/package.json`) as { version: string }).version;
  const result = {
    date: startedAt.toISOString(),
    quick,
    settings,
    machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', memoryBytes: totalmem(), node: process.version, platform: `${process.platform} ${process.arch}` },
    server: { version: await serverVersion(server), external: !server.canRestart },
    versions: { mysql2: version('mysql2'), 'generic-pool': version('generic-pool'), pino: version('pino') },
    throughput: hot.figures,
    hotWorkload: { borrows: hot.hotOps, pings: hot.hotPings, pingsPer1000: (hot.hotPings * 1000) / Math.max(1, hot.hotOps) },
    borrowOverhead: borrow,
    idleStretches: idle,
    faults: faultFigures,
    memory: mem,
  };
  const targets = targetsOf(result);
  const here = dirname(fileURLToPath(import.meta.url));
  // Compiled to build/bench/benchmarks/: the results live beside the sources.
  const resultsDir = join(here, '..', '..', '..', 'benchmarks', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const name = quick ? 'quick' : 'latest';
  writeFileSync(join(resultsDir, `${name}.json`), `${JSON.stringify({ ...result, targets }, null, 2)}\n`);
  writeFileSync(join(resultsDir, `${name}.svg`), renderSvg(result));
  say('');
  process.stdout.write(renderTable({ ...result, targets }));
  say(`\nwritten: benchmarks/results/${name}.json, benchmarks/results/${name}.svg`);
}

try {
  await main();
} finally {
  for (const fn of teardowns.reverse()) await fn();
}
