// OpenTelemetry traces: statements run through the pool appear as instrumentation-mysql2 spans
// exactly as on a plain mysql2 connection (with the library loading mysql2 from ESM), and
// registerPoolTracing adds to the caller's active span what only the pool knows: a borrow that
// waited, a ping before use, a dead connection dropped at a borrow or replaced before a statement.
//
// The tracing setup is imported first: the instrumentation must be in place before anything
// loads mysql2, as in an application.
import { childrenOf, exporter, inSpan, MYSQL2_SCOPE, mysql2LoadedBeforeSetup } from './helpers/otel-tracing.js';
import { trace, type Attributes, type SpanContext } from '@opentelemetry/api';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace-base';
import t from 'tap';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import type { PingEvent } from '../lib/events.js';
import { createCluster, createPool, InvalidArgumentError, type FreshPool } from '../lib/index.js';
import { registerPoolTracing } from '../lib/opentelemetry/index.js';
import { busyWait, sleep, startServer } from './helpers/mariadb.js';
import { until } from './helpers/settle.js';

const server = await startServer(t);
const silent = { debug() {}, info() {}, warn() {}, error() {} };

type IdRow = RowDataPacket & { id: number };
const connId = async (conn: Connection): Promise<number> => Number((await conn.query<IdRow[]>('SELECT CONNECTION_ID() AS id'))[0][0]!.id);

/** A pool for one scenario, ended at teardown, with registerPoolTracing on it. */
function tracedPool(t: { teardown(fn: () => unknown): void }, name: string, extra: Record<string, unknown> = {}): FreshPool {
  const pool = createPool({ connection: server.url, name, max: 1, logger: silent, ...extra });
  const unregister = registerPoolTracing(pool);
  t.teardown(() => {
    unregister();
    return pool.end();
  });
  return pool;
}

/** What must match between a statement's span through the pool and on a plain connection. */
function shape(s: ReadableSpan): Record<string, unknown> {
  return {
    name: s.name,
    kind: s.kind,
    scope: s.instrumentationScope.name,
    attributes: s.attributes,
    status: s.status,
    events: s.events.map((e) => e.name),
  };
}

const eventsOf = (context: SpanContext): TimedEvent[] => {
  const span = exporter.getFinishedSpans().find((s) => s.spanContext().spanId === context.spanId);
  if (span === undefined) throw new Error(`span ${context.spanId} not ended`);
  return span.events;
};
const POOL_EVENT = /^mysql_fresh_pool\./;
const poolEventsOf = (context: SpanContext): TimedEvent[] => eventsOf(context).filter((e) => POOL_EVENT.test(e.name));
const attrs = (e: TimedEvent | undefined): Attributes => e?.attributes ?? {};

t.test('sanity: the instrumentation was in place before mysql2 was loaded', async (t) => {
  t.equal(mysql2LoadedBeforeSetup, false, "mysql2's lib/connection.js was not loaded before the tracing setup");
});

