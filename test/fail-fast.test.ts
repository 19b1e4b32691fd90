// Fail fast on connect errors that will not fix themselves (defect 14): a wrong password, an
// unknown database, a database the user may not use. Retrying them until acquireTimeout only
// delays the error by 10 s of repeated warnings; a waiting borrow must fail at once with
// ConnectError, the server's error as `cause`. Transient refusals (server down, too many
// connections, a user's connection limit) must still be waited out.
import t from 'tap';
import mysql from 'mysql2/promise';
import { ConnectError, createPool, FreshPoolError, type FreshPool } from '../lib/index.js';
import { captureLog } from './helpers/log.js';
import { sleep, startServer } from './helpers/mariadb.js';
import { within } from './helpers/settle.js';
import { connectionId } from './helpers/sql.js';

const server = await startServer(t);

const ACQUIRE_TIMEOUT = 10_000;
// A hang detector, not a speed requirement: the defect made these borrows wait out the whole
// acquireTimeout; anything settled in half of it did not.
const HANG_MS = ACQUIRE_TIMEOUT / 2;

const RIGHT = 'right-Pa55-word-41d2';
const WRONG = 'wrong-Pa55-word-0b7e';

/** Creates `user` for both hosts a loopback TCP client may be matched as, with `extra` SQL. */
async function createUser(user: string, password: string, grants: string[], extra = ''): Promise<void> {
  for (const host of ['%', 'localhost']) {
    await server.query(`CREATE USER IF NOT EXISTS '${user}'@'${host}' IDENTIFIED BY '${password}' ${extra}`);
    for (const grant of grants) await server.query(`GRANT ${grant} TO '${user}'@'${host}'`);
  }
}

async function setPassword(user: string, password: string): Promise<void> {
  for (const host of ['%', 'localhost']) await server.query(`ALTER USER '${user}'@'${host}' IDENTIFIED BY '${password}'`);
}

await server.query('CREATE DATABASE IF NOT EXISTS secret');
await createUser('app', RIGHT, ['ALL ON test.*']); // nothing on `secret`
for (const host of ['%', 'localhost']) await server.query(`CREATE USER IF NOT EXISTS 'locked'@'${host}' IDENTIFIED BY '${RIGHT}' ACCOUNT LOCK`);
// Authenticated by the client's Unix user, which a TCP client has none of: 1698, however often asked.
for (const host of ['%', 'localhost']) await server.query(`CREATE USER IF NOT EXISTS 'sock'@'${host}' IDENTIFIED VIA unix_socket`);

const as = (user: string, password: string, database: string) => ({ host: server.host, port: server.port, user, password, database });

/** Borrows once; whether `fn` was called, and how the borrow settled (or 'pending' after HANG_MS). */
async function borrowOnce(pool: FreshPool) {
  let fnCalled = false;
  const outcome = await within(
    pool.withConnection(() => {
      fnCalled = true;
    }),
    HANG_MS,
  );
  return { outcome, fnCalled };
}

