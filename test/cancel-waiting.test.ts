// pool.cancelWaiting(reason): every borrow waiting for a connection rejects with `reason` at
// once, nothing stays queued, later borrows are served as usual. A cluster moves the waits on
// a node that stops being fit this way (cluster-routing.test.ts), with nothing allocated per
// borrow.
import t from 'tap';
import { createPool, InvalidArgumentError } from '../lib/index.js';
import { startServer } from './helpers/mariadb.js';

const server = await startServer(t);
const silent = { debug() {}, info() {}, warn() {}, error() {} };

t.test('queued borrows reject with the reason; the held connection and later borrows are unaffected', async (t) => {
  const pool = createPool({ connection: server.url, max: 1, acquireTimeout: 20_000, logger: silent });
  t.teardown(() => pool.end());
  let letGo!: () => void;
  const held = pool.withConnection(() => new Promise<void>((resolve) => (letGo = resolve)));
  while (pool.stats().borrowed !== 1) await new Promise((resolve) => setTimeout(resolve, 10));
  const waiting = [pool.query('SELECT 1'), pool.lease(), pool.withConnection((conn) => conn.query('SELECT 2'))];
  const settled = Promise.allSettled(waiting);
  while (pool.stats().waiting !== 3) await new Promise((resolve) => setTimeout(resolve, 10));
  const reason = new Error('node left');
  pool.cancelWaiting(reason);
  const outcomes = await settled;
  t.same(
    outcomes.map((o) => (o.status === 'rejected' ? o.reason : 'fulfilled')),
    [reason, reason, reason],
    'every waiting borrow rejected with the reason itself, before the held connection came back',
  );
  t.equal(pool.stats().waiting, 0, 'nothing left queued');
  letGo();
  await held;
  t.equal(pool.stats().borrowed, 0, 'the held connection came back');
  t.same((await pool.query('SELECT 3 AS n'))[0], [{ n: 3 }], 'a later borrow is served');
  t.equal(pool.stats().created, 1, 'on the same connection: nothing was destroyed for it');
});

t.test('with nobody waiting it does nothing; a reason must be an Error', async (t) => {
  const pool = createPool({ connection: server.url, max: 1, logger: silent });
  t.teardown(() => pool.end());
  pool.cancelWaiting(new Error('nobody waits'));
  t.same((await pool.query('SELECT 1 AS n'))[0], [{ n: 1 }]);
  t.throws(() => pool.cancelWaiting('left' as never), { code: InvalidArgumentError.code, field: 'reason' });
});