t.test('statements through the pool: the same spans as on a plain mysql2 connection', async (t) => {
  const plain = await mysql.createConnection({ uri: server.url });
  t.teardown(() => plain.end());
  const pool = createPool({ connection: server.url, name: 'traced', max: 1, logger: silent });
  t.teardown(() => pool.end());

  // The first borrow opens the pool's first connection, which reads wait_timeout: the pool's
  // own statement, a span under the borrower's span like any other.
  const first = await inSpan('first borrow', () => pool.query('DO 1'));
  const firstChildren = childrenOf(first.context);
  t.same(
    firstChildren.map((s) => [s.name, s.attributes['db.query.text']]),
    [['SELECT', 'SELECT @@SESSION.wait_timeout AS waitTimeout'], ['DO', 'DO 1']],
    "the pool's wait_timeout read, then the statement, both children of the borrower's span",
  );

  const statements: Array<(c: Connection) => Promise<unknown>> = [
    (c) => c.query('SELECT 1 + 1 AS two'),
    (c) => c.query('SELECT ? AS v', [42]),
    (c) => c.execute('SELECT ? AS v', [7]),
    (c) => c.query({ sql: 'SELECT 3 AS three' }),
    (c) => c.query('SELEC broken').catch(() => 'failed'),
  ];
  const runAll = async (c: Connection) => {
    for (const run of statements) await run(c);
  };
  const onPlain = await inSpan('plain', () => runAll(plain));
  const onPool = await inSpan('pooled', () => pool.withConnection((c) => runAll(c)));

  const plainSpans = childrenOf(onPlain.context);
  t.equal(plainSpans.length, statements.length, 'one span per statement on the plain connection');
  t.same(plainSpans.map((s) => s.name), ['SELECT', 'SELECT', 'SELECT', 'SELECT', 'SELEC'], 'span names: the statement verb');
  t.ok(plainSpans.every((s) => s.instrumentationScope.name === MYSQL2_SCOPE), 'made by instrumentation-mysql2');
  t.match(plainSpans[0]!.attributes, { 'db.system.name': 'mysql', 'server.address': server.host, 'server.port': server.port, 'db.namespace': 'test' });
  t.equal(plainSpans[4]!.status.code, 2, 'the failing statement: status ERROR');

  // After the failed statement the transaction state is unknown: the pool rolls back on return,
  // and that ROLLBACK is a span too, under the same borrower's span.
  await until(() => childrenOf(onPool.context).length === statements.length + 1, 5_000, "the pool's ROLLBACK on return");
  const poolSpans = childrenOf(onPool.context);
  t.same(poolSpans.slice(0, statements.length).map(shape), plainSpans.map(shape), 'each statement: same name, kind, scope, attributes, status and events as on the plain connection');
  t.same(poolSpans.slice(statements.length).map((s) => [s.name, s.attributes['db.query.text']]), [['ROLLBACK', 'ROLLBACK']], "then the pool's clean-up: ROLLBACK");

  // The pool's own shortcuts: one borrow each.
  const plainShort = await inSpan('plain shortcuts', async () => {
    await plain.query('SELECT ? AS v', [5]);
    await plain.execute('SELECT ? AS v', [6]);
  });
  const poolShort = await inSpan('pool shortcuts', async () => {
    await pool.query('SELECT ? AS v', [5]);
    await pool.execute('SELECT ? AS v', [6]);
  });
  t.same(childrenOf(poolShort.context).map(shape), childrenOf(plainShort.context).map(shape), 'pool.query and pool.execute: the same spans as the plain connection\'s query and execute');
  t.equal(childrenOf(poolShort.context).length, 2);
});

t.test('a borrow that waited: an event on the waiting caller\'s span, none on the one lent at once', async (t) => {
  // connWaitAge left to the server's wait_timeout (30 s cap): the holder's borrow is the hot path.
  const pool = tracedPool(t, 'waits');
  await pool.query('DO 1'); // one idle connection, used moments ago
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const holder = inSpan('holder', () => pool.withConnection(async (c) => {
    const id = await connId(c);
    await held;
    return id;
  }));
  await until(() => pool.stats().borrowed === 1, 10_000, 'the holder to borrow');
  const waiter = inSpan('waiter', () => pool.withConnection((c) => connId(c)));
  await until(() => pool.stats().waiting === 1, 10_000, 'the waiter to queue');
  await sleep(60);
  release();
  const [h, w] = await Promise.all([holder, waiter]);
  t.equal(h.value, w.value, 'sanity: the waiter got the holder\'s connection (max 1)');

  t.same(poolEventsOf(h.context), [], 'the holder, lent an idle connection at once: no event');
  const events = poolEventsOf(w.context);
  t.same(events.map((e) => e.name), ['mysql_fresh_pool.acquire'], 'the waiter: one acquire event');
  t.match(attrs(events[0]), {
    'db.client.connection.pool.name': 'waits',
    'mysql_fresh_pool.connection.id': w.value,
    'mysql_fresh_pool.acquire.via': 'waited',
  });
  const waitMs = attrs(events[0])['mysql_fresh_pool.wait_ms'];
  t.ok(typeof waitMs === 'number' && waitMs >= 50, `wait_ms ${waitMs}: at least the 60 ms the holder kept it after the waiter queued`);
  t.same(childrenOf(w.context).map((s) => s.name), ['SELECT'], "the waiter's statement span is its child");
});

