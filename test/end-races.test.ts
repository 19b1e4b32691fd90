// end() racing work that is neither lent nor idle: a replacement connection being made for a
// statement, a clean-up on return that gets no answer, a create in flight; and a second
// end({ timeout }) after a first end(). Whatever is in flight, end() must resolve, and
// nothing the pool opened may stay open or counted after it.
import t from 'tap';
import mysql, { type ConnectionOptions } from 'mysql2/promise';
import { AcquireTimeoutError, createPool, FreshPoolError, type EvictEvent, type FreshPoolConfig, type PoolConnection } from '../lib/index.js';
import { startGateRelay } from './helpers/gate-relay.js';
import { captureLog } from './helpers/log.js';
import { sleep, startServer } from './helpers/mariadb.js';
import { connectionsLeft as leftOf, connectionsOf as countOf, killAll as killAllOf } from './helpers/processlist.js';
import { startRelay } from './helpers/relay.js';
import { describeOutcome, throughRelay, until, within } from './helpers/settle.js';
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

const connectionsOf = (user: string) => countOf(server, user);
const connectionsLeft = (user: string, ms?: number) => leftOf(server, user, ms);
const killAll = (user: string) => killAllOf(server, user);

const describe = describeOutcome;

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

t.test('9. end({ timeout }) and ready() with a connect in flight are bounded', async (t) => {
  await t.test('a connect held before the greeting: end({ timeout: 100 }) resolves at once and aborts it', async (t) => {
    t.equal(await connectionsOf(USER), 0, 'no connection of the user before');
    const relay = await startGateRelay(server.host, server.port);
    const pool = createPool({ connection: asUser(relay), max: 1, acquireTimeout: 10_000, logger: captureLog().logger });
    t.teardown(async () => {
      relay.open();
      await within(pool.end(), 15_000);
      await relay.close();
    });

    // A borrow waits for a create whose connect is held at the gate: TCP accepted, no greeting.
    relay.hold();
    const borrow = pool.withConnection((c) => connectionId(c));
    borrow.catch(() => undefined);
    await until(() => relay.held === 1, 5_000, 'the connect to reach the gate');

    const startedMs = Date.now();
    const ending = pool.end({ timeout: 100 });
    // Regression: end() waited for the connect under way, which gives up only when the gate
    // opens or at mysql2's connectTimeout (10 s). The gate stays closed until end() settles or
    // 1.5 s pass: a hang detector, far above the 100 ms timeout.
    const ended = await within(ending, 1_500);
    const endMs = Date.now() - startedMs;
    relay.open();
    t.equal(ended.status, 'fulfilled', `end({ timeout: 100 }) resolved while the connect was held (${describe(ended)}, ${endMs} ms)`);
    const borrowed = await within(borrow, 5_000);
    t.equal(borrowed.status, 'rejected', `the waiting borrow rejects (${describe(borrowed)})`);
    if (borrowed.status === 'rejected') t.match(borrowed.reason, { code: 'ERR_FRESH_POOL_CLOSED' }, 'with PoolClosedError');
    if (ended.status !== 'fulfilled') await within(ending, 15_000); // old code: let it finish before counting

    // The gate is open now: a connect end() let run would reach the server and log in.
    let most = 0;
    for (const deadline = Date.now() + 1_000; Date.now() < deadline; ) {
      most = Math.max(most, await connectionsOf(USER));
      await sleep(50);
    }
    t.equal(most, 0, 'no connection of the pool\'s user appears on the server once the gate opens');
    t.equal(relay.accepted, 1, 'one connect, and no other attempt after end()');
    t.match(pool.stats(), { size: 0, idle: 0, borrowed: 0, waiting: 0 }, 'nothing open, idle, lent or waiting in stats()');
  });

  // The first connection reads the server's wait_timeout before it is used. Dropped silently
  // right after its handshake (here: by the session setup hook), that read gets no answer.
  const dropAfterHandshake = async (t: { teardown(fn: () => unknown): void }, pingTimeout: number) => {
    const relay = await startRelay(server.host, server.port);
    let dropped = false;
    let droppedAt!: () => void;
    const droppedNow = new Promise<void>((resolve) => (droppedAt = resolve));
    const pool = createPool({
      connection: asUser(relay),
      max: 1,
      pingTimeout,
      acquireTimeout: 3_000,
      logger: captureLog().logger,
      onConnect: () => {
        if (dropped) return;
        dropped = true;
        relay.blackhole(); // this connection's flow goes silent: no answer, no close
        droppedAt();
      },
    });
    t.teardown(async () => {
      await relay.close(); // on failure the read hangs on the silent socket: this fails it
      await within(pool.end(), 5_000);
    });
    return { relay, pool, droppedNow };
  };

  await t.test('dropped silently after its handshake: ready() fails within pingTimeout, the pool recovers', async (t) => {
    const pingTimeout = 300;
    const { relay, pool } = await dropAfterHandshake(t, pingTimeout);
    const startedMs = Date.now();
    // Regression: the wait_timeout read had no timeout: ready() hung, every connect after it
    // waited for the same read, and end() waited for them.
    const ready = await within(pool.ready(), pingTimeout + 2_500);
    t.equal(ready.status, 'rejected', `ready() rejects within pingTimeout + 2.5 s (${describe(ready)}, ${Date.now() - startedMs} ms)`);
    if (ready.status === 'rejected') t.match(ready.reason, { name: 'ConnectError', cause: { message: /wait_timeout/ } }, 'ConnectError: wait_timeout was not read');
    t.equal(await relay.pairs[0]!.clientClosed(2_000), true, 'the pool closed the silent connection');

    const later = await within(pool.query<IdRow[]>(ID_SQL), 5_000);
    t.equal(later.status, 'fulfilled', `a later query gets a new connection (${describe(later)})`);
    t.equal(relay.pairs.length, 2, 'made through the relay after the drop');
    const ended = await within(pool.end(), 5_000);
    t.equal(ended.status, 'fulfilled', 'end() resolves');
    t.match(pool.stats(), { size: 0, idle: 0, borrowed: 0 });
  });

  await t.test('end() while that read hangs: both settle at once, well before pingTimeout', async (t) => {
    const { relay, pool, droppedNow } = await dropAfterHandshake(t, 10_000);
    const readying = pool.ready();
    readying.catch(() => undefined);
    await within(droppedNow, 5_000);
    await sleep(100); // the wait_timeout read is on the wire, into the silence

    const startedMs = Date.now();
    // Regression: end() waited for the attempt under way, stuck in the read.
    const ended = await within(pool.end(), 1_500);
    t.equal(ended.status, 'fulfilled', `end() resolves (${describe(ended)}, ${Date.now() - startedMs} ms)`);
    const ready = await within(readying, 1_000);
    t.equal(ready.status, 'rejected', `ready() rejects (${describe(ready)})`);
    if (ready.status === 'rejected') t.match(ready.reason, { code: 'ERR_FRESH_POOL_CLOSED' }, 'with PoolClosedError');
    t.equal(await relay.pairs[0]!.clientClosed(2_000), true, 'the pool closed the silent connection');
    t.match(pool.stats(), { size: 0, idle: 0, borrowed: 0 });
  });
});

