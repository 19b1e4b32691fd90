/**
 * `npm run bench:instructions`: the client's cost per statement in CPU instructions, which a
 * busy machine does not change (wall-clock figures do). Starts a private MariaDB, then runs
 * each contender under `valgrind --tool=cachegrind --cache-sim=no` twice, for a short and a
 * long run of `SELECT 1` at a given concurrency over 8 connections, and reports the
 * difference divided by the difference in statements: start-up, JIT warm-up and connects
 * cancel out. Only the Node process is counted, not the server.
 *
 * Flags (after `npm run bench:instructions --`): `--concurrency N` (default 16), contender
 * names (default: fresh-pool, fresh-cluster, mysql2-pool trace:false). Needs valgrind.
 *
 * The child side (`--child NAME STATEMENTS CONCURRENCY URL`) runs the statements and exits.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startServer } from '../test/helpers/mariadb.js';
import { CLUSTER_CONTENDER, CONTENDER_NAMES, createContender, type ContenderName } from './contenders.js';

const run = promisify(execFile);
const SHORT = 5_000;
const LONG = 25_000;
const SIZE = 8;

async function child(name: ContenderName, statements: number, concurrency: number, url: string): Promise<void> {
  const contender = createContender(name, { url, size: SIZE });
  let left = statements;
  const worker = async (i: number) => {
    while (left-- > 0) await contender.use(i, (conn) => conn.query('SELECT 1'));
  };
  await Promise.all(Array.from({ length: concurrency }, (_, i) => worker(i)));
  await contender.end();
}

async function instructions(name: ContenderName, statements: number, concurrency: number, url: string): Promise<number> {
  const args = ['--tool=cachegrind', '--cache-sim=no', '--cachegrind-out-file=/dev/null', process.execPath, fileURLToPath(import.meta.url), '--child', name, String(statements), String(concurrency), url];
  const { stderr } = await run('valgrind', args, { maxBuffer: 64 * 1024 * 1024 });
  const match = /I\s+refs:\s+([\d,]+)/.exec(stderr);
  if (match === null) throw new Error(`no instruction count from valgrind for ${name}:\n${stderr.slice(-2_000)}`);
  return Number(match[1]!.replaceAll(',', ''));
}

const argv = process.argv.slice(2);
if (argv[0] === '--child') {
  await child(argv[1] as ContenderName, Number(argv[2]), Number(argv[3]), argv[4]!);
} else {
  const known: readonly string[] = [...CONTENDER_NAMES, CLUSTER_CONTENDER];
  let concurrency = 16;
  const names: ContenderName[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--concurrency') concurrency = Number(argv[++i]);
    else if (known.includes(argv[i]!)) names.push(argv[i] as ContenderName);
    else {
      process.stderr.write(`unknown argument ${argv[i]}; contenders: ${known.join(', ')}\n`);
      process.exit(2);
    }
  }
  if (names.length === 0) names.push('fresh-pool', CLUSTER_CONTENDER, 'mysql2-pool trace:false');
  const teardowns: Array<() => unknown> = [];
  const server = await startServer({ teardown: (fn) => teardowns.push(fn) });
  try {
    process.stdout.write(`instructions per SELECT 1, client only, concurrency ${concurrency}, ${SIZE} connections (${LONG} minus ${SHORT} statements)\n`);
    for (const name of names) {
      const short = await instructions(name, SHORT, concurrency, server.url);
      const long = await instructions(name, LONG, concurrency, server.url);
      process.stdout.write(`${name.padEnd(26)} ${((long - short) / (LONG - SHORT) / 1000).toFixed(1)}k\n`);
    }
  } finally {
    for (const fn of teardowns.reverse()) await fn();
  }
}
