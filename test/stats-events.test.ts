// pool.stats() after a known sequence of borrows, a server-side KILL and a validation ping;
// the same snapshot in AcquireTimeoutError; and the typed events ('create', 'acquire',
// 'release', 'evict', 'error'), each checked against what the server says.
import { once } from 'node:events';
import t from 'tap';
import { AcquireTimeoutError, createPool, type AcquireEvent, type ConnectionEvent, type EvictEvent, type FreshPool, type PoolConnection } from '../lib/index.js';
import { runChild } from './helpers/child.js';
import { closedPort, startDelayRelay } from './helpers/delay-relay.js';
import { captureLog } from './helpers/log.js';
import { sleep, startServer } from './helpers/mariadb.js';

const server = await startServer(t);

const STATS_KEYS = [
  'size', 'idle', 'borrowed', 'waiting', 'max', 'min', 'created', 'destroyed', 'pings', 'pingFailures', 'connectAttempts',
  'connectFailures', 'loopStalls', 'acquires', 'acquireWaitMsTotal', 'acquireWaitMsMax', 'validationMsTotal', 'connWaitAgeMs',
].sort();

async function serverId(conn: PoolConnection): Promise<number> {
  const [rows] = await conn.query<any[]>('SELECT CONNECTION_ID() AS id');
  return Number(rows[0].id);
}

/** Every event of `pool`, in order. */
function recordEvents(pool: FreshPool) {
  const seen = {
    create: [] as ConnectionEvent[],
    acquire: [] as AcquireEvent[],
    release: [] as ConnectionEvent[],
    evict: [] as EvictEvent[],
    error: [] as Error[],
    order: [] as string[],
  };
  pool.on('create', (e) => (seen.create.push(e), seen.order.push(`create ${e.connId}`)));
  pool.on('acquire', (e) => (seen.acquire.push(e), seen.order.push(`acquire ${e.connId}`)));
  pool.on('release', (e) => (seen.release.push(e), seen.order.push(`release ${e.connId}`)));
  pool.on('evict', (e) => (seen.evict.push(e), seen.order.push(`evict ${e.connId} ${e.reason}`)));
  pool.on('error', (e) => (seen.error.push(e), seen.order.push('error')));
  return seen;
}

const evictSoon = (pool: FreshPool, ms = 3_000) => once(pool, 'evict', { signal: AbortSignal.timeout(ms) }) as Promise<[EvictEvent]>;

