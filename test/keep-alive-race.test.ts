// A borrow during a keep-alive ping (defect 12). With keepAliveInterval on, housekeeping pings
// idle connections; the pinged connection stays in the idle set, so a borrow could take it
// while the ping was in flight. When the flow had been silently dropped (NAT, firewall, load
// balancer), the ping's timeout then destroyed the socket under the borrower's statement:
// PROTOCOL_CONNECTION_LOST, "Connection closed by the pool". A connection being pinged must
// not be lent before its ping settles: a borrow waits for it, and a failed ping sends the
// borrow to another connection.
//
// No plain-mysql2 comparison here: mysql2's pool has no keep-alive ping, so it cannot race one
// (its own failure on a dropped flow, a hang, is shown in test/idle-management.test.ts).
import t from 'tap';
import { createPool, type FreshPool } from '../lib/index.js';
import { startDelayRelay } from './helpers/delay-relay.js';
import { captureLog } from './helpers/log.js';
import { sleep, startServer } from './helpers/mariadb.js';
import { startRelay } from './helpers/relay.js';
import { throughRelay, within } from './helpers/settle.js';
import { ID_SQL, type IdRow } from './helpers/sql.js';

const server = await startServer(t);

const KEEP_ALIVE_MS = 100;
const PING_TIMEOUT_MS = 1_000;
const HANG_MS = 5_000; // a borrow not settled by then is hung: a hang detector, not a speed check

/** Waits, with the loop free, until the pool has sent a ping more than `before`; false after `timeoutMs`. */
async function pingSent(pool: FreshPool, before: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pool.stats().pings <= before) {
    if (Date.now() > deadline) return false;
    await sleep(2);
  }
  return true;
}

// How far into the keep-alive ping the borrow comes: at its start, and well into it (with
// room to spare before its timeout, so a slow machine still borrows while it is in flight).
for (const borrowAfterMs of [0, PING_TIMEOUT_MS / 2]) {
  t.test(`silently dropped flow: a borrow ${borrowAfterMs} ms into a keep-alive ping gets a working connection`, async (t) => {
    const relay = await startRelay(server.host, server.port);
    const log = captureLog();
    const pool = createPool({
      connection: throughRelay(server.url, relay),
      max: 1,
      keepAliveInterval: KEEP_ALIVE_MS,
      pingTimeout: PING_TIMEOUT_MS,
      logger: log.logger,
    });
    t.teardown(async () => {
      await pool.end();
      await relay.close();
    });
    const [first] = await pool.query<IdRow[]>(ID_SQL);
    const firstId = first[0]!.id;

    // The flow goes silent: the keep-alive ping that comes next is never answered.
    relay.blackhole();
    const pingsBefore = pool.stats().pings;
    t.ok(await pingSent(pool, pingsBefore, KEEP_ALIVE_MS * 20), 'a keep-alive ping is in flight');
    if (borrowAfterMs > 0) await sleep(borrowAfterMs);
    t.equal(pool.stats().pingFailures, 0, 'the ping has not settled yet: the borrow races it');

    const outcome = await within(pool.query<IdRow[]>(ID_SQL), HANG_MS);
    if (outcome.status === 'rejected') {
      const err = outcome.reason as { code?: unknown; message?: unknown };
      t.comment(`the borrow failed: ${String(err.code)}: ${String(err.message)}`);
    }
    t.equal(outcome.status, 'fulfilled', 'the statement succeeded: the ping timeout did not close it under the user');
    if (outcome.status !== 'fulfilled') return;
    t.not(outcome.value[0][0]?.id, firstId, 'on a new connection, not the silent one');
    t.equal(relay.pairs.length, 2, 'made through the relay, which forwards new flows normally');
    t.same(pool.stats().destroyed, { pingTimeout: 1 }, 'the silent connection was dropped for its ping timeout');
    t.equal(log.find('connection evicted').filter((l) => l.connId === firstId).length, 1, 'evicted once');
  });
}

// Control: the wait must not cost a live connection. Server-to-client bytes are delayed so the
// keep-alive ping is reliably in flight when the borrow comes; the ping answers, and the
// borrow gets the same connection, no new one.
t.test('live connection: a borrow during a keep-alive ping gets the same connection once the ping answers', async (t) => {
  const relay = await startDelayRelay(server.host, server.port, 150);
  const pool = createPool({
    connection: throughRelay(server.url, relay),
    max: 1,
    keepAliveInterval: KEEP_ALIVE_MS,
    pingTimeout: 2_000,
    logger: captureLog().logger,
  });
  t.teardown(async () => {
    await pool.end();
    await relay.close();
  });
  const [first] = await pool.query<IdRow[]>(ID_SQL);
  const pingsBefore = pool.stats().pings;
  t.ok(await pingSent(pool, pingsBefore, KEEP_ALIVE_MS * 20), 'a keep-alive ping is in flight');
  const outcome = await within(pool.query<IdRow[]>(ID_SQL), HANG_MS);
  t.equal(outcome.status, 'fulfilled', 'the statement succeeded');
  if (outcome.status !== 'fulfilled') return;
  t.equal(outcome.value[0][0]?.id, first[0]?.id, 'on the same connection');
  const stats = pool.stats();
  t.equal(stats.created, 1, 'no new connection');
  t.equal(stats.pingFailures, 0, 'the ping answered');
  t.same(stats.destroyed, {}, 'nothing evicted');
});
