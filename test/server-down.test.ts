// The server is down (stopped: every connect is refused), then comes back. A borrow must fail
// with a typed, explained AcquireTimeoutError at its deadline (never hang, never call fn),
// connect attempts must be paced rather than spun, and once the server is back the pool must
// lend again without being rebuilt.
import t from 'tap';
import mysql from 'mysql2/promise';
import { AcquireTimeoutError, createPool, FreshPoolError, type FreshPool } from '../lib/index.js';
import { captureLog } from './helpers/log.js';
import { startServer } from './helpers/mariadb.js';

const server = await startServer(t, {});
const skip = !server.canRestart && 'needs a private server it can stop';

const ACQUIRE_TIMEOUT = 1_500;

async function selectOne(pool: FreshPool): Promise<number> {
  const [rows] = await pool.query<any[]>('SELECT 1 AS one');
  return rows[0].one;
}

/** Borrows once, recording whether fn ran and how long the borrow took to settle. */
async function borrowWhileDown(pool: FreshPool) {
  let fnCalled = false;
  const started = Date.now();
  let error: unknown;
  try {
    await pool.withConnection(() => {
      fnCalled = true;
    });
  } catch (err) {
    error = err;
  }
  return { error, fnCalled, elapsedMs: Date.now() - started };
}

t.test('server down, then up', { skip }, async (t) => {
  // Sanity: the server is up and the pool works before the fault.
  const before = createPool({ connection: server.url, max: 1, logger: captureLog().logger });
  t.teardown(() => before.end());
  t.equal(await selectOne(before), 1, 'pool works while the server is up');

  // A borrower that starts waiting now, with a deadline long enough to outlast the outage:
  // it must get a connection once the server is back, with no error at all.
  const patientLog = captureLog();
  const patient = createPool({ connection: server.url, max: 1, acquireTimeout: 15_000, logger: patientLog.logger });
  t.teardown(() => patient.end());

  await server.stop();
  const patientBorrow = patient.withConnection(async (conn) => (await conn.query<any[]>('SELECT 1 AS one'))[0][0].one as number);
  // Keep the rejection handled until awaited below.
  patientBorrow.catch(() => {});

  await t.test('fault is real: a plain mysql2 pool rejects with ECONNREFUSED', async (t) => {
    const plain = mysql.createPool({ uri: server.url, connectionLimit: 2 });
    t.teardown(() => plain.end());
    await t.rejects(plain.query('SELECT 1'), { code: 'ECONNREFUSED' });
  });

  await t.test('a borrow rejects with an explained AcquireTimeoutError at its deadline', async (t) => {
    const log = captureLog();
    const pool = createPool({ connection: server.url, max: 2, acquireTimeout: ACQUIRE_TIMEOUT, logger: log.logger });
    t.teardown(() => pool.end());

    const { error, fnCalled, elapsedMs } = await borrowWhileDown(pool);
    const err = error as AcquireTimeoutError;
    t.ok(err instanceof AcquireTimeoutError, 'an AcquireTimeoutError');
    t.ok(err instanceof FreshPoolError, 'a FreshPoolError');
    t.equal(err.code, 'ERR_FRESH_POOL_ACQUIRE_TIMEOUT');
    t.equal(err.name, 'AcquireTimeoutError');
    t.equal(err.timeoutMs, ACQUIRE_TIMEOUT);
    t.ok(err.stats, 'carries the pool stats');
    t.type(err.stats.size, 'number', 'stats.size');
    t.type(err.stats.waiting, 'number', 'stats.waiting');
    t.type(err.stats.borrowed, 'number', 'stats.borrowed');
    t.equal(err.stats.borrowed, 0, 'nothing was lent');
    t.equal(err.stats.max, 2);
    t.equal((err.cause as { code?: string } | undefined)?.code, 'ECONNREFUSED', 'cause is the refused connect');
    t.match(err.message, /ECONNREFUSED/, 'the message names the last failure');
    t.equal(fnCalled, false, 'fn was never called');
    t.ok(elapsedMs >= ACQUIRE_TIMEOUT - 100, `kept trying until its deadline (${elapsedMs} ms)`);
    t.ok(elapsedMs < ACQUIRE_TIMEOUT + 1_500, `did not hang (${elapsedMs} ms)`);

    // Paced: generic-pool alone re-creates at once after each failure (hundreds per second).
    // err.stats is the snapshot taken at the deadline, so it covers exactly the down window.
    const failures = err.stats.connectFailures;
    t.ok(failures >= 2, `retried while down (${failures} failed connects)`);
    t.ok(failures <= 15, `connect attempts were paced, not spun (${failures} in ${elapsedMs} ms)`);
    const warned = log.find('connect failed');
    t.ok(warned.length >= failures, 'every failed connect was logged as a warning');
    t.ok(warned.every((l) => l.level === 40), 'at warn level');
    t.equal((warned[0]?.err as { code?: string } | undefined)?.code, 'ECONNREFUSED');
    t.ok(
      warned.slice(1).every((l) => (l.delayMs as number) > 0),
      'every retry after the first failure waited first: ' + warned.map((l) => l.delayMs).join(','),
    );
  });

  await t.test('two concurrent borrowers both get AcquireTimeoutError', async (t) => {
    const pool = createPool({ connection: server.url, max: 2, acquireTimeout: ACQUIRE_TIMEOUT, logger: captureLog().logger });
    t.teardown(() => pool.end());
    const results = await Promise.all([borrowWhileDown(pool), borrowWhileDown(pool)]);
    for (const [i, r] of results.entries()) {
      t.ok(r.error instanceof AcquireTimeoutError, `borrower ${i}: AcquireTimeoutError`);
      t.equal((r.error as AcquireTimeoutError).code, 'ERR_FRESH_POOL_ACQUIRE_TIMEOUT');
      t.equal(r.fnCalled, false, `borrower ${i}: fn never called`);
      t.ok(r.elapsedMs < ACQUIRE_TIMEOUT + 1_500, `borrower ${i}: did not hang (${r.elapsedMs} ms)`);
    }
    const failures = pool.stats().connectFailures;
    t.ok(failures <= 30, `two borrowers, still paced (${failures} failed connects)`);
  });

  await t.test('after the server is back, the next borrow succeeds', async (t) => {
    // Its deadline covers the connect backoff, which is capped at DEFAULTS.connectBackoffMax (2 s).
    const log = captureLog();
    const pool = createPool({ connection: server.url, max: 2, acquireTimeout: 4_000, logger: log.logger });
    t.teardown(() => pool.end());
    const down = await borrowWhileDown(pool);
    t.ok(down.error instanceof AcquireTimeoutError, 'while down: AcquireTimeoutError');

    await server.start();
    t.equal(await selectOne(pool), 1, 'the same pool lends again once the server is up');
    const failuresAfter = pool.stats().connectFailures;
    t.equal(await selectOne(pool), 1, 'and again');
    t.equal(pool.stats().connectFailures, failuresAfter, 'no more connect failures once up');
    t.equal(pool.stats().created, 1, 'one connection made after recovery, then reused');
  });

  await t.test('a borrower that waited through the outage gets its connection, no error', async (t) => {
    t.equal(await patientBorrow, 1, 'the waiting borrow resolved with its result');
    const s = patient.stats();
    t.ok(s.connectFailures >= 1, `it really waited through refused connects (${s.connectFailures})`);
    t.equal(s.created, 1);
  });

  await t.test('a pool that saw only the outage before it recovered works too', async (t) => {
    // `before` had a connection from before the outage; that socket died with the server.
    t.equal(await selectOne(before), 1, 'no error: the dead connection was not lent');
  });
});