t.test('a ping before use: at the borrow, and before a statement on the span active then', async (t) => {
  const pool = tracedPool(t, 'pings', { connWaitAge: 100 });
  const firstId = await pool.withConnection((c) => connId(c));
  await sleep(250); // idle past connWaitAge: the next borrow pings
  const outer = await inSpan('after idle', () => pool.withConnection(async (c) => {
    const id = await connId(c);
    await sleep(250); // idle past connWaitAge again, while lent: the next statement pings first
    const inner = await inSpan('second statement', () => connId(c));
    return { id, innerId: inner.value, inner: inner.context };
  }));
  const { id, innerId, inner } = outer.value;
  t.equal(id, firstId, 'sanity: the same connection, pinged and kept');
  t.equal(innerId, firstId, 'sanity: kept again after the second ping');

  const events = poolEventsOf(outer.context);
  t.same(events.map((e) => e.name), ['mysql_fresh_pool.ping', 'mysql_fresh_pool.acquire'], "the borrower's span: the ping, then the acquire");
  t.match(attrs(events[0]), {
    'db.client.connection.pool.name': 'pings',
    'mysql_fresh_pool.connection.id': firstId,
    'mysql_fresh_pool.ping.ok': true,
    'mysql_fresh_pool.ping.cause': 'borrow',
  });
  t.notOk('mysql_fresh_pool.ping.reason' in attrs(events[0]), 'no failure reason on a ping that succeeded');
  t.ok((attrs(events[0])['mysql_fresh_pool.idle_ms'] as number) >= 100, `idle_ms ${attrs(events[0])['mysql_fresh_pool.idle_ms']}: past connWaitAge`);
  t.ok((attrs(events[0])['mysql_fresh_pool.ping_ms'] as number) >= 0, 'ping_ms');
  t.match(attrs(events[1]), { 'mysql_fresh_pool.acquire.via': 'checked', 'mysql_fresh_pool.connection.id': firstId });

  const innerEvents = poolEventsOf(inner);
  t.same(innerEvents.map((e) => e.name), ['mysql_fresh_pool.ping'], 'the span active at the second statement: its ping');
  t.match(attrs(innerEvents[0]), { 'mysql_fresh_pool.ping.ok': true, 'mysql_fresh_pool.ping.cause': 'statement', 'mysql_fresh_pool.connection.id': firstId });
  t.ok((attrs(innerEvents[0])['mysql_fresh_pool.idle_ms'] as number) >= 100, 'idle past connWaitAge');
  t.same(childrenOf(inner).map((s) => s.name), ['SELECT'], 'and its statement span');
});

t.test('a connection killed while idle: the borrow drops it, on the caller\'s span', async (t) => {
  const pool = tracedPool(t, 'killed', { connWaitAge: 100 });
  const killedId = await pool.withConnection((c) => connId(c));
  await sleep(150); // idle past connWaitAge: the next borrow pings
  // Killed with the event loop blocked, and kept blocked: the close arrives unseen, so the
  // pool still holds the connection as idle and only the ping finds it dead.
  server.killSync([killedId]);
  busyWait(200);
  const after = await inSpan('after kill', () => pool.withConnection((c) => connId(c)));
  t.not(after.value, killedId, 'sanity: a new connection was lent');

  const events = poolEventsOf(after.context);
  t.same(events.map((e) => e.name), ['mysql_fresh_pool.ping', 'mysql_fresh_pool.replace', 'mysql_fresh_pool.acquire'], 'the failed ping, the drop, then the acquire of another');
  const [pinged, replaced, acquired] = events.map(attrs);
  t.match(pinged, { 'mysql_fresh_pool.connection.id': killedId, 'mysql_fresh_pool.ping.ok': false, 'mysql_fresh_pool.ping.cause': 'borrow', 'mysql_fresh_pool.ping.reason': /^(pingFailed|pingTimeout)$/ });
  t.match(replaced, { 'db.client.connection.pool.name': 'killed', 'mysql_fresh_pool.connection.id': killedId, 'mysql_fresh_pool.replace.phase': 'borrow' });
  t.equal(replaced!['mysql_fresh_pool.replace.reason'], pinged!['mysql_fresh_pool.ping.reason'], "the drop's reason is the ping's");
  t.notOk('mysql_fresh_pool.replace.new_connection.id' in replaced!, 'no new_connection.id at a borrow (the acquire names it)');
  t.match(acquired, { 'mysql_fresh_pool.connection.id': after.value, 'mysql_fresh_pool.acquire.via': 'waited' });
});

