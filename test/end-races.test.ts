// end() racing work that is neither lent nor idle: a replacement connection being made for a
// statement, a clean-up on return that gets no answer, a create in flight; and a second
// end({ timeout }) after a first end(). Whatever is in flight, end() must resolve, and
// nothing the pool opened may stay open or counted after it.
import t from 'tap';
import mysql, { type ConnectionOptions } from 'mysql2/promise';
import { AcquireTimeoutError, createPool, FreshPoolError, type EvictEvent, type FreshPoolConfig } from '../lib/index.js';
import { startGateRelay } from './helpers/gate-relay.js';
import { captureLog } from './helpers/log.js';
import { sleep, startServer } from './helpers/mariadb.js';
import { startRelay } from './helpers/relay.js';
import { throughRelay, within } from './helpers/settle.js';
import { connectionId, ID_SQL, type IdRow } from './helpers/sql.js';

const server = await startServer(t);

const PASSWORD = 'end-races-Pa55-71c4';
/** A user of its own, so the pool's connections can be counted on the server by user. */
async function createUser(user: string): Promise<void> {
  // Both hosts: a client on 127.0.0.1 may match 'user'@'localhost' before 'user'@'%'.
  for (const host of ['%', 'localhost']) {
    await server.query(`CREATE USER IF NOT EXISTS '${user}'@'${host}' IDENTIFIED BY '${PASSWORD}'`);
    await server.query(`GRANT ALL ON test.* TO '${user}'@'${host}'`);
  }
}
const USER = 'fp_end';
await createUser(USER);
const asUser = (via: { host: string; port: number }): ConnectionOptions => ({ host: via.host, port: via.port, user: USER, password: PASSWORD, database: 'test' });

async function connectionsOf(user: string): Promise<number> {
  const rows = await server.query<Array<{ n: number }>>('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ?', [user]);
  return Number(rows[0]!.n);
}

/** Connections of `user` still open once the server is done closing (polled, at most `ms`). */
async function connectionsLeft(user: string, ms = 2_000): Promise<number> {
  const until = Date.now() + ms;
  let n = await connectionsOf(user);
  while (n !== 0 && Date.now() < until) {
    await sleep(50);
    n = await connectionsOf(user);
  }
  return n;
}

/** Kills whatever a failed test left open, so the next test starts clean. */
async function killAll(user: string): Promise<void> {
  const rows = await server.query<Array<{ ID: number }>>('SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?', [user]);
  for (const { ID } of rows) await server.query(`KILL CONNECTION ${Number(ID)}`).catch(() => undefined);
}

/** Resolves once `check()` holds (polled), or rejects after `ms`. */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const describe = (r: Awaited<ReturnType<typeof within>>) =>
  r.status === 'rejected' ? `rejected: ${(r.reason as Error).name}: ${(r.reason as Error).message}` : r.status;

t.afterEach(() => killAll(USER));