t.test('stats and events after 3 borrows, a KILL and a ping', async (t) => {
  // Every server reply is delayed 15 ms, so a validation ping takes a measurable time.
  const DELAY = 15;
  const relay = await startDelayRelay(server.host, server.port, DELAY);
  t.teardown(() => relay.close());
  const pool = createPool({
    connection: `mysql://root@127.0.0.1:${relay.port}/test`,
    name: 'stats',
    max: 3,
    connWaitAge: 100,
    acquireTimeout: 5_000,
    logger: captureLog().logger,
  });
  t.teardown(() => pool.end());
  const seen = recordEvents(pool);

  const fresh = pool.stats();
  t.same(Object.keys(fresh).sort(), STATS_KEYS, 'every documented field, nothing else');
  t.match(fresh, { size: 0, idle: 0, borrowed: 0, waiting: 0, max: 3, min: 0, created: 0, destroyed: {}, pings: 0, acquires: 0 });
  t.equal(fresh.acquireWaitMsTotal, 0);
  t.equal(fresh.acquireWaitMsMax, 0);

  // 1. Three borrows held at once: three connections.
  const borrowIds: number[] = [];
  let arrived = 0;
  let allIn!: () => void;
  const together = new Promise<void>((resolve) => (allIn = resolve));
  let during: ReturnType<FreshPool['stats']> | undefined;
  const ids = await Promise.all(
    [0, 1, 2].map(() =>
      pool.withConnection(async (conn) => {
        const id = await serverId(conn);
        borrowIds.push(id);
        if (++arrived === 3) {
          during = pool.stats();
          allIn();
        }
        await together;
        return id;
      }),
    ),
  );
  t.equal(new Set(ids).size, 3, 'three distinct server connections');
  t.match(during, { size: 3, borrowed: 3, idle: 0, waiting: 0 }, 'while all three are lent');
  const afterBorrows = pool.stats();
  t.match(afterBorrows, { size: 3, idle: 3, borrowed: 0, created: 3, acquires: 3, pings: 0, connectAttempts: 3, connectFailures: 0 });
  t.same(afterBorrows.destroyed, {});

  // 2. The server kills one idle connection: the pool drops it as soon as the close arrives.
  const killed = ids[0]!;
  const evicted = evictSoon(pool);
  await server.query(`KILL CONNECTION ${killed}`);
  const [evict] = await evicted;
  t.match(evict, { pool: 'stats', connId: killed, reason: 'closedByServer' }, 'evict: the killed connection, closed by the server');
  t.type(evict.ageMs, 'number');
  t.type(evict.idleMs, 'number');
  t.ok(evict.idleMs >= 0 && evict.ageMs >= evict.idleMs, `ageMs ${evict.ageMs} >= idleMs ${evict.idleMs} >= 0`);
  const afterKill = pool.stats();
  t.match(afterKill, { size: 2, idle: 2, created: 3, pings: 0 });
  t.same(afterKill.destroyed, { closedByServer: 1 }, 'destroyed by reason');

  // 3. Idle past connWaitAge: the next borrow pings its connection first (one ping).
  await sleep(150);
  const pingedId = await pool.withConnection((conn) => serverId(conn));
  t.not(pingedId, killed);
  t.ok(ids.includes(pingedId), 'an existing connection, kept after its ping');

  const s = pool.stats();
  t.match(s, {
    size: 2,
    idle: 2,
    borrowed: 0,
    waiting: 0,
    max: 3,
    min: 0,
    created: 3,
    pings: 1,
    pingFailures: 0,
    connectAttempts: 3,
    connectFailures: 0,
    acquires: 4,
    connWaitAgeMs: 100,
  });
  t.same(s.destroyed, { closedByServer: 1 });
  t.ok(s.acquireWaitMsTotal >= s.acquireWaitMsMax && s.acquireWaitMsMax >= 0, `acquireWaitMsTotal ${s.acquireWaitMsTotal} >= acquireWaitMsMax ${s.acquireWaitMsMax} >= 0`);
  t.ok(s.validationMsTotal > 0, `validationMsTotal ${s.validationMsTotal} > 0 after a ping through a ${DELAY} ms relay`);
  t.ok(s.validationMsTotal >= DELAY - 1, 'at least the relay delay');
  t.ok(s.acquireWaitMsMax >= s.validationMsTotal, 'the pinged borrow waited for its ping');

  // Frozen snapshots, not live views.
  t.ok(Object.isFrozen(s), 'stats() is frozen');
  t.ok(Object.isFrozen(s.destroyed), 'and so is its destroyed map');
  t.throws(() => {
    (s as { size: number }).size = 99;
  }, TypeError);
  t.throws(() => {
    (s.destroyed as Record<string, number>).maxAge = 1;
  }, TypeError);
  t.equal(afterKill.pings, 0, 'an earlier snapshot did not change');
  t.not(pool.stats(), s, 'each call is a new snapshot');
  t.same(JSON.parse(JSON.stringify(pool)), JSON.parse(JSON.stringify(pool.stats())), 'toJSON is the snapshot');

  // Events, against what the server said.
  t.same(seen.create.map((e) => e.connId).sort(), [...ids].sort(), "'create' once per connection, with CONNECTION_ID()");
  t.ok(seen.create.every((e) => e.pool === 'stats'), "'create' carries the pool's name");
  t.same(seen.acquire.map((e) => e.connId).sort(), [...borrowIds, pingedId].sort(), "'acquire' once per borrow, with the lent connection's id");
  t.ok(seen.acquire.every((e) => e.pool === 'stats' && typeof e.waitMs === 'number' && e.waitMs >= 0), "'acquire' carries pool and waitMs");
  t.equal(seen.acquire.reduce((sum, e) => sum + e.waitMs, 0), s.acquireWaitMsTotal, 'the waits add up to acquireWaitMsTotal');
  t.equal(Math.max(...seen.acquire.map((e) => e.waitMs)), s.acquireWaitMsMax, 'the longest is acquireWaitMsMax');
  t.same(seen.release.map((e) => e.connId).sort(), [...borrowIds, pingedId].sort(), "'release' once per borrow");
  t.ok(seen.release.every((e) => e.pool === 'stats'));
  t.equal(seen.evict.length, 1, "one 'evict' so far");
  t.same(seen.error, [], "no 'error'");
  const last = seen.order.slice(-2);
  t.same(last, [`acquire ${pingedId}`, `release ${pingedId}`], "'acquire' then 'release' for the last borrow");

  // end(): the remaining connections are evicted as poolEnded, and the counters say so.
  await pool.end();
  const ended = pool.stats();
  t.same(ended.destroyed, { closedByServer: 1, poolEnded: 2 });
  t.same(seen.evict.slice(1).map((e) => [e.connId, e.reason]).sort(), ids.filter((id) => id !== killed).sort().map((id) => [id, 'poolEnded']));
  t.equal(ended.size, 0, 'size 0 after end()');
  t.equal(ended.borrowed, 0);
  // Regression (fixed): generic-pool's clear() destroys the idle resources without removing them
  // from its available list, so stats().idle still counts the closed connections.
  t.equal(ended.idle, 0, 'idle 0 after end(): no connection is left idle');
});