t.test('a connection killed while lent: replaced before the statement, on the span active then', async (t) => {
  const pool = tracedPool(t, 'replaced', { connWaitAge: 100 });
  const outer = await inSpan('holder', () => pool.withConnection(async (c) => {
    const before = await connId(c);
    await sleep(150); // idle past connWaitAge while lent
    server.killSync([before]);
    busyWait(200);
    const inner = await inSpan('statement after kill', () => connId(c));
    return { before, after: inner.value, inner: inner.context };
  }));
  const { before, after, inner } = outer.value;
  t.not(after, before, 'sanity: the statement ran on a new connection');

  const innerEvents = poolEventsOf(inner);
  const replaces = innerEvents.filter((e) => e.name === 'mysql_fresh_pool.replace');
  t.equal(replaces.length, 1, 'one replace event on the span active at the statement');
  t.match(attrs(replaces[0]), {
    'db.client.connection.pool.name': 'replaced',
    'mysql_fresh_pool.connection.id': before,
    'mysql_fresh_pool.replace.new_connection.id': after,
    'mysql_fresh_pool.replace.phase': 'statement',
    'mysql_fresh_pool.replace.reason': /^(closedByServer|connectionError|pingFailed|pingTimeout)$/,
  });
  // Seen dead at once (the close was read during the check's loop turn), or by a failed ping.
  for (const e of innerEvents.filter((e) => e.name === 'mysql_fresh_pool.ping')) {
    t.match(attrs(e), { 'mysql_fresh_pool.ping.ok': false, 'mysql_fresh_pool.ping.cause': 'statement', 'mysql_fresh_pool.connection.id': before });
  }
  t.same(innerEvents.map((e) => e.name).filter((n) => n !== 'mysql_fresh_pool.ping'), ['mysql_fresh_pool.replace'], 'nothing else');
  t.notOk(poolEventsOf(outer.context).some((e) => e.name === 'mysql_fresh_pool.replace'), "not on the borrower's span: it was not the active one");
  const statement = childrenOf(inner);
  t.same(statement.map((s) => s.name), ['SELECT'], 'the statement span, under the span active at the statement');
  t.equal(statement[0]?.status.code, 0, 'and it succeeded (status UNSET)');
});

t.test('keep-alive pings add nothing, even to the span active where the pool was made', async (t) => {
  // The pool's upkeep timer is made in its constructor, so its callbacks run in the context
  // active then: a keep-alive ping would land on this span if it were not left out.
  const made = await inSpan('pool maker', async () => {
    const pool = createPool({ connection: server.url, name: 'keepalive', max: 1, keepAliveInterval: 100, logger: silent });
    const unregister = registerPoolTracing(pool);
    const activeAtKeepAlive: string[] = [];
    pool.on('ping', (e: PingEvent) => {
      if (e.cause === 'keepAlive') activeAtKeepAlive.push(trace.getActiveSpan()?.spanContext().spanId ?? 'none');
    });
    try {
      await pool.query('DO 1'); // the first connection: an acquire event, the only one expected
      await until(() => activeAtKeepAlive.length >= 2, 10_000, 'two keep-alive pings');
    } finally {
      unregister();
      await pool.end();
    }
    return activeAtKeepAlive;
  });
  t.ok(made.value.every((id) => id === made.context.spanId), `premise: the keep-alive pings ran with this span active (${made.value.join(', ')})`);
  t.same(poolEventsOf(made.context).map((e) => e.name), ['mysql_fresh_pool.acquire'], "yet no ping event on it: only the first borrow's acquire");
});

