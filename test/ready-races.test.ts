// ready() racing the rest of the pool's life: the connection it keeps for the first borrow
// (must be checked like any idle connection, however long it waited), a warm-up that fails
// half-way (the leases that succeeded must go back), and end() called while it runs (it must
// reject, and nothing it opened may outlive end()).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import mysql, { type ConnectionOptions } from 'mysql2/promise';
import { createPool, PoolClosedError } from '../lib/index.js';
import { captureLog } from './helpers/log.js';
import { sleep, startServer } from './helpers/mariadb.js';
import { connectionsLeft as leftOf, connectionsOf as countOf, killAll as killAllOf } from './helpers/processlist.js';
import { startRelay } from './helpers/relay.js';
import { throughRelay, within } from './helpers/settle.js';
import { ID_SQL, type IdRow } from './helpers/sql.js';

const server = await startServer(t);

const PASSWORD = 'ready-races-Pa55-3b9d';
/** A user of its own per scenario, so its connections can be counted on the server by user. */
async function createUser(user: string, limits = ''): Promise<ConnectionOptions> {
  // Both hosts: a client on 127.0.0.1 may match 'user'@'localhost' before 'user'@'%'.
  for (const host of ['%', 'localhost']) {
    await server.query(`CREATE USER IF NOT EXISTS '${user}'@'${host}' IDENTIFIED BY '${PASSWORD}' ${limits}`);
    await server.query(`GRANT ALL ON test.* TO '${user}'@'${host}'`);
  }
  return { host: server.host, port: server.port, user, password: PASSWORD, database: 'test' };
}

const connectionsOf = (user: string) => countOf(server, user);
const connectionsLeft = (user: string, ms?: number) => leftOf(server, user, ms);
const killAll = (user: string) => killAllOf(server, user);

t.test('2. the connection ready() keeps is checked when lent, by when it was made', async (t) => {
  await t.test('fault is real: a plain mysql2 pool hangs on a silently dropped idle connection', async (t) => {
    const relay = await startRelay(server.host, server.port);
    const plain = mysql.createPool({ uri: throughRelay(server.url, relay), connectionLimit: 1 });
    let hung: Promise<unknown> = Promise.resolve();
    t.teardown(async () => {
      await relay.close(); // destroys the silent socket, which fails the hung query
      await hung;
      await plain.end();
    });
    await plain.query('SELECT 1');
    relay.blackhole();
    const query = plain.query('SELECT 1');
    hung = query.catch(() => undefined);
    t.same(await within(query, 1_500), { status: 'pending' }, 'no answer and no error after 1.5 s');
  });

  await t.test('ready(), idle past connWaitAge, silent drop: the first query pings, replaces it and resolves', async (t) => {
    const relay = await startRelay(server.host, server.port);
    const log = captureLog();
    const pingTimeout = 300;
    const pool = createPool({ connection: throughRelay(server.url, relay), max: 1, connWaitAge: 200, pingTimeout, acquireTimeout: 2_000, logger: log.logger });
    t.teardown(async () => {
      await relay.close(); // on failure the query hangs on the silent socket: this fails it
      await within(pool.end(), 5_000);
    });

    await pool.ready(); // min 0: one connection, kept for the first borrow
    t.equal(relay.pairs.length, 1, 'ready() opened one connection');
    relay.blackhole();
    // Made more than connWaitAge before it is lent: it must be pinged first. Regression:
    // create() stamped the kept connection "made now" when a borrow took it, so it was lent
    // unchecked and the query hung on the dropped flow, past acquireTimeout, with 0 pings.
    await sleep(400);

    const outcome = await within(pool.query<IdRow[]>(ID_SQL), 5_000);
    t.equal(outcome.status, 'fulfilled', `the first query resolved within 5 s (acquireTimeout 2 s): ${outcome.status}`);
    const s = pool.stats();
    t.ok(s.pings >= 1, `the connection was pinged before it was lent (pings: ${s.pings})`);
    t.equal(s.destroyed.pingTimeout, 1, 'the silent connection was evicted for its ping timeout');
    t.equal(relay.pairs.length, 2, 'the query ran on a new connection, made after the drop');
  });
});

t.test('3. ready() with min above the user\'s max_user_connections', async (t) => {
  const conn = await createUser('fp_lim', 'WITH MAX_USER_CONNECTIONS 2');
  t.teardown(() => killAll('fp_lim'));

  await t.test('fault is real: the server refuses this user a third connection', async (t) => {
    const plain = mysql.createPool({ ...conn, connectionLimit: 3 });
    t.teardown(() => plain.end());
    const got = await Promise.allSettled([0, 1, 2].map(() => plain.getConnection()));
    for (const g of got) if (g.status === 'fulfilled') g.value.release();
    const refused = got.filter((g) => g.status === 'rejected');
    t.equal(refused.length, 1, 'one of three connects refused');
    t.match((refused[0] as PromiseRejectedResult | undefined)?.reason, { errno: 1226 }, 'ER_USER_LIMIT_REACHED');
  });

  await t.test('ready() rejects, keeps no lease, and the pool still lends and ends', async (t) => {
    t.equal(await connectionsLeft('fp_lim'), 0, 'no connection of the user before');
    const pool = createPool({ connection: conn, min: 3, max: 3, acquireTimeout: 800, logger: captureLog().logger });
    t.teardown(() => within(pool.end(), 5_000));

    const ready = await within(pool.ready(), 10_000);
    t.equal(ready.status, 'rejected', 'ready() rejects: the third connection is refused until acquireTimeout');
    if (ready.status === 'rejected') t.comment(`ready() rejected with ${(ready.reason as Error).name}: ${(ready.reason as Error).message}`);

    // Regression: ready() took its `min` leases with Promise.all; when one failed, the two
    // that succeeded were never released: borrowed 2 with no holder, every later borrow
    // timing out, and end() waiting forever for them to come back.
    t.equal(pool.stats().borrowed, 0, 'no connection left lent after ready() failed');
    const later = await within(pool.query<IdRow[]>(ID_SQL), 5_000);
    t.equal(later.status, 'fulfilled', `a later borrow gets a connection: ${later.status === 'rejected' ? (later.reason as Error).name : later.status}`);
    const ended = await within(pool.end(), 5_000);
    t.equal(ended.status, 'fulfilled', 'end() resolves');
    t.equal(await connectionsLeft('fp_lim'), 0, 'none of the pool\'s connections left on the server');
  });
});

