/**
 * Pieces shared by the private-server helpers (mariadb.ts, replication.ts, galera.ts): the cached
 * data-directory template, free loopback ports, root admin queries, and one mariadbd process
 * per node that a test can start, stop, kill -9, freeze and thaw, with a watchdog so that no
 * server outlives the test process, however that process ends.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';

const run = promisify(execFile);

/** mariadbd refuses to run as root unless told to. */
export const runAsRoot: string[] = process.getuid?.() === 0 ? ['--user=root'] : [];

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Installs the system tables once per machine and MariaDB version; copies are made from it. */
export async function ensureTemplate(): Promise<string> {
  const version = execFileSync('mariadbd', ['--version']).toString();
  const key = createHash('sha256').update(version).digest('hex').slice(0, 12);
  const template = join(tmpdir(), `fresh-pool-template-${key}`);
  if (existsSync(template)) return template;
  const staging = mkdtempSync(join(tmpdir(), 'fresh-pool-template-staging-'));
  await run('mariadb-install-db', [
    '--no-defaults',
    ...runAsRoot,
    `--datadir=${join(staging, 'data')}`,
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
  ]);
  try {
    renameSync(join(staging, 'data'), template);
  } catch (err) {
    // Another test process finished first: use theirs.
    if (!existsSync(template)) throw err;
  }
  rmSync(staging, { recursive: true, force: true });
  return template;
}

/** A loopback port that was free a moment ago (bound to port 0, then released). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}

/**
 * `n` distinct loopback ports that were free a moment ago: all are held until the last is
 * bound, so the kernel cannot hand out the same port twice within one call.
 */
export async function freePorts(n: number): Promise<number[]> {
  const probes: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const probe = createServer();
      probes.push(probe);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          probe.once('error', reject);
          probe.listen(0, '127.0.0.1', () => {
            const address = probe.address();
            if (typeof address === 'object' && address) resolve(address.port);
            else reject(new Error('no port'));
          });
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(probes.map((p) => new Promise<void>((resolve) => (p.listening ? p.close(() => resolve()) : resolve()))));
  }
}

/** Runs one statement on a fresh connection of its own. */
export async function adminQuery<T>(url: string, sql: string, values?: unknown[]): Promise<T> {
  const conn = await mysql.createConnection(url);
  try {
    const [rows] = await conn.query(sql, values);
    return rows as T;
  } finally {
    await conn.end();
  }
}

/**
 * Like adminQuery, but bounded: a connect or a statement that takes longer than `ms` (a frozen
 * node) rejects, and the connection is destroyed rather than politely closed.
 */
export async function boundedQuery<T>(url: string, sql: string, values?: unknown[], ms = 30_000): Promise<T> {
  const conn = await mysql.createConnection({ uri: url, connectTimeout: ms });
  let ok = false;
  try {
    const [rows] = await conn.query({ sql, values, timeout: ms });
    ok = true;
    return rows as T;
  } finally {
    if (ok) await conn.end().catch(() => conn.destroy());
    else conn.destroy();
  }
}

/**
 * A temp directory for a group of servers, with a watchdog: a detached shell that, once this
 * test process is gone (teardown never ran: a crash, a tap timeout, a SIGKILL), kills every
 * server recorded here (SIGCONT first, for a frozen one; the whole process group, so an rsync
 * SST daemon goes too) and removes the directory. `close()` stops the watchdog after an
 * orderly teardown.
 */
export class GuardedDir {
  readonly path: string;
  private readonly pidsFile: string;
  private readonly watchdog: ChildProcess;

  constructor(prefix: string) {
    this.path = mkdtempSync(join(tmpdir(), prefix));
    this.pidsFile = join(this.path, 'pids');
    appendFileSync(this.pidsFile, '');
    // The paths go in through the environment, so the watchdog's own command line does not
    // name the directory.
    const script = `while kill -0 "$PARENT" 2>/dev/null; do sleep 1; done
for pid in $(cat "$PIDS" 2>/dev/null); do
  if tr '\\0' ' ' < /proc/$pid/cmdline 2>/dev/null | grep -qF -- "$DIR"; then
    kill -CONT -- -$pid 2>/dev/null; kill -9 -- -$pid 2>/dev/null; kill -9 $pid 2>/dev/null
  fi
done
sleep 0.5; rm -rf -- "$DIR"`;
    this.watchdog = spawn('bash', ['-c', script], {
      detached: true,
      stdio: 'ignore',
      env: { ...process.env, PARENT: String(process.pid), PIDS: this.pidsFile, DIR: this.path },
    });
    this.watchdog.unref();
  }

  /** Records a server's pid (its process group id) for the watchdog. */
  record(pid: number): void {
    appendFileSync(this.pidsFile, `${pid}\n`);
  }

