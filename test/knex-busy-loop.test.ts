// The busy-loop fault under Knex: the server closes idle connections (wait_timeout=1) while the
// event loop is blocked, so the FIN sits unread. Knex's own mysql2 client (tarn, and a
// synchronous look at mysql2's flags) lends the dead connection; Knex on a fresh pool does not.
import t from 'tap';
import knex from 'knex';
import { TransactionLostError } from '../lib/errors.js';
import { freshKnex, knexConnectionId } from './helpers/knex.js';
import { busyWait, startServer } from './helpers/mariadb.js';

const server = await startServer(t, { waitTimeoutSeconds: 1 });
const noShortTimeout = !server.canRestart && 'needs wait_timeout=1';
const DEAD = /ECONNRESET|PROTOCOL_CONNECTION_LOST|EPIPE/;

await server.query('CREATE TABLE person (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL)');
await server.query("INSERT INTO person (name) VALUES ('ada'), ('grace'), ('edsger')");

t.test("fault is real: Knex's own mysql2 client fails after a busy loop", { skip: noShortTimeout }, async (t) => {
  const db = knex({ client: 'mysql2', connection: server.url, pool: { min: 0, max: 2 } });
  t.teardown(() => db.destroy());
  t.equal((await db('person').select('id')).length, 3);
  busyWait(2_500);
  const err = (await db('person').select('id').then(
    () => undefined,
    (e: unknown) => e,
  )) as (Error & { code?: string }) | undefined;
  t.match(err?.code, DEAD, `Knex's query rejects with the dead socket's error (${err?.code}: ${err?.message})`);
});

t.test('Knex on a fresh pool: no error after a busy loop past wait_timeout', { skip: noShortTimeout }, async (t) => {
  const { pool, db, log } = freshKnex(t, server.url);
  const first = await knexConnectionId(db);
  busyWait(2_500);
  t.same(await db('person').pluck('name').orderBy('id'), ['ada', 'grace', 'edsger']);
  const evicted = log.find('connection evicted');
  t.equal(evicted.length, 1, 'the dead connection was found at the borrow');
  t.equal(evicted[0]?.connId, first);
  t.equal(evicted[0]?.reason, 'pingFailed');
  t.equal(pool.stats().pingFailures, 1);
  t.equal(pool.stats().borrowed, 0);
});

t.test('a transaction and a stream started after a busy loop run on checked connections', { skip: noShortTimeout }, async (t) => {
  const { pool, db } = freshKnex(t, server.url);
  const first = await knexConnectionId(db);
  busyWait(2_500);
  const inTrx = await db.transaction(async (trx) => {
    await trx('person').where({ id: 1 }).update({ name: 'ada' });
    return knexConnectionId(trx);
  });
  t.not(inTrx, first, 'BEGIN went to a new connection');
  busyWait(2_500);
  const names: string[] = [];
  for await (const row of db('person').select('name').orderBy('id').stream()) names.push(row.name);
  t.same(names, ['ada', 'grace', 'edsger'], 'the stream was checked before it started');
  t.equal(pool.stats().pingFailures, 2);
});

t.test('inside a transaction each statement is checked: a lost one rejects with TransactionLostError', { skip: noShortTimeout }, async (t) => {
  const { pool, db } = freshKnex(t, server.url);
  const outcome = await db
    .transaction(async (trx) => {
      await trx('person').insert({ name: 'lost' });
      busyWait(2_500);
      await trx('person').select('id');
    })
    .then(
      () => undefined,
      (err: unknown) => err,
    );
  t.ok(outcome instanceof TransactionLostError, `rejects with TransactionLostError (${String(outcome)})`);
  t.equal((outcome as TransactionLostError).code, 'ERR_FRESH_POOL_TRANSACTION_LOST');
  t.same(await db('person').where({ name: 'lost' }), [], 'the server rolled it back; nothing was retried');
  t.equal(pool.stats().borrowed, 0);
});

t.test('outside a transaction, a connection held across a busy loop is replaced before the statement', { skip: noShortTimeout }, async (t) => {
  const { db, log } = freshKnex(t, server.url);
  const conn = await db.client.acquireConnection();
  try {
    const [[before]] = await db.raw('SELECT CONNECTION_ID() AS id').connection(conn);
    busyWait(2_500);
    const [[after]] = await db.raw('SELECT CONNECTION_ID() AS id').connection(conn);
    t.not(after.id, before.id, 'replaced, unseen by Knex');
    t.equal(log.find('connection replaced before a statement').length, 1);
  } finally {
    await db.client.releaseConnection(conn);
  }
});
