// A pool whose connections are all lent: the next borrow waits at most acquireTimeout.
import t from 'tap';
import { AcquireTimeoutError, createPool } from '../lib/index.js';
import { startServer } from './helpers/mariadb.js';

const server = await startServer(t);

t.test('exhausted pool: AcquireTimeoutError with a stats snapshot and no cause', async (t) => {
  const pool = createPool({ connection: server.url, max: 1, acquireTimeout: 300 });
  t.teardown(() => pool.end());
  let release!: () => void;
  const holding = pool.withConnection(() => new Promise<void>((resolve) => (release = resolve)));
  await new Promise((resolve) => setTimeout(resolve, 50));
  let called = false;
  const err = await pool
    .withConnection(() => {
      called = true;
    })
    .catch((e: unknown) => e);
  t.ok(err instanceof AcquireTimeoutError);
  const timeout = err as AcquireTimeoutError;
  t.equal(timeout.code, 'ERR_FRESH_POOL_ACQUIRE_TIMEOUT');
  t.equal(timeout.timeoutMs, 300);
  t.equal(timeout.cause, undefined, 'nothing failed: the pool was only busy');
  t.match(timeout.stats, { size: 1, borrowed: 1, max: 1 });
  t.ok(Object.isFrozen(timeout.stats));
  t.equal(called, false);
  release();
  await holding;
  t.equal(await pool.withConnection(() => 'next'), 'next', 'the pool works once the holder returns');
});

t.test('fn that is not a function: a typed error before anything is borrowed', async (t) => {
  const pool = createPool({ connection: server.url, max: 1 });
  t.teardown(() => pool.end());
  await t.rejects(pool.withConnection('SELECT 1' as never), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'fn' });
  t.equal(pool.stats().created, 0);
});