t.test("'evict' with reason maxAge, with the connection's age", async (t) => {
  const pool = createPool({ connection: server.url, name: 'ages', maxAge: 300, connWaitAge: 50, logger: captureLog().logger });
  t.teardown(() => pool.end());
  const seen = recordEvents(pool);
  const evicted = evictSoon(pool);
  const id = await pool.withConnection((conn) => serverId(conn));
  const [evict] = await evicted; // housekeeping retires it while idle
  t.match(evict, { pool: 'ages', connId: id, reason: 'maxAge' });
  t.ok(evict.ageMs >= 300 * (1 - 0.025) - 1, `ageMs ${evict.ageMs} is past maxAge (less its jitter)`);
  t.ok(evict.idleMs >= 0 && evict.idleMs <= evict.ageMs, `idleMs ${evict.idleMs}`);
  const s = pool.stats();
  t.same(s.destroyed, { maxAge: 1 });
  t.match(s, { size: 0, created: 1, acquires: 1 });
  t.same(seen.order, [`create ${id}`, `acquire ${id}`, `release ${id}`, `evict ${id} maxAge`], 'events in order');
});

t.test('AcquireTimeoutError carries the same stats snapshot', async (t) => {
  const pool = createPool({ connection: server.url, name: 'busy', max: 1, acquireTimeout: 300, logger: captureLog().logger });
  t.teardown(() => pool.end());
  let release!: () => void;
  const holding = pool.withConnection(() => new Promise<void>((resolve) => (release = resolve)));
  while (pool.stats().borrowed === 0) await sleep(5);
  const waiting = pool.withConnection(() => 'never');
  await sleep(20);
  t.equal(pool.stats().waiting, 1, 'stats().waiting counts the queued borrow');
  const err = await waiting.catch((e: unknown) => e);
  t.ok(err instanceof AcquireTimeoutError);
  const stats = (err as AcquireTimeoutError).stats;
  t.same(Object.keys(stats).sort(), STATS_KEYS, 'the same shape as stats()');
  t.ok(Object.isFrozen(stats) && Object.isFrozen(stats.destroyed), 'frozen');
  t.match(stats, { size: 1, borrowed: 1, idle: 0, max: 1, created: 1, acquires: 1 });
  const now = pool.stats();
  for (const key of ['size', 'borrowed', 'idle', 'max', 'min', 'created', 'pings', 'acquires', 'acquireWaitMsTotal', 'acquireWaitMsMax'] as const) {
    t.equal(stats[key], now[key], `${key} equals stats() at the time`);
  }
  release();
  await holding;
});

t.test("'error' on a refused connect, with a listener", async (t) => {
  const port = await closedPort();
  const pool = createPool({ connection: `mysql://root@127.0.0.1:${port}/test`, name: 'refused', acquireTimeout: 500, logger: captureLog().logger });
  t.teardown(() => pool.end());
  const seen = recordEvents(pool);
  const started = Date.now();
  const err = await pool.withConnection(() => 'never').catch((e: unknown) => e);
  t.ok(err instanceof AcquireTimeoutError, 'the borrow times out');
  t.match((err as Error).cause, { code: 'ECONNREFUSED' }, 'with the refusal as cause');
  t.ok(Date.now() - started < 2_000);
  t.ok(seen.error.length >= 1, `'error' emitted (${seen.error.length} times)`);
  t.ok(seen.error.every((e) => e instanceof Error && (e as { code?: string }).code === 'ECONNREFUSED'), "each 'error' is the driver's ECONNREFUSED");
  t.equal(seen.error.length, pool.stats().connectFailures, "one 'error' per failed connect attempt");
  t.same(seen.create, [], "no 'create'");
  t.same(seen.acquire, [], "no 'acquire'");
});

// Run in a child: with no listener, an emitted 'error' would throw; tap's own handlers would
// hide a crash inside this process.
t.test("no 'error' listener: a refused connect does not crash the process", async (t) => {
  const port = await closedPort();
  // The limit counts from the child's loading, not Node's start-up; the scenario needs ~1 s.
  const r = await runChild('./refused-no-listener.ts', [String(port)], { runMs: 20_000 });
  t.equal(r.timedOut, false, `exited by itself (${r.timedOut ? `killed at the ${r.killedBy} limit` : `${r.runMs} ms after loading`})`);
  t.equal(r.exitCode, 0, 'exit code 0');
  const lines = r.lines as Array<Record<string, unknown>>;
  t.same(lines.find((l) => 'errorListeners' in l), { errorListeners: 0 });
  t.same(lines.find((l) => 'borrow' in l), { borrow: 'rejected', name: 'AcquireTimeoutError', code: 'ERR_FRESH_POOL_ACQUIRE_TIMEOUT', causeCode: 'ECONNREFUSED' });
  const counts = lines.find((l) => 'connectFailures' in l) as { connectAttempts: number; connectFailures: number } | undefined;
  t.ok(counts && counts.connectFailures >= 1 && counts.connectFailures === counts.connectAttempts, 'connects failed and were counted');
  t.same(lines.find((l) => 'end' in l), { end: 'resolved' });
  if (r.stderr) t.comment(r.stderr.slice(0, 2_000));
});
