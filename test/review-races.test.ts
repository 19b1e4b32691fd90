// Races found in review, each where a borrower's code does something legal but careless: fires
// a statement that needs a check and returns without awaiting it, gives up on a statement and
// destroys its connection, hangs in onConnect, runs a long statement and issues another past
// connWaitAge, subscribes a throwing event listener; and one about error stacks through the
// mysql2 adapter. In each, the slot must come back, nothing may outlive end(), and no
// acknowledged write may be lost.
import t from 'tap';
import type { ConnectionOptions, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { AcquireTimeoutError, ConnectionSetupError, createMysql2Adapter, createPool, type FreshPool } from '../lib/index.js';
import { startGateRelay } from './helpers/gate-relay.js';
import { captureLog } from './helpers/log.js';
import { sleep, startServer } from './helpers/mariadb.js';
import { connectionsLeft as leftOf, connectionsOf as countOf, killAll as killAllOf } from './helpers/processlist.js';
import { startRelay } from './helpers/relay.js';
import { describeOutcome, until, within } from './helpers/settle.js';
import { connectionId } from './helpers/sql.js';

const server = await startServer(t);

const PASSWORD = 'review-races-Pa55-3e9d';
const USER = 'fp_review';
// A user of its own, so the pool's connections can be counted on the server by user. Both
// hosts: a client on 127.0.0.1 may match 'user'@'localhost' before 'user'@'%'.
for (const host of ['%', 'localhost']) {
  await server.query(`CREATE USER IF NOT EXISTS '${USER}'@'${host}' IDENTIFIED BY '${PASSWORD}'`);
  await server.query(`GRANT ALL ON test.* TO '${USER}'@'${host}'`);
}
const asUser = (via: { host: string; port: number }): ConnectionOptions => ({ host: via.host, port: via.port, user: USER, password: PASSWORD, database: 'test' });
const connectionsOf = () => countOf(server, USER);
const connectionsLeft = (ms?: number) => leftOf(server, USER, ms);

await server.query('CREATE TABLE IF NOT EXISTS test.rr_rows (k VARCHAR(64) PRIMARY KEY)');
let keys = 0;
const key = (label: string) => `${label}-${++keys}`;
async function present(k: string): Promise<boolean> {
  const rows = await server.query<RowDataPacket[]>('SELECT k FROM test.rr_rows WHERE k = ?', [k]);
  return rows.length === 1;
}

const describe = describeOutcome;

t.afterEach(() => killAllOf(server, USER));

t.test('a statement waiting for its check keeps the slot until it is answered, even unawaited', async (t) => {
  await t.test('after a KILL: the reconnect is not adopted into a slot already given back', async (t) => {
    t.equal(await connectionsOf(), 0, 'no connection of the user before');
    const relay = await startGateRelay(server.host, server.port);
    const pool = createPool({ connection: asUser(relay), max: 1, acquireTimeout: 5_000, logger: captureLog().logger });
    t.teardown(async () => {
      relay.open();
      await within(pool.end(), 5_000);
      await relay.close();
    });

    // Samples the pool's size and the user's connections on the server until told to stop.
    let sampling = true;
    let mostSize = 0;
    let mostOnServer = 0;
    const sampler = (async () => {
      while (sampling) {
        mostSize = Math.max(mostSize, pool.stats().size);
        mostOnServer = Math.max(mostOnServer, await connectionsOf());
        await sleep(20);
      }
    })();

    const k = key('after-kill');
    let insert!: Promise<[ResultSetHeader, unknown]>;
    const firstId = await pool.withConnection(async (conn) => {
      const id = await connectionId(conn);
      const lost = new Promise<void>((resolve) => {
        conn.once('end', () => resolve());
        conn.once('error', () => resolve());
      });
      await server.query(`KILL CONNECTION ${id}`);
      await within(lost, 5_000); // the close has arrived: the next statement must replace it
      relay.hold(); // ...and the replacement's connect waits at the gate
      insert = conn.query<ResultSetHeader>('INSERT INTO test.rr_rows VALUES (?)', [k]);
      insert.catch(() => undefined);
      return id; // without awaiting the INSERT
    });
    // Another borrower, while the INSERT still waits for its replacement connection.
    const next = pool.withConnection((conn) => connectionId(conn));
    next.catch(() => undefined);
    await until(() => relay.held >= 1, 5_000, 'the replacement connect to reach the gate');
    await sleep(300); // a slow reconnect
    relay.open();

    const inserted = await within(insert, 5_000);
    t.equal(inserted.status, 'fulfilled', `the unawaited INSERT resolves (${describe(inserted)})`);
    if (inserted.status === 'fulfilled') t.equal(inserted.value[0].affectedRows, 1, 'one row');
    t.equal(await present(k), true, 'the row is there');
    const nextBorrow = await within(next, 5_000);
    t.equal(nextBorrow.status, 'fulfilled', `the next borrower gets a connection (${describe(nextBorrow)})`);
    if (nextBorrow.status === 'fulfilled') t.not(nextBorrow.value, firstId, 'a live one, not the killed one');
    await sleep(100);
    sampling = false;
    await sampler;

    // Regression: fn's return gave the slot back (nothing was in flight yet) and it was
    // destroyed as closed; the reconnect then adopted its connection into that destroyed slot:
    // a connection beyond max, outside the pool, open after end().
    t.ok(mostSize <= 1, `the pool's size never exceeded max 1 (most ${mostSize})`);
    t.ok(mostOnServer <= 1, `the user never had more than max 1 connection on the server (most ${mostOnServer})`);
    t.equal(relay.accepted, 2, 'two connects: the first connection and its replacement');
    const ended = await within(pool.end(), 5_000);
    t.equal(ended.status, 'fulfilled', 'end() resolves');
    t.equal(await connectionsLeft(), 0, "none of the pool's connections left on the server after end()");
    t.match(pool.stats(), { size: 0, idle: 0, borrowed: 0 });
  });

  await t.test('after a connWaitAge idle: a waiting borrower does not get the slot before the statement is answered', async (t) => {
    const pool = createPool({ connection: asUser(server), max: 1, connWaitAge: 200, acquireTimeout: 5_000, logger: captureLog().logger });
    t.teardown(() => within(pool.end(), 5_000));
    await pool.query('DO 1'); // the first connection made

    let started!: () => void;
    const holding = new Promise<void>((resolve) => (started = resolve));
    let begin!: Promise<unknown>;
    const pingsBefore = pool.stats().pings;
    const a = pool.withConnection(async (conn) => {
      await conn.query('DO 1');
      started();
      await sleep(350); // idle past connWaitAge: the next statement is pinged first
      begin = conn.query('START TRANSACTION');
      begin.catch(() => undefined);
      // returns without awaiting it
    });
    await holding;
    const k = key('waiting-borrower');
    // Waits for the only slot while A holds it.
    const b = pool.withConnection(async (conn) => {
      await conn.query('DO 1');
      await sleep(50); // by now A's START TRANSACTION, had it been let through after the slot, ran
      const [result] = await conn.query<ResultSetHeader>('INSERT INTO test.rr_rows VALUES (?)', [k]);
      return result.affectedRows;
    });
    await a;
    const bDone = await within(b, 5_000);
    t.equal(bDone.status, 'fulfilled', `B's borrow resolves (${describe(bDone)})`);
    if (bDone.status === 'fulfilled') t.equal(bDone.value, 1, "B's INSERT was acknowledged");
    t.ok(pool.stats().pings > pingsBefore, "A's statement was pinged first (the check path)");
    const began = await within(begin, 5_000);
    t.equal(began.status, 'fulfilled', `A's START TRANSACTION was answered (${describe(began)})`);
    await pool.query('DO 1'); // the connection has come back once more
    // Regression: A's return gave the slot to B while its START TRANSACTION waited for the
    // ping; sent after, it opened a transaction under B's INSERT, rolled back at B's return.
    t.equal(await present(k), true, "B's acknowledged INSERT is durable");
  });
});

t.test('a statement raced, then its connection destroyed: the slot comes back and end() resolves', async (t) => {
  const acquireTimeout = 1_000;
  const relay = await startRelay(server.host, server.port);
  const pool = createPool({ connection: asUser(relay), max: 1, acquireTimeout, logger: captureLog().logger });
  t.teardown(async () => {
    await relay.close();
    await within(pool.end(), 5_000);
  });

  let raced!: Promise<unknown>;
  await pool.withConnection(async (conn) => {
    await conn.query('DO 1');
    raced = conn.query('SELECT SLEEP(5)');
    raced.catch(() => undefined);
    await Promise.race([raced, sleep(200)]);
    // The statement never gets an answer, nor the close any acknowledgement: the path is silent.
    relay.blackhole();
    conn.destroy(); // mysql2 half-closes, and leaves the command unanswered
  });

  // Regression: the return waited for the statement, bounded by a destroy of the socket that
  // did nothing on a connection mysql2 was already closing: the statement never settled, the
  // slot stayed borrowed with no holder, later borrows timed out, end() never resolved.
  const settled = await within(raced, acquireTimeout + 3_000);
  t.equal(settled.status, 'rejected', `the raced statement settles, rejected (${describe(settled)})`);
  const freed = await within(until(() => pool.stats().borrowed === 0, acquireTimeout + 3_000, 'the slot to come back'), acquireTimeout + 3_500);
  t.equal(freed.status, 'fulfilled', `the slot comes back (${describe(freed)})`);
  const later = await within(pool.withConnection((conn) => connectionId(conn)), 5_000);
  t.equal(later.status, 'fulfilled', `a later borrow gets a connection (${describe(later)})`);
  const ended = await within(pool.end(), 5_000);
  t.equal(ended.status, 'fulfilled', `end() resolves (${describe(ended)})`);
  t.match(pool.stats(), { size: 0, idle: 0, borrowed: 0 });
});

t.test('session setup is bounded: an onConnect that never settles', async (t) => {
  await t.test('the borrow fails with ConnectionSetupError, a later borrow works, end() resolves', async (t) => {
    const acquireTimeout = 1_000;
    let unblock!: () => void;
    const never = new Promise<void>((resolve) => (unblock = resolve)); // settled only at teardown
    let calls = 0;
    const pool = createPool({
      connection: asUser(server),
      max: 1,
      acquireTimeout,
      logger: captureLog().logger,
      onConnect: () => (++calls === 1 ? never : undefined),
    });
    t.teardown(async () => {
      unblock(); // lets the old code's hung setup finish, so its pool can end
      await within(pool.end(), 5_000);
    });

    const setupFailed = new Promise<Error>((resolve) => pool.on('error', resolve));

    const startedMs = Date.now();
    const first = await within(pool.withConnection((conn) => connectionId(conn)), acquireTimeout + 3_000);
    const firstMs = Date.now() - startedMs;
    t.equal(first.status, 'rejected', `the borrow rejects (${describe(first)}, ${firstMs} ms)`);
    // The setup's deadline (acquireTimeout) is armed once the connection is made, after the
    // borrow's own (acquireTimeout too): the borrow that started the connect times out first,
    // with AcquireTimeoutError; the setup's own failure follows and reaches the 'error' event.
    t.ok(first.status === 'rejected' && (first.reason instanceof ConnectionSetupError || first.reason instanceof AcquireTimeoutError), 'a typed error of the pool');
    // Regression: the setup was only watched (its socket destroyed at the deadline), so an
    // onConnect waiting on something else never failed: it held the slot for ever, every
    // later borrow timed out and end() never resolved.
    const failed = await within(setupFailed, 3_000);
    t.equal(failed.status, 'fulfilled', `the setup fails at its deadline: the pool's 'error' event (${describe(failed)})`);
    if (failed.status === 'fulfilled') {
      t.ok(failed.value instanceof ConnectionSetupError, `with ConnectionSetupError (${failed.value.name}: ${failed.value.message})`);
      t.match(failed.value, { code: 'ERR_FRESH_POOL_CONNECTION_SETUP' });
    }
    const later = await within(pool.withConnection((conn) => connectionId(conn)), acquireTimeout + 4_000);
    t.equal(later.status, 'fulfilled', `a later borrow works (${describe(later)})`);
    t.equal(calls, 2, 'onConnect ran again, on a new connection');
    const ended = await within(pool.end(), 5_000);
    t.equal(ended.status, 'fulfilled', `end() resolves (${describe(ended)})`);
    t.equal(await connectionsLeft(), 0, "none of the pool's connections left on the server");
  });

  await t.test('end({ timeout: 100 }) while it hangs resolves promptly', async (t) => {
    let unblock!: () => void;
    const never = new Promise<void>((resolve) => (unblock = resolve));
    let called!: () => void;
    const inSetup = new Promise<void>((resolve) => (called = resolve));
    const pool = createPool({
      connection: asUser(server),
      max: 1,
      acquireTimeout: 10_000,
      logger: captureLog().logger,
      onConnect: () => {
        called();
        return never;
      },
    });
    t.teardown(async () => {
      unblock();
      await within(pool.end(), 5_000);
    });
    const borrow = pool.withConnection((conn) => connectionId(conn));
    borrow.catch(() => undefined);
    await within(inSetup, 5_000);

    const startedMs = Date.now();
    // Regression: end() waited for the connect under way, stuck in onConnect.
    const ended = await within(pool.end({ timeout: 100 }), 1_500);
    t.equal(ended.status, 'fulfilled', `end({ timeout: 100 }) resolves (${describe(ended)}, ${Date.now() - startedMs} ms)`);
    const borrowed = await within(borrow, 1_500);
    t.equal(borrowed.status, 'rejected', `the borrow rejects (${describe(borrowed)})`);
    t.equal(await connectionsLeft(), 0, "none of the pool's connections left on the server");
    t.match(pool.stats(), { size: 0, idle: 0, borrowed: 0 });
  });
});

t.test('a long statement in flight past connWaitAge: the next statement does not ping behind it', async (t) => {
  const pool = createPool({ connection: asUser(server), max: 1, connWaitAge: 200, pingTimeout: 500, acquireTimeout: 5_000, logger: captureLog().logger });
  t.teardown(() => within(pool.end(), 5_000));
  await pool.query('DO 1');

  const outcome = await pool.withConnection(async (conn) => {
    await conn.query('DO 1');
    const long = conn.query<RowDataPacket[]>('SELECT SLEEP(2.5) AS s'); // sent before the idle point
    long.catch(() => undefined);
    await sleep(400); // past connWaitAge, with the long statement still running
    const second = conn.query<RowDataPacket[]>('SELECT 1 AS one');
    return Promise.allSettled([long, second]);
  });
  // Regression: the second statement pinged first; the ping queued behind the long statement,
  // timed out after pingTimeout, and its timeout destroyed the socket under the long statement.
  const [long, second] = outcome;
  t.equal(long.status, 'fulfilled', `the long statement resolves (${long.status === 'rejected' ? (long.reason as Error).message : 'ok'})`);
  if (long.status === 'fulfilled') t.equal(Number(long.value[0][0]!.s), 0, 'SLEEP ran to its end');
  t.equal(second.status, 'fulfilled', `the second statement resolves (${second.status === 'rejected' ? (second.reason as Error).message : 'ok'})`);
  if (second.status === 'fulfilled') t.equal(Number(second.value[0][0]!.one), 1);
  t.same(pool.stats().destroyed, {}, 'nothing destroyed');
});

t.test('a throwing event listener does not leave the slot borrowed', async (t) => {
  for (const event of ['acquire', 'release'] as const) {
    await t.test(`an '${event}' listener that throws`, async (t) => {
      const pool = createPool({ connection: asUser(server), max: 1, acquireTimeout: 1_000, logger: captureLog().logger });
      t.teardown(() => within(pool.end(), 5_000));
      await pool.query('DO 1'); // an idle connection: the borrow below takes the hot path

      const boom = new Error(`${event} listener failed`);
      let throws = 1;
      pool.on(event, () => {
        if (throws-- > 0) throw boom;
      });
      const uncaught: unknown[] = [];
      const onUncaught = (err: unknown) => void uncaught.push(err);
      process.on('uncaughtException', onUncaught);
      let first: Awaited<ReturnType<typeof within>>;
      try {
        first = await within(pool.withConnection((conn) => connectionId(conn)), 2_000);
        await sleep(50); // a listener's error is thrown on a later tick
      } finally {
        process.off('uncaughtException', onUncaught);
      }
      t.equal(first.status, 'fulfilled', `the borrow goes through (${describe(first)})`);
      t.same(uncaught, [boom], "the listener's error is reported as an uncaught exception of its own");

      // Regression: the throw escaped half-way through the pool's step (the slot lent before
      // anyone held it, or the return skipped): the slot stayed borrowed, and with max 1 every
      // later borrow timed out.
      t.equal(pool.stats().borrowed, 0, 'the slot is not left borrowed');
      const later = await within(pool.withConnection((conn) => connectionId(conn)), 3_000);
      t.equal(later.status, 'fulfilled', `a later borrow works (${describe(later)})`);
      t.match(pool.stats(), { borrowed: 0, size: 1 });
    });
  }
});

async function myRepoFunction(pool: FreshPool): Promise<unknown> {
  const adapter = createMysql2Adapter(pool);
  const conn = await adapter.getConnection();
  try {
    const [rows] = await conn.query('SELECT * FROM no_such_review_table');
    return rows;
  } finally {
    conn.release();
  }
}

t.test("the mysql2 adapter's getConnection(): a failed statement's stack names the awaiting function", async (t) => {
  const pool = createPool({ connection: asUser(server), max: 1, logger: captureLog().logger });
  t.teardown(() => within(pool.end(), 5_000));
  const err = await myRepoFunction(pool).then(
    () => new Error('expected a failure'),
    (e: unknown) => e as Error & { code?: string },
  );
  t.match(err, { code: 'ER_NO_SUCH_TABLE' }, "the server's error");
  // Regression: the adapter's command queue settled the caller's promise from a side branch,
  // so V8's async stack trace stopped there and the caller's frames were lost.
  t.match(err.stack, /at async myRepoFunction \(.*review-races\.test\.ts:\d+/, 'the awaiting function and this file are in the stack');
});