t.test("a cluster's node pool: events on the caller's span, with the cluster and the node", async (t) => {
  const cluster = createCluster({ name: 'shop', nodes: [{ name: 'db1', uri: server.url }], connWaitAge: 100, logger: silent });
  t.teardown(() => cluster.end());
  const unregister = registerPoolTracing(cluster);
  t.teardown(unregister);
  await cluster.query('DO 1');
  await sleep(250); // idle past connWaitAge: the next borrow pings
  const traced = await inSpan('cluster caller', () => cluster.query('DO 1'));
  const events = poolEventsOf(traced.context);
  t.same(events.map((e) => e.name), ['mysql_fresh_pool.ping', 'mysql_fresh_pool.acquire'], "the node pool's ping and acquire, on the caller's span");
  for (const e of events) {
    t.match(attrs(e), { 'db.client.connection.pool.name': 'shop.db1', 'mysql_fresh_pool.cluster.name': 'shop', 'mysql_fresh_pool.node.name': 'db1' });
  }
  t.same(childrenOf(traced.context).map((s) => s.name), ['DO'], 'and the statement span under it');
  // The cluster's monitor checks the nodes on connections of its own: spans too, with no
  // parent here, the cluster having been made outside any span.
  const checks = exporter.getFinishedSpans().filter((s) => String(s.attributes['db.query.text']).startsWith('SELECT @@global.read_only'));
  t.ok(checks.length >= 1, `the monitor's checks are spans (${checks.length})`);
  t.ok(checks.every((s) => s.parentSpanContext === undefined), 'with no parent');
});

t.test('no active span: nothing recorded, nothing thrown; unregister stops the events', async (t) => {
  const pool = createPool({ connection: server.url, name: 'unregistered', max: 1, connWaitAge: 100, logger: silent });
  t.teardown(() => pool.end());
  const unregister = registerPoolTracing(pool);
  t.equal(pool.listenerCount('acquire') + pool.listenerCount('ping') + pool.listenerCount('replace'), 3, 'three listeners');
  await pool.query('DO 1');
  await sleep(150);
  t.equal(trace.getActiveSpan(), undefined, 'sanity: no active span here');
  await pool.query('DO 1'); // pinged, with no span active: nothing to add to, nothing thrown
  unregister();
  unregister(); // twice is harmless
  t.equal(pool.listenerCount('acquire') + pool.listenerCount('ping') + pool.listenerCount('replace'), 0, 'listeners removed');
  await sleep(150);
  const after = await inSpan('after unregister', () => pool.query('DO 1')); // pinged again
  t.equal(pool.stats().pings, 2, 'sanity: both borrows pinged');
  t.same(poolEventsOf(after.context), [], 'no event once unregistered');
});

t.test('invalid arguments', async (t) => {
  const one = createPool({ connection: server.url, name: 'dup', logger: silent });
  const two = createPool({ connection: server.url, name: 'dup', logger: silent });
  t.teardown(() => Promise.all([one.end(), two.end()]));
  t.throws(() => registerPoolTracing([one, two]), InvalidArgumentError, 'duplicate pool names');
  t.throws(() => registerPoolTracing([one, two]), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'pools', value: 'dup' });
  t.equal(one.listenerCount('acquire'), 0, 'nothing registered');
  t.throws(() => registerPoolTracing({} as FreshPool), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'pools' }, 'not a pool');
  t.throws(() => registerPoolTracing(null as unknown as FreshPool), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'pools' }, 'null');
});

