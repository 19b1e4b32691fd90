// Idle management (issue #5, point 6). Connections beyond `min` that sat idle for
// `idleTimeout` are closed, on the server too. `keepAliveInterval` pings idle connections so a
// middlebox that forgets idle flows (NAT, firewall, load balancer) never sees one idle long
// enough: shown against a relay that silently drops any flow idle longer than X ms, where a
// plain mysql2 pool hangs, and where our pool without keep-alive hangs too unless a ping is
// due (idle > connWaitAge), in which case it recovers after pingTimeout on a new connection.
import t from 'tap';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { ConfigError, createPool, type FreshPoolConfig } from '../lib/index.js';
import { startIdleRelay } from './helpers/idle-relay.js';
import { captureLog } from './helpers/log.js';
import { sleep, startServer } from './helpers/mariadb.js';
import { ID_SQL, openConnections, type IdRow } from './helpers/sql.js';
import { throughRelay, within } from './helpers/settle.js';

const server = await startServer(t);

/** Waits, with the loop free, until `condition` holds; false if it has not within `timeoutMs`. */
async function until(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

/** The connection ids the server has open now. */
async function serverIds(): Promise<Set<number>> {
  const rows = await server.query<Array<RowDataPacket & { ID: number }>>('SELECT ID FROM information_schema.PROCESSLIST');
  return new Set(rows.map((r) => Number(r.ID)));
}


t.test('idleTimeout: idle connections beyond min are closed', async (t) => {
  t.test('idleTimeout 300, min 1, max 4: four connections shrink to one', async (t) => {
    const log = captureLog();
    const pool = createPool({ connection: server.url, min: 1, max: 4, idleTimeout: 300, logger: log.logger });
    t.teardown(() => pool.end());
    // Idle time counts from each connection's return, not from when this test looks next.
    let idleSince = 0;
    pool.on('release', () => (idleSince = Date.now()));
    const ids = await openConnections(pool, 4);
    t.equal(new Set(ids).size, 4, 'four connections');
    t.equal(pool.stats().size, 4);
    const onServer = await serverIds();
    t.ok(ids.every((id) => onServer.has(id)), 'all four open on the server');

    t.ok(await until(() => pool.stats().size === 1, 1_500), 'the pool shrank to min');
    const shrunkAfterMs = Date.now() - idleSince;
    t.ok(shrunkAfterMs >= 300, `not before idleTimeout (${shrunkAfterMs} ms)`);
    await sleep(1_000 - shrunkAfterMs > 0 ? 1_000 - shrunkAfterMs : 0); // about 1 s idle in all
    const stats = pool.stats();
    t.equal(stats.size, 1, 'min kept after 1 s idle');
    t.equal(stats.idle, 1);
    t.same(stats.destroyed, { idleTimeout: 3 });
    const evictions = log.find('connection evicted');
    t.equal(evictions.length, 3, 'three evictions logged');
    for (const e of evictions) {
      t.equal(e.reason, 'idleTimeout');
      t.equal(e.level, 20, 'routine: debug');
      t.ok((e.idleMs as number) > 300, `idle ${e.idleMs as number} ms when closed`);
    }
    const evicted = evictions.map((e) => e.connId as number);
    const kept = ids.filter((id) => !evicted.includes(id));
    t.equal(kept.length, 1, 'one of the four kept');
    t.ok(
      await until(async () => {
        const open = await serverIds();
        return evicted.every((id) => !open.has(id));
      }, 1_000),
      'the closed connections are gone from the PROCESSLIST',
    );
    t.ok((await serverIds()).has(kept[0]!), 'the kept one is still open on the server');
    t.equal(stats.created, 4, 'no connection was made to replace them');
    const [rows] = await pool.query<IdRow[]>(ID_SQL);
    t.equal(rows[0]?.id, kept[0], 'the kept connection is the one lent next');
  });

  // keepAliveInterval must be below idleTimeout, so a keep-alive ping always comes first. If
  // the ping counted as use, an idle connection would never reach idleTimeout: turning
  // keep-alive on would turn idleTimeout off. (HikariCP: keepalive does not reset idleness.)
  // Fails today: FreshPool.ping() sets entry.lastAccessAt on success, keepAlive() uses it, and
  // idleAction() measures idleTimeout from lastAccessAt, so every keep-alive ping restarts it.
  t.test('idleTimeout 600 with keepAliveInterval 150: connections beyond min still close', async (t) => {
    const log = captureLog();
    const pool = createPool({ connection: server.url, min: 1, max: 4, idleTimeout: 600, keepAliveInterval: 150, logger: log.logger });
    t.teardown(() => pool.end());
    await openConnections(pool, 4);
    const shrank = await until(() => pool.stats().size === 1, 1_800);
    const stats = pool.stats();
    t.comment(`after 1.8 s idle: size ${stats.size}, keep-alive pings ${stats.pings}, destroyed ${JSON.stringify(stats.destroyed)}`);
    t.ok(shrank, 'the pool shrank to min within 3 x idleTimeout');
    t.same(stats.destroyed, { idleTimeout: 3 });
    t.ok(stats.pings > 0, 'the keep-alive pinged meanwhile');
  });

  t.test('idleTimeout 0: idle connections stay open', async (t) => {
    const log = captureLog();
    const pool = createPool({ connection: server.url, min: 1, max: 4, idleTimeout: 0, logger: log.logger });
    t.teardown(() => pool.end());
    const ids = await openConnections(pool, 4);
    await sleep(1_000);
    const stats = pool.stats();
    t.equal(stats.size, 4, 'all four kept');
    t.equal(stats.idle, 4);
    t.same(stats.destroyed, {});
    t.equal(log.find('connection evicted').length, 0, 'no eviction');
    const open = await serverIds();
    t.ok(ids.every((id) => open.has(id)), 'all four still open on the server');
  });
});

// A middlebox that silently forgets a flow idle longer than IDLE_DROP_MS.
const IDLE_DROP_MS = 800;
const IDLE_MS = 1_300; // how long each pool sits idle: past IDLE_DROP_MS
const HANG_MS = 3_000; // a query not settled within this is hung


t.test('keepAliveInterval against a middlebox that silently drops idle flows', async (t) => {
  t.test('relay: a pair idle past its limit is dropped, a busy one is not', async (t) => {
    const relay = await startIdleRelay(server.host, server.port, 200);
    t.teardown(() => relay.close());
    const idle = await mysql.createConnection(throughRelay(server.url, relay));
    idle.on('error', () => {});
    const busy = await mysql.createConnection(throughRelay(server.url, relay));
    t.teardown(() => {
      idle.destroy();
      busy.destroy();
    });
    for (let i = 0; i < 8; i++) {
      await busy.query('SELECT 1');
      await sleep(50);
    }
    t.equal(relay.pairs[1]?.droppedAt, undefined, 'a pair with traffic every 50 ms is kept');
    t.not(relay.pairs[0]?.droppedAt, undefined, 'the idle pair was dropped');
    t.equal(relay.pairs[0]?.client.destroyed, false, 'without closing anything');
    t.same(await within(idle.query('SELECT 1'), 300), { status: 'pending' }, 'the dropped pair gets no answer');
  });

  t.test(`fault is real: a mysql2 pool idle ${IDLE_MS} ms behind a ${IDLE_DROP_MS} ms idle drop hangs`, async (t) => {
    const relay = await startIdleRelay(server.host, server.port, IDLE_DROP_MS);
    const plain = mysql.createPool({ uri: throughRelay(server.url, relay), connectionLimit: 1 });
    let hung: Promise<unknown> = Promise.resolve();
    t.teardown(async () => {
      await relay.close(); // destroys the silent socket, which fails the hung query
      await hung;
      await plain.end();
    });
    await plain.query('SELECT 1');
    await sleep(IDLE_MS);
    t.not(relay.pairs[0]?.droppedAt, undefined, 'the middlebox dropped the idle flow');
    const query = plain.query('SELECT 1');
    hung = query.catch(() => {});
    t.same(await within(query, HANG_MS), { status: 'pending' }, `no answer and no error after ${HANG_MS} ms`);
  });

  t.test(`our pool, keepAliveInterval 250 (< ${IDLE_DROP_MS}), connWaitAge 60000: the flow is kept alive`, async (t) => {
    const relay = await startIdleRelay(server.host, server.port, IDLE_DROP_MS);
    const log = captureLog();
    const pool = createPool({ connection: throughRelay(server.url, relay), max: 1, keepAliveInterval: 250, connWaitAge: 60_000, pingTimeout: 500, logger: log.logger });
    t.teardown(async () => {
      await pool.end();
      await relay.close();
    });
    const [first] = await pool.query<IdRow[]>(ID_SQL);
    const pingsBefore = pool.stats().pings;
    await sleep(IDLE_MS);
    t.equal(relay.pairs[0]?.droppedAt, undefined, 'the middlebox never saw the flow idle long enough');
    const started = Date.now();
    const outcome = await within(pool.query<IdRow[]>(ID_SQL), HANG_MS);
    t.equal(outcome.status, 'fulfilled', 'the query succeeded');
    if (outcome.status !== 'fulfilled') return;
    const tookMs = Date.now() - started;
    t.equal(outcome.value[0][0]?.id, first[0]?.id, 'on the SAME connection');
    t.ok(tookMs < 500, `at once (${tookMs} ms), no ping timeout waited`);
    const stats = pool.stats();
    const keepAlivePings = stats.pings - pingsBefore;
    t.ok(keepAlivePings >= Math.floor(IDLE_MS / IDLE_DROP_MS), `keep-alive pings sent while idle: ${keepAlivePings}`);
    t.equal(stats.pingFailures, 0);
    t.equal(stats.created, 1, 'no new connection');
    t.equal(relay.pairs.length, 1);
    t.equal(log.find('connection pinged').length, stats.pings, 'each ping logged (debug)');
    t.comment(`keepAliveInterval 250: ${keepAlivePings} pings in ${IDLE_MS} ms idle; the query took ${tookMs} ms on connection ${first[0]?.id}`);
  });

  t.test('our pool without keep-alive, connWaitAge 60000: no ping is due, so it hangs too', async (t) => {
    const relay = await startIdleRelay(server.host, server.port, IDLE_DROP_MS);
    const pool = createPool({ connection: throughRelay(server.url, relay), max: 1, connWaitAge: 60_000, pingTimeout: 500, logger: captureLog().logger });
    let hung: Promise<unknown> = Promise.resolve();
    t.teardown(async () => {
      await relay.close(); // destroys the silent socket, which fails the hung query
      await hung;
      await pool.end();
    });
    await pool.query('SELECT 1');
    const pingsBefore = pool.stats().pings;
    await sleep(IDLE_MS);
    t.not(relay.pairs[0]?.droppedAt, undefined, 'the middlebox dropped the idle flow');
    const query = pool.query('SELECT 1');
    hung = query.catch(() => {});
    // Idle 1.3 s < connWaitAge 60 s: lent without a ping, and mysql2 has no read timeout.
    t.same(await within(query, HANG_MS), { status: 'pending' }, `no answer and no error after ${HANG_MS} ms`);
    t.equal(pool.stats().pings, pingsBefore, 'no ping: the connection was lent as used recently');
  });

  t.test('our pool without keep-alive, connWaitAge 500 (< the drop): recovers after pingTimeout, on a new connection', async (t) => {
    const pingTimeout = 500;
    const relay = await startIdleRelay(server.host, server.port, IDLE_DROP_MS);
    const log = captureLog();
    const pool = createPool({ connection: throughRelay(server.url, relay), max: 1, connWaitAge: 500, pingTimeout, logger: log.logger });
    t.teardown(async () => {
      await pool.end();
      await relay.close();
    });
    const [first] = await pool.query<IdRow[]>(ID_SQL);
    await sleep(IDLE_MS);
    t.not(relay.pairs[0]?.droppedAt, undefined, 'the middlebox dropped the idle flow');
    const started = Date.now();
    const outcome = await within(pool.query<IdRow[]>(ID_SQL), pingTimeout + HANG_MS);
    const tookMs = Date.now() - started;
    t.equal(outcome.status, 'fulfilled', 'the query succeeded');
    if (outcome.status !== 'fulfilled') return;
    t.not(outcome.value[0][0]?.id, first[0]?.id, 'on a new connection');
    t.ok(tookMs >= pingTimeout - 20, `after waiting out pingTimeout (${tookMs} ms)`);
    t.same(pool.stats().destroyed, { pingTimeout: 1 });
    t.equal(relay.pairs.length, 2);
    t.comment(`without keep-alive but with a ping due: the query took ${tookMs} ms (pingTimeout ${pingTimeout}) and ran on a new connection`);
  });
});

t.test('config: keepAliveInterval must be below idleTimeout and maxAge', async (t) => {
  const url = 'mysql://root@127.0.0.1:1/test'; // never contacted
  const rejects = (config: Omit<FreshPoolConfig, 'connection'>, value: number, mentions: RegExp) => {
    let caught: unknown;
    try {
      createPool({ connection: url, ...config });
    } catch (err) {
      caught = err;
    }
    t.ok(caught instanceof ConfigError, `${JSON.stringify(config)}: ConfigError`);
    t.equal((caught as ConfigError).field, 'keepAliveInterval');
    t.equal((caught as ConfigError).value, value);
    t.match((caught as ConfigError).message, mentions);
  };
  rejects({ keepAliveInterval: 1_000, idleTimeout: 1_000 }, 1_000, /idleTimeout/);
  rejects({ keepAliveInterval: 2_000, idleTimeout: 1_000 }, 2_000, /idleTimeout/);
  rejects({ keepAliveInterval: 5_000, maxAge: 5_000, idleTimeout: 0 }, 5_000, /maxAge/);
  rejects({ keepAliveInterval: 6_000, maxAge: 5_000, idleTimeout: 0 }, 6_000, /maxAge/);
  rejects({ keepAliveInterval: 700_000 }, 700_000, /idleTimeout/); // the default idleTimeout is 10 min

  const accepted: Array<Omit<FreshPoolConfig, 'connection'>> = [
    { keepAliveInterval: 999, idleTimeout: 1_000 },
    { keepAliveInterval: 4_999, maxAge: 5_000, idleTimeout: 0 },
    { keepAliveInterval: 10_000_000, maxAge: 0, idleTimeout: 0 }, // both off: no upper limit
    { keepAliveInterval: 0, idleTimeout: 1 },
  ];
  for (const config of accepted) {
    const pool = createPool({ connection: url, ...config });
    t.pass(`${JSON.stringify(config)} accepted`);
    await pool.end();
  }
});