t.test('5. end({ timeout }) while a statement waits for its replacement connection', async (t) => {
  t.equal(await connectionsOf(USER), 0, 'no connection of the user before');
  // New connections go through a gate the test opens; the pool's first one is made open.
  const relay = await startGateRelay(server.host, server.port);
  const pool = createPool({ connection: asUser(relay), max: 1, acquireTimeout: 5_000, logger: captureLog().logger });
  t.teardown(async () => {
    relay.open();
    await within(pool.end(), 5_000);
    await relay.close();
  });

  let reached!: () => void;
  const waitingForReplacement = new Promise<void>((resolve) => (reached = resolve));
  const borrow = pool.withConnection(async (conn) => {
    const id = await connectionId(conn);
    const lost = new Promise<void>((resolve) => {
      conn.once('end', () => resolve());
      conn.once('error', () => resolve());
    });
    await server.query(`KILL CONNECTION ${id}`);
    await within(lost, 5_000); // the close has arrived: the next statement must replace it
    relay.hold(); // ...and the replacement's connect will wait at the gate
    const statement = conn.query<IdRow[]>(ID_SQL);
    reached();
    return statement;
  });
  // end() aborts the connect under way, so the borrow may reject before it is awaited below.
  borrow.catch(() => undefined);
  await waitingForReplacement;
  await until(() => relay.held === 1, 5_000, 'the replacement connect to reach the gate');

  const ending = pool.end({ timeout: 100 });
  await sleep(400); // well past end()'s timeout, with the replacement still being made
  relay.open(); // the replacement connect now succeeds

  // Regression: end() resolved at its timeout and left the connect running; the replacement
  // was then adopted, the statement ran on it, and the connection was released into the
  // ended pool: open on the server, idle in stats(), the process kept alive. Now end() aborts
  // the connect under way.
  const statement = await within(borrow, 5_000);
  t.equal(statement.status, 'rejected', `the statement does not run after end() (${describe(statement)})`);
  if (statement.status === 'rejected') t.ok(statement.reason instanceof FreshPoolError, 'with a typed error of the pool (PoolClosedError expected)');
  t.match(statement.status === 'rejected' ? statement.reason : undefined, { code: 'ERR_FRESH_POOL_CLOSED' }, 'PoolClosedError');
  const ended = await within(ending, 5_000);
  t.equal(ended.status, 'fulfilled', 'end() resolves');
  t.equal(await connectionsLeft(USER), 0, 'none of the pool\'s connections left on the server');
  t.match(pool.stats(), { size: 0, idle: 0, borrowed: 0 }, 'nothing open, idle or lent in stats()');
  t.equal(relay.accepted, 2, 'two connects: the first connection and its replacement');
});

t.test('6. clean-up on return over a silently dropped connection is bounded', async (t) => {
  await t.test('fault is real: a plain mysql2 pool lends the dropped connection and the next query hangs', async (t) => {
    const relay = await startRelay(server.host, server.port);
    const plain = mysql.createPool({ uri: throughRelay(server.url, relay), connectionLimit: 1 });
    let hung: Promise<unknown> = Promise.resolve();
    t.teardown(async () => {
      await relay.close(); // fails the hung query
      await hung;
      await plain.end();
    });
    const c = await plain.getConnection();
    await c.query('START TRANSACTION');
    relay.blackhole();
    c.release();
    const next = plain.query('SELECT 1');
    hung = next.catch(() => undefined);
    t.same(await within(next, 1_500), { status: 'pending' }, 'no answer and no error after 1.5 s');
  });

  const scenario = (name: string, extra: Partial<FreshPoolConfig>, lastStatement: string) =>
    t.test(name, async (t) => {
      const pingTimeout = 300;
      const relay = await startRelay(server.host, server.port);
      const log = captureLog();
      const pool = createPool({ connection: throughRelay(server.url, relay), max: 1, pingTimeout, acquireTimeout: 1_500, logger: log.logger, ...extra });
      t.teardown(async () => {
        await relay.close(); // on failure the clean-up hangs on the silent socket: this fails it
        await within(pool.end(), 5_000);
      });
      const evicted = new Promise<EvictEvent>((resolve) => pool.on('evict', resolve));

      const droppedId = await pool.withConnection(async (conn) => {
        await conn.query(lastStatement);
        const id = await connectionId(conn);
        relay.blackhole(); // the clean-up on return gets no answer, and no close
        return id;
      });

      // Regression: the clean-up had no timeout; the slot stayed "borrowed" with no holder,
      // later borrows timed out, and end() waited for it forever.
      const eviction = await within(evicted, pingTimeout + 3_000);
      t.equal(eviction.status, 'fulfilled', `the connection was evicted within pingTimeout + 3 s (${eviction.status})`);
      if (eviction.status === 'fulfilled') t.match(eviction.value, { connId: droppedId, reason: 'cleanupTimeout' }, 'the dropped one, for cleanupTimeout');
      t.equal(pool.stats().borrowed, 0, 'the slot is free');
      t.equal(pool.stats().destroyed.cleanupTimeout, 1, 'counted as cleanupTimeout in stats().destroyed');

      const later = await within(pool.withConnection((c) => connectionId(c)), 5_000);
      t.equal(later.status, 'fulfilled', `a later borrow gets a connection (${describe(later)})`);
      if (later.status === 'fulfilled') t.not(later.value, droppedId, 'a new one');
      t.equal(relay.pairs.length, 2, 'made through the relay after the drop');

      const ended = await within(pool.end(), 5_000);
      t.equal(ended.status, 'fulfilled', 'end() resolves');
      t.match(pool.stats(), { size: 0, borrowed: 0 });
    });

  await scenario('a transaction left open: the ROLLBACK on return times out', {}, 'START TRANSACTION');
  await scenario('resetOnReturn: the COM_RESET_CONNECTION on return times out', { resetOnReturn: true }, "SET @x = 'left behind'");
});

