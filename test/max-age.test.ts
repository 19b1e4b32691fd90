// maxAge: a connection older than its (jittered) limit is replaced when next borrowed, with
// no round trip; one used within its limit is kept. Each connection gets its own limit.
import t from 'tap';
import { createPool, DEFAULTS, type FreshPool } from '../lib/index.js';
import { jitteredMaxAgeMs } from '../lib/decisions.js';
import { captureLog } from './helpers/log.js';
import { sleep, startServer } from './helpers/mariadb.js';

const server = await startServer(t, {});

async function connectionId(pool: FreshPool): Promise<number> {
  return pool.withConnection(async (conn) => (await conn.query<any[]>('SELECT CONNECTION_ID() AS id'))[0][0].id as number);
}

t.test('a connection past maxAge is replaced on borrow, without a ping', async (t) => {
  const log = captureLog();
  const pool = createPool({ connection: server.url, max: 1, maxAge: 300, connWaitAge: 100, logger: log.logger });
  t.teardown(() => pool.end());

  const firstId = await connectionId(pool);
  const pingsBefore = pool.stats().pings;
  await sleep(400);
  const secondId = await connectionId(pool);

  t.not(secondId, firstId, 'a new connection after maxAge');
  const evictions = log.find('connection evicted');
  t.equal(evictions.length, 1, 'exactly one eviction');
  const ev = evictions[0]!;
  t.equal(ev.reason, 'maxAge');
  t.equal(ev.connId, firstId, 'the old connection was the one evicted');
  t.ok((ev.ageMs as number) >= 300 * (1 - DEFAULTS.maxAgeJitter), `ageMs ${ev.ageMs} >= the shortest jittered maxAge`);
  t.equal(ev.level, 20, 'a routine eviction is logged at debug');

  // The old connection had been idle 400 ms (> connWaitAge 100) yet was not pinged: its age
  // alone condemned it. The replacement, fresh from connect, was not pinged either.
  const s = pool.stats();
  t.equal(s.pings, pingsBefore, 'no ping sent for the maxAge replacement');
  t.equal(log.find('idle connection pinged').length, 0, 'no ping logged');
  t.same(s.destroyed, { maxAge: 1 });
  t.equal(s.created, 2);

  // The server saw the old one go: it no longer exists there.
  const rows = await server.query<Array<{ ID: number }>>('SELECT ID FROM information_schema.PROCESSLIST WHERE ID = ?', [firstId]);
  t.same(rows, [], 'the evicted connection was closed on the server');
});

t.test('a connection used within maxAge keeps its id (idle pings do not replace it)', async (t) => {
  const log = captureLog();
  const maxAge = 1_000;
  const pool = createPool({ connection: server.url, max: 1, maxAge, connWaitAge: 100, logger: log.logger });
  t.teardown(() => pool.end());

  const created = Date.now();
  const firstId = await connectionId(pool);
  const ids: number[] = [];
  // Borrow a few times, some after idling past connWaitAge (so pinged), all well within maxAge.
  for (const pause of [10, 150, 10, 150]) {
    await sleep(pause);
    ids.push(await connectionId(pool));
  }
  const elapsed = Date.now() - created;
  t.ok(elapsed < maxAge * (1 - DEFAULTS.maxAgeJitter), `all borrows happened within maxAge (${elapsed} ms)`);
  t.same(ids, ids.map(() => firstId), 'same connection every time');
  t.equal(log.find('connection evicted').length, 0, 'nothing evicted');
  t.ok(pool.stats().pings >= 2, 'the borrows after idling were pinged, not replaced');

  // ...and past its limit the same pool does replace it: the bracket is real.
  await sleep(maxAge - (Date.now() - created) + 50);
  t.not(await connectionId(pool), firstId, 'replaced once older than maxAge');
  t.equal(log.find('connection evicted')[0]?.reason, 'maxAge');
});

t.test('jitter: jitteredMaxAgeMs', async (t) => {
  t.equal(jitteredMaxAgeMs(1_000_000, 0), 1_000_000, 'random 0: the full maxAge');
  t.equal(jitteredMaxAgeMs(1_000_000, 0.5), 987_500, 'random 0.5: half the jitter off');
  const shortest = jitteredMaxAgeMs(1_000_000, 0.999_999);
  t.ok(shortest >= 1_000_000 * (1 - DEFAULTS.maxAgeJitter) && shortest < 975_001, `random ~1: 2.5 % off (${shortest})`);
  t.equal(jitteredMaxAgeMs(0, 0.7), 0, 'maxAge 0 (no limit) stays 0');
  t.not(jitteredMaxAgeMs(30 * 60_000, 0.1), jitteredMaxAgeMs(30 * 60_000, 0.2), 'different draws, different lifetimes');
  const bad: number[] = [];
  let last = Infinity;
  for (let i = 0; i < 100; i++) {
    const v = jitteredMaxAgeMs(60_000, i / 100);
    if (!(v <= last && v <= 60_000 && v >= 60_000 * 0.975)) bad.push(i / 100);
    last = v;
  }
  t.same(bad, [], 'non-increasing in the draw and always within [97.5 %, 100 %] of maxAge');
});

// The pool draws each connection's limit from Math.random when it is made. With the draws and
// the clock under the test's control, two connections made together expire at different ages.
t.test('jitter: two connections made together get different lifetimes', async (t) => {
  const log = captureLog();
  // Long enough that the 2.5 % jitter (1 000 ms) dwarfs the real time the test takes on a busy machine.
  const maxAge = 40_000;
  const pool = createPool({ connection: server.url, max: 2, maxAge, logger: log.logger });
  t.teardown(() => pool.end());

  const realRandom = Math.random;
  const realNow = Date.now;
  let draw = 0;
  let offset = 0;
  t.teardown(() => {
    Math.random = realRandom;
    Date.now = realNow;
  });
  Math.random = () => draw;
  Date.now = () => realNow() + offset;

  // A gets the full 40 000 ms (draw 0); B, made while A is held, gets 39 000 (draw ~1).
  let idA = 0;
  let idB = 0;
  await pool.withConnection(async (a) => {
    idA = (await a.query<any[]>('SELECT CONNECTION_ID() AS id'))[0][0].id;
    draw = 0.999_999;
    idB = await connectionId(pool);
  });
  t.not(idA, idB);
  Math.random = realRandom;

  // Both idle now; 39 500 ms later (fake clock) B is past its limit and A is not.
  offset = 39_500;
  // Hold both at once so each borrow gets its own connection.
  const heldIds = await Promise.all([0, 1].map(() => pool.withConnection(async (c) => {
    const [rows] = await c.query<any[]>('SELECT CONNECTION_ID() AS id, SLEEP(0.05)');
    return rows[0].id as number;
  })));
  const evicted = log.find('connection evicted');
  t.same(evicted.map((l) => [l.connId, l.reason]), [[idB, 'maxAge']], 'only B (the shorter lifetime) was evicted at 39 500 ms');
  t.ok(heldIds.includes(idA), 'A was still lent at 39 500 ms');
  t.notOk(heldIds.includes(idB), 'B was not');

  offset = 41_000;
  await Promise.all([0, 1].map(() => pool.withConnection((c) => c.query('SELECT SLEEP(0.05)'))));
  t.ok(log.find('connection evicted').some((l) => l.connId === idA && l.reason === 'maxAge'), 'A expires after its own, longer, limit');
});