const permanent: Array<{ what: string; connection: () => ReturnType<typeof as>; errno: number; code: string}> = [
  { what: 'wrong password', connection: () => as('app', WRONG, 'test'), errno: 1045, code: 'ER_ACCESS_DENIED_ERROR' },
  // As root: to a user without rights on it, a missing database is "access denied" (1044),
  // so as not to tell which databases exist.
  { what: 'unknown database', connection: () => as('root', '', 'no_such_db'), errno: 1049, code: 'ER_BAD_DB_ERROR' },
  { what: 'database denied to the user', connection: () => as('app', RIGHT, 'secret'), errno: 1044, code: 'ER_DBACCESS_DENIED_ERROR' },
  { what: 'unix_socket user over TCP', connection: () => as('sock', WRONG, 'test'), errno: 1698, code: 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR' },
  // MariaDB's ER_ACCOUNT_HAS_BEEN_LOCKED is 4151 (mysql2 names it after MySQL's 4151, a bulk
  // parser error that no handshake can return).
  {
    what: 'locked account',
    connection: () => as('locked', RIGHT, 'test'),
    errno: 4151,
    code: 'ER_BULK_PARSER_INCOMPLETE_ESCAPE_SEQUENCE',
  },
];

for (const c of permanent) {
  t.test(`${c.what} (${c.errno})`, async (t) => {
    await t.test('fault is real: a plain mysql2 pool fails its first query with the server\'s error', async (t) => {
      const plain = mysql.createPool({ ...c.connection(), connectionLimit: 1 });
      t.teardown(() => plain.end());
      await t.rejects(plain.query('SELECT 1'), { errno: c.errno, code: c.code });
    });

    await t.test(`a waiting borrow rejects with ConnectError, not after acquireTimeout (${ACQUIRE_TIMEOUT} ms)`, async (t) => {
      const pool = createPool({ connection: c.connection(), max: 2, acquireTimeout: ACQUIRE_TIMEOUT, logger: captureLog().logger });
      t.teardown(() => pool.end());
      // Three borrows, more than max: every one waiting must fail, not just the first.
      const results = await Promise.all([borrowOnce(pool), borrowOnce(pool), borrowOnce(pool)]);
      for (const [i, { outcome, fnCalled }] of results.entries()) {
        t.equal(outcome.status, 'rejected', `borrow ${i}: rejected before ${HANG_MS} ms`);
        t.equal(fnCalled, false, `borrow ${i}: fn never called`);
        if (outcome.status !== 'rejected') continue;
        const err = outcome.reason as ConnectError;
        t.ok(err instanceof ConnectError, `borrow ${i}: ConnectError (got ${(err as Error).name})`);
        t.ok(err instanceof FreshPoolError, `borrow ${i}: a FreshPoolError`);
        t.equal(err.code, 'ERR_FRESH_POOL_CONNECT', `borrow ${i}: its code`);
        t.match(err.cause, { errno: c.errno, code: c.code }, `borrow ${i}: the server's error as cause`);
      }
    });
  });
}

t.test('after a permanent failure, the pool recovers once the configuration is right', async (t) => {
  await createUser('rotated', RIGHT, ['ALL ON test.*']);
  const pool = createPool({ connection: as('rotated', WRONG, 'test'), max: 1, acquireTimeout: ACQUIRE_TIMEOUT, logger: captureLog().logger });
  t.teardown(() => pool.end());
  const failed = await borrowOnce(pool);
  t.equal(failed.outcome.status, 'rejected', 'the wrong password fails the borrow');
  t.ok(failed.outcome.status === 'rejected' && failed.outcome.reason instanceof ConnectError, 'with ConnectError');
  // The DBA sets the password the application has: later borrows connect (attempts go on).
  await setPassword('rotated', WRONG);
  const ok = await borrowOnce(pool);
  t.equal(ok.outcome.status, 'fulfilled', 'a later borrow succeeds');
  t.equal(ok.fnCalled, true);
});

t.test('inside withConnection: a statement on a dead connection reconnects; with the password changed it rejects with ConnectError', async (t) => {
  await createUser('moving', RIGHT, ['ALL ON test.*']);
  const log = captureLog();
  const pool = createPool({ connection: as('moving', RIGHT, 'test'), max: 1, acquireTimeout: ACQUIRE_TIMEOUT, logger: log.logger });
  t.teardown(() => pool.end());
  await pool.query('SELECT 1'); // learns wait_timeout: no ping due inside fn, only the close decides

  const result = within(
    pool.withConnection(async (conn) => {
      // Control: the server closes the connection; the next statement reconnects, unseen by fn.
      const first = await connectionId(conn);
      await server.query(`KILL CONNECTION ${first}`);
      await sleep(100); // the close is read: the pool knows the connection is gone
      const second = await connectionId(conn);
      t.not(second, first, 'the statement ran on a new connection');

      // Now the password changes and the connection dies: reconnecting cannot succeed.
      await setPassword('moving', 'new-Pa55-word-5e6a');
      await server.query(`KILL CONNECTION ${second}`);
      await sleep(100);
      return within(conn.query('SELECT 1'), HANG_MS);
    }),
    HANG_MS * 2,
  );
  const outer = await result;
  t.equal(outer.status, 'fulfilled', 'fn ran to its end');
  if (outer.status !== 'fulfilled') return;
  const statement = outer.value;
  t.equal(statement.status, 'rejected', `the statement rejected, not after acquireTimeout (${ACQUIRE_TIMEOUT} ms)`);
  if (statement.status !== 'rejected') return;
  const err = statement.reason as ConnectError;
  t.ok(err instanceof ConnectError, `ConnectError (got ${(err as Error).name}: ${(err as Error).message})`);
  t.equal(err.code, 'ERR_FRESH_POOL_CONNECT');
  t.match(err.cause, { errno: 1045, code: 'ER_ACCESS_DENIED_ERROR' }, "the server's error as cause");
  t.equal(log.find('connection replaced before a statement').length, 1, 'one replacement: the control');
});

// Refusals that end by themselves once connections are freed: waited out until acquireTimeout.
// Each fills what the server allows with connections held outside the pool, and frees one
// after 500 ms. They run last and restore any server-wide limit they set. (1203,
// ER_TOO_MANY_USER_CONNECTIONS, needs the server started with max_user_connections > 0:
// MariaDB refuses to set it at runtime otherwise, so it is not reproduced here.)

type Conn = Awaited<ReturnType<typeof mysql.createConnection>>;

/** Opens connections as `user` until the server refuses one with `errno`; the ones opened. */
async function fillUp(user: string, errno: number): Promise<Conn[]> {
  const held: Conn[] = [];
  for (let i = 0; i < 50; i++) {
    try {
      held.push(await mysql.createConnection(as(user, RIGHT, 'test')));
    } catch (err) {
      if ((err as { errno?: unknown }).errno === errno) return held;
      await Promise.all(held.map((c) => c.end()));
      throw err;
    }
  }
  await Promise.all(held.map((c) => c.end()));
  throw new Error(`never refused with ${errno}`);
}

const transient = [
  {
    what: "the user's own MAX_USER_CONNECTIONS 1",
    user: 'limited',
    errno: 1226,
    code: 'ER_USER_LIMIT_REACHED',
    limit: () => createUser('limited', RIGHT, ['ALL ON test.*'], 'WITH MAX_USER_CONNECTIONS 1'),
    unlimit: async () => {},
  },
  {
    what: 'max_connections reached',
    user: 'crowded',
    errno: 1040, // root's helper still gets in, on the slot kept for SUPER
    code: 'ER_CON_COUNT_ERROR',
    limit: async () => {
      await createUser('crowded', RIGHT, ['ALL ON test.*']);
      await server.query('SET GLOBAL max_connections = 10'); // MariaDB's least
    },
    unlimit: () => server.query('SET GLOBAL max_connections = 300'),
  },
];

for (const c of transient) {
  t.test(`transient (${c.errno}): ${c.what} is waited out, not failed`, async (t) => {
    await c.limit();
    const held = await fillUp(c.user, c.errno);
    t.teardown(async () => {
      await Promise.all(held.map((conn) => conn.end()));
      await c.unlimit();
    });
    t.ok(held.length >= 1, `the server's limit is reached (${held.length} held)`);

    const log = captureLog();
    const pool = createPool({ connection: as(c.user, RIGHT, 'test'), max: 1, acquireTimeout: ACQUIRE_TIMEOUT, logger: log.logger });
    t.teardown(() => pool.end());
    const borrow = within(
      pool.withConnection(async (conn) => connectionId(conn)),
      HANG_MS,
    );
    await sleep(500);
    t.ok(pool.stats().connectFailures >= 1, `the pool was refused meanwhile (${pool.stats().connectFailures} failed connects)`);
    t.match(log.find('connect failed')[0]?.err, { code: c.code }, `refused by the server's limit (${c.code})`);
    await held.pop()!.end(); // a connection frees up
    const outcome = await borrow;
    if (outcome.status === 'rejected') t.comment(`the borrow failed: ${String((outcome.reason as Error).message)}`);
    t.equal(outcome.status, 'fulfilled', 'the borrow waited and got a connection');
  });
}