t.test('4. end() while ready() runs', async (t) => {
  const conn = await createUser('fp_rdy');
  t.afterEach(() => killAll('fp_rdy'));

  await t.test('during its first connect (min 0): ready() rejects with PoolClosedError; nothing left open', async (t) => {
    t.equal(await connectionsOf('fp_rdy'), 0, 'no connection of the user before');
    const pool = createPool({ connection: conn, logger: captureLog().logger });
    const readying = pool.ready(); // dialing now
    const ending = pool.end();
    const ready = await within(readying, 5_000);
    const ended = await within(ending, 5_000);
    // Regression: end() did not wait for the connect ready() had under way; it then kept the
    // new connection for a borrow that could never come, and ready() resolved.
    t.equal(ready.status, 'rejected', `ready() rejects (${ready.status})`);
    if (ready.status === 'rejected') {
      t.ok(ready.reason instanceof PoolClosedError, 'with PoolClosedError');
      t.match(ready.reason, { code: 'ERR_FRESH_POOL_CLOSED' });
    }
    t.equal(ended.status, 'fulfilled', 'end() resolves');
    t.equal(await connectionsLeft('fp_rdy'), 0, 'none of the pool\'s connections left on the server after end() resolved');
    t.match(pool.stats(), { size: 0, idle: 0, borrowed: 0 });
  });

  await t.test('while it opens min connections (min 2): ready() rejects with PoolClosedError; nothing left open', async (t) => {
    const pool = createPool({ connection: conn, min: 2, max: 2, logger: captureLog().logger });
    let ending: Promise<void> | undefined;
    // The first connection is lent to a warm-up lease: end() comes in the middle of them.
    pool.once('create', () => (ending = pool.end()));
    const ready = await within(pool.ready(), 5_000);
    t.ok(ending, 'end() was called during the warm-up');
    const ended = await within(ending ?? pool.end(), 5_000);
    // Regression: the warm-up leases were served (end() lets queued borrows finish) and
    // ready() resolved, for a pool already ended.
    t.equal(ready.status, 'rejected', `ready() rejects (${ready.status})`);
    if (ready.status === 'rejected') t.match(ready.reason, { name: 'PoolClosedError', code: 'ERR_FRESH_POOL_CLOSED' });
    t.equal(ended.status, 'fulfilled', 'end() resolves');
    t.equal(await connectionsLeft('fp_rdy'), 0, 'none of the pool\'s connections left on the server');
    t.match(pool.stats(), { size: 0, idle: 0, borrowed: 0 });
  });

  await t.test('in a child process: it exits by itself once end() resolved', async (t) => {
    // A pool connection left open keeps the child's event loop alive. The kill timeout is a
    // hang detector only, far above the time the scenario needs.
    const url = `mysql://fp_rdy:${PASSWORD}@${server.host}:${server.port}/test`;
    const r = await runChild('./helpers/ready-end-child.ts', [url], 20_000);
    const lines = r.lines as Array<Record<string, unknown>>;
    t.match(lines.find((l) => 'ready' in l), { ready: 'rejected', name: 'PoolClosedError' }, 'ready() rejected with PoolClosedError');
    const ended = lines.find((l) => l.step === 'ended');
    t.ok(ended, 'end() resolved');
    t.equal(r.killed, false, 'the process exited by itself, not killed at the 20 s hang limit');
    t.equal(r.exitCode, 0, 'with code 0');
    if (r.stderr) t.comment(r.stderr.slice(0, 2_000));
  });
});

interface ChildOutcome {
  lines: unknown[];
  stderr: string;
  killed: boolean;
  exitCode: number | null;
}

/** Runs `script` (relative to this file) under the TypeScript loader; SIGKILLed after `killAfterMs`. */
function runChild(script: string, args: string[], killAfterMs: number): Promise<ChildOutcome> {
  const loader = import.meta.resolve('@tapjs/typescript/import');
  const path = fileURLToPath(new URL(script, import.meta.url));
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [`--import=${loader}`, path, ...args],
      { timeout: killAfterMs, killSignal: 'SIGKILL', env: { ...process.env, NODE_OPTIONS: '' } },
      (err, stdout, stderr) => {
        const e = err as (Error & { killed?: boolean; code?: number | string }) | null;
        const lines = stdout.split('\n').filter(Boolean).map((l) => {
          try {
            return JSON.parse(l) as unknown;
          } catch {
            return l;
          }
        });
        resolve({ lines, stderr, killed: e?.killed === true, exitCode: e ? (typeof e.code === 'number' ? e.code : null) : 0 });
      },
    );
  });
}
