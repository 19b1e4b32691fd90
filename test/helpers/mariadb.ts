/**
 * A private MariaDB for one test file: installed into a temp dir (from a cached template),
 * started on a free loopback port with the settings a test asks for, stopped at teardown.
 * Start and stop also come in blocking forms, so a test can restart the server while the
 * event loop is busy, the way a production process meets it.
 *
 * With MYSQL_URL set, tests run against that server instead; `canRestart` is then false and
 * tests that must restart it or set its wait_timeout skip.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { adminQuery, ensureTemplate, freePort, runAsRoot } from './mariadb-process.js';

const run = promisify(execFile);

export interface ServerOptions {
  /** The server's global wait_timeout, in seconds. Default 28800 (MariaDB's own). */
  waitTimeoutSeconds?: number;
  /** Pins the server to this CPU core (`taskset -c`). Default: not pinned. */
  cpu?: number;
}

export interface TestServer {
  /** mysql://root@127.0.0.1:PORT/test */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** False against an external MYSQL_URL server: no restart, no server-wide settings. */
  readonly canRestart: boolean;
  /** Runs one statement on a fresh connection of its own. */
  query<T = unknown>(sql: string, values?: unknown[]): Promise<T>;
  /** Kills connections by id from a child process, blocking this process's event loop meanwhile. */
  killSync(ids: number[]): void;
  /** Stops the server, blocking the event loop until it is down. */
  stopSync(): void;
  /** Starts it again on the same port, blocking until it answers. */
  startSync(): void;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it for good and removes its files. */
  destroy(): Promise<void>;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Starts a private server for this test (or wraps MYSQL_URL) and registers its teardown on `t`. */
export async function startServer(t: Teardown, options: ServerOptions = {}): Promise<TestServer> {
  const external = process.env.MYSQL_URL;
  const server = external ? externalServer(external) : await privateServer(options);
  t.teardown(() => server.destroy());
  return server;
}

function externalServer(url: string): TestServer {
  const parsed = new URL(url);
  const port = Number(parsed.port || 3306);
  const cannot = () => {
    throw new Error('cannot restart an external MYSQL_URL server');
  };
  return {
    url,
    host: parsed.hostname,
    port,
    canRestart: false,
    query: (sql, values) => adminQuery(url, sql, values),
    killSync: (ids) => killWithClient(parsed.hostname, port, decodeURIComponent(parsed.username || 'root'), decodeURIComponent(parsed.password), ids),
    stopSync: cannot,
    startSync: cannot,
    stop: async () => cannot(),
    start: async () => cannot(),
    destroy: async () => {},
  };
}

async function privateServer(options: ServerOptions): Promise<TestServer> {
  const template = await ensureTemplate();
  const dir = mkdtempSync(join(tmpdir(), 'fresh-pool-db-'));
  execFileSync('cp', ['-a', template, join(dir, 'data')]);
  const port = await freePort();
  const host = '127.0.0.1';
  const url = `mysql://root@${host}:${port}/test`;
  const pidFile = join(dir, 'mariadbd.pid');
  const args = [
    '--no-defaults',
    ...runAsRoot,
    `--datadir=${join(dir, 'data')}`,
    `--port=${port}`,
    `--bind-address=${host}`,
    `--socket=${join(dir, 'mariadbd.sock')}`,
    `--pid-file=${pidFile}`,
    `--log-error=${join(dir, 'error.log')}`,
    '--skip-log-bin',
    '--skip-performance-schema',
    '--innodb-buffer-pool-size=16M',
    '--innodb-log-file-size=8M',
    '--max-connections=300',
    `--wait-timeout=${options.waitTimeoutSeconds ?? 28800}`,
  ];
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const ping = `mariadb-admin --no-defaults --protocol=tcp -h${host} -P${port} -uroot ping >/dev/null 2>&1`;
  // setsid: the server is nobody's child here, so a stop is not confused by a zombie.
  const pin = options.cpu === undefined ? '' : `taskset -c ${Number(options.cpu)} `;
  const startScript = `setsid ${pin}mariadbd ${args.map(q).join(' ')} </dev/null >/dev/null 2>&1 &
for i in $(seq 1 600); do ${ping} && exec mariadb --no-defaults --protocol=tcp -h${host} -P${port} -uroot -e 'CREATE DATABASE IF NOT EXISTS test'; sleep 0.05; done
cat ${q(join(dir, 'error.log'))} >&2; exit 1`;
  const stopScript = `[ -e ${q(pidFile)} ] || exit 0
pid=$(cat ${q(pidFile)}); kill "$pid" 2>/dev/null
alive() { [ -e ${q(pidFile)} ] || { kill -0 "$pid" 2>/dev/null && ! grep -q '^State:.*Z' /proc/"$pid"/status 2>/dev/null; }; }
for i in $(seq 1 600); do alive || exit 0; sleep 0.05; done
kill -9 "$pid" 2>/dev/null; rm -f ${q(pidFile)}`;
  const startSync = () => void execFileSync('bash', ['-c', startScript], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stopSync = () => void execFileSync('bash', ['-c', stopScript], { stdio: 'ignore' });
  const start = async () => void (await run('bash', ['-c', startScript]));
  const stop = async () => void (await run('bash', ['-c', stopScript]));
  await start();
  let destroyed = false;
  return {
    url,
    host,
    port,
    canRestart: true,
    query: (sql, values) => adminQuery(url, sql, values),
    killSync: (ids) => killWithClient(host, port, 'root', '', ids),
    stopSync,
    startSync,
    stop,
    start,
    destroy: async () => {
      if (destroyed) return;
      destroyed = true;
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function killWithClient(host: string, port: number, user: string, password: string, ids: number[]): void {
  const sql = ids.map((id) => `KILL CONNECTION ${Number(id)};`).join(' ');
  execFileSync('mariadb', ['--no-defaults', '--protocol=tcp', `-h${host}`, `-P${port}`, `-u${user}`, '-e', sql], {
    env: { ...process.env, MYSQL_PWD: password },
    stdio: 'ignore',
  });
}

/** Blocks the event loop for `ms`, as a CPU-bound job would. */
export function busyWait(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // spin: nothing else may run, not even the socket close events
  }
}

/** Resolves after `ms` with the event loop free. */
export { sleep } from './mariadb-process.js';