  /**
   * After the servers are stopped: ends the watchdog and removes the directory (kept, with the
   * servers' error logs, when CLUSTER_KEEP_FILES is set: for debugging).
   */
  close(): void {
    try {
      if (this.watchdog.pid) process.kill(this.watchdog.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    if (process.env.CLUSTER_KEEP_FILES) console.error(`# kept ${this.path}`);
    else rmSync(this.path, { recursive: true, force: true });
  }
}

export type ProcessState = 'down' | 'running' | 'frozen';

/**
 * One mariadbd, spawned detached (its own process group, so its SST scripts and rsync daemon
 * go with it on a kill -9) with stdio ignored (it logs to --log-error).
 */
export class ServerProcess {
  private child: ChildProcess | undefined;
  private exit: Promise<void> = Promise.resolve();
  private _state: ProcessState = 'down';
  /** How the last run ended: an orderly stop, or a kill -9 (crash recovery on next start). */
  lastStop: 'none' | 'orderly' | 'killed' = 'none';

  constructor(
    readonly name: string,
    private readonly guard: GuardedDir,
    readonly errorLog: string,
  ) {}

  get state(): ProcessState {
    return this._state;
  }

  get pid(): number | undefined {
    return this._state === 'down' ? undefined : this.child?.pid;
  }

  /** Spawns mariadbd with `args`; it is not ready yet, see waitAccepting. */
  spawn(args: string[]): void {
    if (this._state !== 'down') throw new Error(`${this.name} is already running`);
    const child = spawn('mariadbd', args, { detached: true, stdio: 'ignore' });
    let spawnError: Error | undefined;
    child.on('error', (err) => (spawnError = err));
    if (child.pid === undefined) throw new Error(`${this.name}: mariadbd did not start${spawnError ? `: ${spawnError.message}` : ''}`);
    this.guard.record(child.pid);
    this.child = child;
    this._state = 'running';
    this.exit = new Promise<void>((resolve) => {
      child.once('exit', () => {
        if (this.child === child) this._state = 'down';
        resolve();
      });
    });
  }

  /** Resolves once a root connection to `url` succeeds; rejects if the server exits or `ms` pass. */
  async waitAccepting(url: string, ms = 90_000): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (this._state === 'down') throw new Error(`${this.name} exited while starting:\n${this.logTail()}`);
      try {
        await boundedQuery(url, 'SELECT 1', undefined, 2_000);
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`${this.name} did not accept connections within ${ms} ms:\n${this.logTail()}`);
        await sleep(100);
      }
    }
  }

  /** Sends `signal` to the server's whole process group (or just the server). */
  private signal(signal: NodeJS.Signals, group = true): void {
    const pid = this.child?.pid;
    if (pid === undefined || this._state === 'down') return;
    try {
      process.kill(group ? -pid : pid, signal);
    } catch {
      // gone already
    }
  }

  /** SIGSTOP: the server keeps its sockets but answers nothing. */
  freeze(): void {
    if (this._state !== 'running') throw new Error(`${this.name} is ${this._state}, cannot freeze`);
    this.signal('SIGSTOP', false);
    this._state = 'frozen';
  }

  /** SIGCONT after a freeze. */
  thaw(): void {
    if (this._state !== 'frozen') throw new Error(`${this.name} is ${this._state}, not frozen`);
    this.signal('SIGCONT', false);
    this._state = 'running';
  }

  /** kill -9 of the server and its children (a crash); resolves once it is gone. */
  async kill9(): Promise<void> {
    if (this._state === 'down') return;
    this.signal('SIGKILL');
    await this.exit;
    this.lastStop = 'killed';
  }

  /**
   * Orderly shutdown (SIGTERM, after a SIGCONT if frozen); after `ms` without exiting,
   * kill -9 as the last resort. Resolves once it is gone.
   */
  async stop(ms = 60_000): Promise<void> {
    if (this._state === 'down') return;
    if (this._state === 'frozen') this.thaw();
    this.signal('SIGTERM', false);
    let timer: NodeJS.Timeout | undefined;
    const forced = await Promise.race([
      this.exit.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), ms))),
    ]);
    clearTimeout(timer);
    if (forced) {
      this.signal('SIGKILL');
      await this.exit;
      this.lastStop = 'killed';
    } else {
      this.lastStop = 'orderly';
    }
    // Anything the server left behind in its group (an SST script, an rsync daemon).
    const pid = this.child?.pid;
    if (pid !== undefined) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // nothing left
      }
    }
  }

  /** The last lines of the error log, for failure messages. */
  logTail(lines = 30): string {
    try {
      return readFileSync(this.errorLog, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no error log)';
    }
  }
}

/** Polls `check` until it returns a value other than undefined, or throws after `ms`. */
export async function poll<T>(what: string, ms: number, check: () => Promise<T | undefined>, every = 100): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    }
    await sleep(every);
  }
}