t.test('10. a statement left running over a silently dropped connection frees its slot at acquireTimeout', async (t) => {
  const scenario = (name: string, leave: (conn: PoolConnection) => Promise<void>) =>
    t.test(name, async (t) => {
      const acquireTimeout = 1_000;
      const relay = await startRelay(server.host, server.port);
      const pool = createPool({ connection: throughRelay(server.url, relay), max: 1, acquireTimeout, logger: captureLog().logger });
      t.teardown(async () => {
        await relay.close(); // on failure the statement hangs on the silent socket: this fails it
        await within(pool.end(), 5_000);
      });
      const evicted = new Promise<EvictEvent>((resolve) => pool.on('evict', resolve));

      const returnedMs = { at: 0 };
      const droppedId = await pool.withConnection(async (conn) => {
        const id = await connectionId(conn); // used just now: the next statement goes unchecked
        relay.blackhole(); // the statement below gets no answer, and no close
        await leave(conn);
        returnedMs.at = Date.now();
        return id;
      });

      // Regression: the return waited for the statement's answer without limit: the slot
      // stayed borrowed with no holder, later borrows timed out, end() never resolved.
      const eviction = await within(evicted, acquireTimeout + 3_000);
      t.equal(eviction.status, 'fulfilled', `the connection was evicted within acquireTimeout + 3 s (${eviction.status}, ${Date.now() - returnedMs.at} ms after the return)`);
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

  await scenario('fn fires a query without awaiting it and returns', async (conn) => {
    conn.query('SELECT 1').catch(() => undefined);
  });
  await scenario('fn gives up on a query with Promise.race and returns', async (conn) => {
    const query = conn.query('SELECT 1');
    query.catch(() => undefined);
    await Promise.race([query, sleep(100)]);
  });
});

t.test('11. end({ timeout }) after end() resolved leaves no timer holding the process', async (t) => {
  const pool = createPool({ connection: asUser(server), max: 1, logger: captureLog().logger });
  t.teardown(() => within(pool.end(), 5_000));
  await pool.query(ID_SQL);
  // getActiveResourcesInfo() lists ref'ed timers only: the ones that keep a process alive.
  const refTimers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

  await pool.end();
  const before = refTimers();
  // Between the two counts only microtasks run: no other timer can start or fire meanwhile.
  const second = pool.end({ timeout: 8_000 });
  await second; // the first end()'s promise, settled already
  const after = refTimers();
  // Regression: the second call armed an 8 s ref'ed timer no one cleared (the shutdown that
  // clears them had finished): a script ending with it stayed alive 8 s after its last line.
  t.equal(after - before, 0, `no ref'ed timer left by end({ timeout: 8000 }) (before ${before}, after ${after})`);
  t.equal(await connectionsLeft(USER), 0, 'none of the pool\'s connections left on the server');
});