t.test('7. end({ timeout }) after an earlier end() still bounds the wait', async (t) => {
  const pool = createPool({ connection: asUser(server), max: 1, logger: captureLog().logger });
  let letGo!: () => void;
  const held = new Promise<void>((resolve) => (letGo = resolve));
  t.teardown(async () => {
    letGo();
    await within(pool.end(), 5_000);
  });

  let started!: () => void;
  const running = new Promise<void>((resolve) => (started = resolve));
  let holderDone = false;
  // Holds its connection until the test lets go (at the end), far longer than any bound below.
  const holder = pool.withConnection(async (conn) => {
    await connectionId(conn);
    started();
    await held;
    holderDone = true;
    return connectionId(conn);
  });
  const holderOutcome = holder.then(() => 'resolved', (e: Error) => e.name);
  await running;

  const first = pool.end();
  const second = pool.end({ timeout: 100 });
  t.equal(second, first, 'the same promise as the first end()');
  // Regression: the second call returned the first end()'s promise, which waits without limit.
  const ended = await within(second, 5_000);
  t.equal(ended.status, 'fulfilled', `end({ timeout: 100 }) resolves while the holder still holds (${ended.status})`);
  t.equal(holderDone, false, 'the holder had not let go');

  letGo();
  t.equal(await holderOutcome, 'PoolClosedError', "the holder's next statement is refused: its connection was closed by end()");
  // Its (closed) slot counts as lent until the holder gives it back; then nothing is left.
  t.match(pool.stats(), { size: 0, borrowed: 0, idle: 0 }, 'nothing left in stats() once the holder returned');
  t.equal(await connectionsLeft(USER), 0, 'none of the pool\'s connections left on the server');
});

t.test('8. end() while a create is in flight', async (t) => {
  const relay = await startGateRelay(server.host, server.port);
  const pool = createPool({ connection: asUser(relay), max: 2, acquireTimeout: 300, logger: captureLog().logger });
  t.teardown(async () => {
    relay.open();
    await within(pool.end(), 5_000);
    await relay.close();
  });

  // A borrow gives up at acquireTimeout; the connect it started goes on, held at the gate.
  relay.hold();
  const borrow = await within(pool.withConnection(() => 'never'), 5_000);
  t.ok(borrow.status === 'rejected' && borrow.reason instanceof AcquireTimeoutError, `the borrow timed out (${describe(borrow)})`);
  t.equal(relay.held, 1, 'its connect is still in flight');

  const ending = pool.end();
  await sleep(200); // end() is under way with the create still in flight
  relay.open();
  const ended = await within(ending, 5_000);
  t.equal(ended.status, 'fulfilled', 'end() resolves');
  // Regression: generic-pool's clear() destroyed the late connection but left it in its idle
  // list, so stats() reported it idle after end().
  t.match(pool.stats(), { idle: 0, size: 0, borrowed: 0 }, 'after end(): nothing idle, open or lent in stats()');
  t.equal(await connectionsLeft(USER), 0, 'none of the pool\'s connections left on the server');
});
