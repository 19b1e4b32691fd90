// OpenTelemetry metrics: registerPoolMetrics reports the semantic conventions' connection-pool
// metrics and the pool's own counters on a meter, read with the SDK's in-memory exporter and
// checked against pool.stats() and the pool's events; clusters' node pools carry the cluster's
// and the node's names; the main entry point never imports @opentelemetry/api.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { metrics } from '@opentelemetry/api';
import { DataPointType, type MetricData, type SumMetricData } from '@opentelemetry/sdk-metrics';
import * as semconv from '@opentelemetry/semantic-conventions/incubating';
import t, { type Test } from 'tap';
import mysql from 'mysql2/promise';
import type { AcquireEvent, CreateEvent, ReleaseEvent } from '../lib/events.js';
import { AcquireTimeoutError, createCluster, createPool, InvalidArgumentError, type FreshPool, type PoolStats } from '../lib/index.js';
import { ATTR, ATTR_POOL_NAME, ATTR_STATE, METRICS_DEFAULTS, registerPoolMetrics, SEMCONV_METRICS } from '../lib/opentelemetry/index.js';
import { busyWait, sleep, startServer } from './helpers/mariadb.js';
import { histogramOf, metricNamed, metricsHarness, valueOf } from './helpers/otel-metrics.js';
import { until } from './helpers/settle.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const server = await startServer(t);
const silent = { debug() {}, info() {}, warn() {}, error() {} };

const connId = async (conn: mysql.Connection): Promise<number> => Number((await conn.query<mysql.RowDataPacket[]>('SELECT CONNECTION_ID() AS id'))[0][0]!.id);

/** Every sum series of a pool with the value stats() gives: [name, extra attributes, value]. */
function expectedSums(s: PoolStats, timeouts: number, prefix = 'mysql_fresh_pool.'): Array<[string, Record<string, string>, number]> {
  return [
    [SEMCONV_METRICS.count, { [ATTR_STATE]: 'idle' }, s.idle],
    [SEMCONV_METRICS.count, { [ATTR_STATE]: 'used' }, s.borrowed],
    [SEMCONV_METRICS.idleMax, {}, s.max],
    [SEMCONV_METRICS.idleMin, {}, s.min],
    [SEMCONV_METRICS.limit, {}, s.max],
    [SEMCONV_METRICS.pendingRequests, {}, s.waiting],
    [SEMCONV_METRICS.timeouts, {}, timeouts],
    ...Object.entries(s.destroyed).map(([reason, n]): [string, Record<string, string>, number] => [`${prefix}connection.evictions`, { [ATTR.evictionReason]: reason }, n]),
    [`${prefix}connect.attempts`, {}, s.connectAttempts],
    [`${prefix}connect.failures`, {}, s.connectFailures],
    [`${prefix}pings`, {}, s.pings],
    [`${prefix}ping_failures`, {}, s.pingFailures],
    [`${prefix}loop_stalls`, {}, s.loopStalls],
  ];
}

/** Checks every sum series of `pool` in `collected` against its stats. */
function checkSums(t: Test, collected: MetricData[], base: Record<string, string>, s: PoolStats, timeouts: number, prefix?: string): void {
  for (const [name, extra, value] of expectedSums(s, timeouts, prefix)) {
    t.equal(valueOf(collected, name, { ...base, ...extra }), value, `${name}${JSON.stringify(extra)} = ${value}`);
  }
  // No series of this pool beyond those (an eviction reason not in stats, say).
  const mine = collected
    .filter((m) => m.dataPointType === DataPointType.SUM)
    .flatMap((m) => (m as SumMetricData).dataPoints.filter((p) => p.attributes[ATTR_POOL_NAME] === base[ATTR_POOL_NAME]).map(() => m.descriptor.name));
  t.equal(mine.length, expectedSums(s, timeouts, prefix).length, `${base[ATTR_POOL_NAME]}: no sum series beyond the expected ones`);
}

t.test('the instruments: semantic-convention names, units and kinds', async (t) => {
  const h = metricsHarness();
  t.teardown(() => h.shutdown());
  const pool = createPool({ connection: server.url, name: 'kinds', logger: silent });
  t.teardown(() => pool.end());
  const unregister = registerPoolMetrics(pool, { meterProvider: h.provider });
  t.teardown(unregister);
  await pool.query('DO 1'); // one point in each histogram but use/create... all three
  const collected = await h.collect();

  // The names, against @opentelemetry/semantic-conventions' own constants.
  t.equal(SEMCONV_METRICS.count, semconv.METRIC_DB_CLIENT_CONNECTION_COUNT);
  t.equal(SEMCONV_METRICS.idleMax, semconv.METRIC_DB_CLIENT_CONNECTION_IDLE_MAX);
  t.equal(SEMCONV_METRICS.idleMin, semconv.METRIC_DB_CLIENT_CONNECTION_IDLE_MIN);
  t.equal(SEMCONV_METRICS.limit, semconv.METRIC_DB_CLIENT_CONNECTION_LIMIT);
  t.equal(SEMCONV_METRICS.pendingRequests, semconv.METRIC_DB_CLIENT_CONNECTION_PENDING_REQUESTS);
  t.equal(SEMCONV_METRICS.timeouts, semconv.METRIC_DB_CLIENT_CONNECTION_TIMEOUTS);
  t.equal(SEMCONV_METRICS.createTime, semconv.METRIC_DB_CLIENT_CONNECTION_CREATE_TIME);
  t.equal(SEMCONV_METRICS.waitTime, semconv.METRIC_DB_CLIENT_CONNECTION_WAIT_TIME);
  t.equal(SEMCONV_METRICS.useTime, semconv.METRIC_DB_CLIENT_CONNECTION_USE_TIME);
  t.equal(ATTR_POOL_NAME, semconv.ATTR_DB_CLIENT_CONNECTION_POOL_NAME);
  t.equal(ATTR_STATE, semconv.ATTR_DB_CLIENT_CONNECTION_STATE);
  t.same([semconv.DB_CLIENT_CONNECTION_STATE_VALUE_IDLE, semconv.DB_CLIENT_CONNECTION_STATE_VALUE_USED], ['idle', 'used'], 'the state values used');

  const expected: Array<[string, string, 'sum' | 'histogram', boolean]> = [
    [SEMCONV_METRICS.count, '{connection}', 'sum', false],
    [SEMCONV_METRICS.idleMax, '{connection}', 'sum', false],
    [SEMCONV_METRICS.idleMin, '{connection}', 'sum', false],
    [SEMCONV_METRICS.limit, '{connection}', 'sum', false],
    [SEMCONV_METRICS.pendingRequests, '{request}', 'sum', false],
    [SEMCONV_METRICS.timeouts, '{timeout}', 'sum', true],
    [SEMCONV_METRICS.createTime, 's', 'histogram', false],
    [SEMCONV_METRICS.waitTime, 's', 'histogram', false],
    [SEMCONV_METRICS.useTime, 's', 'histogram', false],
    ['mysql_fresh_pool.connection.evictions', '{connection}', 'sum', true],
    ['mysql_fresh_pool.connect.attempts', '{attempt}', 'sum', true],
    ['mysql_fresh_pool.connect.failures', '{attempt}', 'sum', true],
    ['mysql_fresh_pool.pings', '{ping}', 'sum', true],
    ['mysql_fresh_pool.ping_failures', '{ping}', 'sum', true],
    ['mysql_fresh_pool.loop_stalls', '{stall}', 'sum', true],
  ];
  // Evictions has no point yet (nothing evicted), so the SDK leaves it out of the collection.
  t.same(
    collected.map((m) => m.descriptor.name).sort(),
    expected.map(([name]) => name).filter((n) => n !== 'mysql_fresh_pool.connection.evictions').sort(),
    'every instrument with a point is reported, nothing else',
  );
  for (const [name, unit, kind, monotonic] of expected) {
    const m = metricNamed(collected, name);
    if (m === undefined) continue;
    t.equal(m.descriptor.unit, unit, `${name}: unit ${unit}`);
    t.ok(m.descriptor.description.length > 0, `${name}: described`);
    if (kind === 'histogram') {
      t.equal(m.dataPointType, DataPointType.HISTOGRAM, `${name}: a histogram`);
    } else {
      t.equal(m.dataPointType, DataPointType.SUM, `${name}: a sum`);
      t.equal((m as SumMetricData).isMonotonic, monotonic, `${name}: ${monotonic ? 'a counter' : 'an up-down counter'}`);
    }
  }
  const wait = histogramOf(collected, SEMCONV_METRICS.waitTime, { [ATTR_POOL_NAME]: 'kinds' });
  t.same(wait?.buckets.boundaries, METRICS_DEFAULTS.timeBuckets, 'the default buckets, in seconds, reach the SDK as advice');
  t.equal(METRICS_DEFAULTS.prefix, 'mysql_fresh_pool.');
});

t.test('one pool: every value against stats() and the events, at two moments', async (t) => {
  const h = metricsHarness();
  t.teardown(() => h.shutdown());
  const pool = createPool({ connection: server.url, name: 'orders', max: 2, connWaitAge: 100, acquireTimeout: 1_500, logger: silent });
  t.teardown(() => pool.end());
  const creates: CreateEvent[] = [];
  const acquires: AcquireEvent[] = [];
  const releases: ReleaseEvent[] = [];
  pool.on('create', (e) => creates.push(e));
  pool.on('acquire', (e) => acquires.push(e));
  pool.on('release', (e) => releases.push(e));
  const unregister = registerPoolMetrics(pool, { meterProvider: h.provider });
  t.teardown(unregister);
  const base = { [ATTR_POOL_NAME]: 'orders' };

  // ready() opens a first connection ahead of any borrow; the borrow that takes it reports
  // the time ready() took to make it.
  const readyStarted = Date.now();
  await pool.ready();
  const readyMs = Date.now() - readyStarted;
  // A borrow held 120 ms.
  await pool.withConnection(async (c) => {
    await c.query('DO 1');
    await sleep(120);
  });
  t.equal(creates.length, 1, 'sanity: one connection so far');
  t.ok(creates[0]!.createMs >= 0 && creates[0]!.createMs <= readyMs, `ready()'s connection: createMs ${creates[0]!.createMs} within ready()'s ${readyMs} ms`);

  // Both connections held; a borrow queues and times out; another queues and waits 60 ms.
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const holders = [0, 1].map(() => pool.withConnection(async (c) => {
    await c.query('DO 1');
    await held;
  }));
  await until(() => pool.stats().borrowed === 2, 10_000, 'both connections lent');
  const timedOut = pool.withConnection(() => 'never').catch((err: unknown) => err);
  await until(() => pool.stats().waiting === 1, 10_000, 'a borrow queued');

  const during = await h.collect();
  const sDuring = pool.stats();
  t.match(sDuring, { borrowed: 2, idle: 0, waiting: 1 }, 'sanity: the moment the test meant');
  checkSums(t, during, base, sDuring, 0);

  t.ok((await timedOut) instanceof AcquireTimeoutError, 'sanity: the queued borrow timed out');
  const waiter = pool.withConnection((c) => connId(c));
  await until(() => pool.stats().waiting === 1, 10_000, 'another borrow queued');
  await sleep(60);
  release();
  await Promise.all([...holders, waiter]);

  // Both connections killed while idle past connWaitAge, unseen: the next borrow's pings fail.
  await sleep(150);
  server.killSync(creates.map((e) => e.connId));
  busyWait(200);
  await pool.withConnection((c) => connId(c));
  await until(() => pool.stats().size === pool.stats().idle, 10_000, 'every connection back');

  const after = await h.collect();
  const s = pool.stats();
  t.ok(s.pingFailures >= 1 && Object.keys(s.destroyed).length >= 1, `sanity: pings failed and connections were evicted (${JSON.stringify(s.destroyed)})`);
  checkSums(t, after, base, s, 1);

  // Histograms: one value per event, in seconds.
  const createTime = histogramOf(after, SEMCONV_METRICS.createTime, base);
  t.equal(createTime?.count, s.created, 'create_time: one value per connection made');
  t.equal(creates.length, s.created, "sanity: one 'create' per connection made");
  t.ok(Math.abs((createTime?.sum ?? NaN) - creates.reduce((sum, e) => sum + e.createMs, 0) / 1000) < 1e-9, 'create_time: the sum of createMs, in seconds');

  const waitTime = histogramOf(after, SEMCONV_METRICS.waitTime, base);
  t.equal(waitTime?.count, s.acquires, 'wait_time: one value per borrow that got a connection');
  t.equal(acquires.length, s.acquires);
  t.ok(Math.abs((waitTime?.sum ?? NaN) - s.acquireWaitMsTotal / 1000) < 1e-9, 'wait_time: sum = acquireWaitMsTotal, in seconds');
  t.equal(waitTime?.max, s.acquireWaitMsMax / 1000, 'wait_time: max = acquireWaitMsMax, in seconds');
  t.ok((waitTime?.max ?? 0) >= 0.05, `wait_time: the queued borrow's wait (${waitTime?.max} s) is in it`);
  t.equal(waitTime?.buckets.counts[0], acquires.filter((e) => e.waitMs === 0).length, 'wait_time: the first bucket (<= 0 s) counts the borrows lent at once');

  const useTime = histogramOf(after, SEMCONV_METRICS.useTime, base);
  t.equal(useTime?.count, releases.length, 'use_time: one value per loan ended');
  t.equal(releases.length, s.acquires, 'sanity: every loan ended');
  t.ok(releases.every((e) => typeof e.useMs === 'number' && e.useMs >= 0), 'every release carries useMs');
  t.ok(Math.abs((useTime?.sum ?? NaN) - releases.reduce((sum, e) => sum + (e.useMs ?? 0), 0) / 1000) < 1e-9, 'use_time: the sum of useMs, in seconds');
  t.ok((useTime?.max ?? 0) >= 0.119, `use_time: the loan held 120 ms is in it (max ${useTime?.max} s)`);

  // unregister(): nothing more is observed or recorded. (With cumulative temporality the SDK
  // may go on repeating the last values it was given; never a new one.)
  unregister();
  const lease = await pool.lease();
  const gone = await h.collect().finally(() => lease.release());
  t.equal(pool.stats().borrowed, 0, 'sanity: the lease is back');
  t.not(valueOf(gone, SEMCONV_METRICS.count, { ...base, [ATTR_STATE]: 'used' }), 1, 'the lease held during the collection is not observed after unregister()');
  t.equal(histogramOf(gone, SEMCONV_METRICS.waitTime, base)?.count, s.acquires, 'wait_time: the borrow after unregister() is not recorded');
  t.equal(pool.listenerCount('acquire'), 1, "only the test's own 'acquire' listener is left");
});

t.test('a cluster with a pool: node pools carry the cluster and the node; a custom prefix', async (t) => {
  const h = metricsHarness();
  t.teardown(() => h.shutdown());
  const cluster = createCluster({ name: 'shop', nodes: [{ name: 'db1', uri: server.url }], logger: silent });
  const solo = createPool({ connection: server.url, name: 'sessions', logger: silent });
  t.teardown(() => Promise.all([cluster.end(), solo.end()]));
  const unregister = registerPoolMetrics([cluster, solo], { meterProvider: h.provider, prefix: 'app.db.' });
  t.teardown(unregister);
  await cluster.query('DO 1');
  await solo.query('DO 1');
  const collected = await h.collect();

  const node = { [ATTR_POOL_NAME]: 'shop.db1', [ATTR.clusterName]: 'shop', [ATTR.nodeName]: 'db1' };
  t.equal(cluster.pools.get('db1')?.name, 'shop.db1', "sanity: the node pool's name");
  checkSums(t, collected, node, cluster.pools.get('db1')!.stats(), 0, 'app.db.');
  checkSums(t, collected, { [ATTR_POOL_NAME]: 'sessions' }, solo.stats(), 0, 'app.db.');
  t.equal(histogramOf(collected, SEMCONV_METRICS.waitTime, node)?.count, 1, "the node pool's borrow in wait_time, with the node's attributes");
  t.equal(histogramOf(collected, SEMCONV_METRICS.waitTime, { [ATTR_POOL_NAME]: 'sessions' })?.count, 1);
  t.notOk(collected.some((m) => m.descriptor.name.startsWith('mysql_fresh_pool.')), 'no default-prefixed metric');
  t.ok(metricNamed(collected, 'app.db.pings'), 'the prefixed counters');
  t.ok(metricNamed(collected, SEMCONV_METRICS.count), 'the semantic-convention names are not prefixed');
});

t.test('the global meter provider by default', async (t) => {
  const h = metricsHarness();
  t.teardown(() => h.shutdown());
  t.ok(metrics.setGlobalMeterProvider(h.provider), 'sanity: set as the global provider');
  t.teardown(() => metrics.disable());
  const pool = createPool({ connection: server.url, name: 'global', logger: silent });
  t.teardown(() => pool.end());
  const unregister = registerPoolMetrics(pool);
  t.teardown(unregister);
  await pool.query('DO 1');
  const collected = await h.collect();
  t.equal(valueOf(collected, SEMCONV_METRICS.count, { [ATTR_POOL_NAME]: 'global', [ATTR_STATE]: 'idle' }), 1, 'reported on the global provider');
});

t.test('invalid arguments: nothing is registered', async (t) => {
  const h = metricsHarness();
  t.teardown(() => h.shutdown());
  const one = createPool({ connection: server.url, name: 'dup', logger: silent });
  const two = createPool({ connection: server.url, name: 'dup', logger: silent });
  const cluster = createCluster({ name: 'c', nodes: [{ name: 'n', uri: server.url }], logger: silent });
  const clash = createPool({ connection: server.url, name: 'c.n', logger: silent });
  t.teardown(() => Promise.all([one.end(), two.end(), cluster.end(), clash.end()]));
  const meterProvider = h.provider;
  t.throws(() => registerPoolMetrics([one, two], { meterProvider }), InvalidArgumentError, 'two pools named alike');
  t.throws(() => registerPoolMetrics([one, two], { meterProvider }), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'pools', value: 'dup' });
  t.throws(() => registerPoolMetrics([cluster, clash], { meterProvider }), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'pools', value: 'c.n' }, "a pool named as a cluster's node pool");
  t.throws(() => registerPoolMetrics({} as FreshPool, { meterProvider }), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'pools' }, 'not a pool');
  for (const prefix of ['', '1bad', 'has space', 'é.', 'x'.repeat(250)]) {
    t.throws(() => registerPoolMetrics(one, { meterProvider, prefix }), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'prefix' }, `prefix ${JSON.stringify(prefix.slice(0, 20))} rejected`);
  }
  for (const timeBuckets of [[], [1, 1], [2, 1], [0, Infinity], [Number.NaN]]) {
    t.throws(() => registerPoolMetrics(one, { meterProvider, timeBuckets }), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'timeBuckets' }, `timeBuckets ${JSON.stringify(timeBuckets)} rejected`);
  }
  t.throws(() => registerPoolMetrics(one, { meterProvider: {} as never }), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'meterProvider' }, 'not a meter provider');
  t.equal(one.listenerCount('acquire') + one.listenerCount('create'), 0, 'no listener left behind');
  t.same(await h.collect(), [], 'no instrument reported');

  // A custom bucket list reaches the SDK.
  const unregister = registerPoolMetrics(one, { meterProvider, prefix: 'custom.', timeBuckets: [0, 0.5, 1] });
  t.teardown(unregister);
  await one.query('DO 1');
  t.same(histogramOf(await h.collect(), SEMCONV_METRICS.waitTime, { [ATTR_POOL_NAME]: 'dup' })?.buckets.boundaries, [0, 0.5, 1], 'custom buckets');
});

// @opentelemetry/api is an optional peer: nothing the main entry point loads may import it.
t.test('the main entry point never imports @opentelemetry/api', async (t) => {
  const specifiers = (file: string): string[] => {
    const src = readFileSync(file, 'utf8');
    const found: string[] = [];
    const patterns = [
      /^\s*(?:import|export)\s+(?:type\s+)?[^'"]*?\bfrom\s*['"]([^'"]+)['"]/gm,
      /^\s*import\s*['"]([^'"]+)['"]/gm,
      /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
      /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    ];
    for (const re of patterns) for (const m of src.matchAll(re)) found.push(m[1]!);
    return found;
  };
  const walk = (entry: string) => {
    const seen = new Set<string>();
    const bare = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const spec of specifiers(file)) {
        if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
        else bare.add(spec);
      }
    };
    visit(entry);
    return { files: [...seen].map((f) => f.slice(root.length + 1)), packages: [...bare] };
  };
  const main = walk(join(root, 'lib/index.ts'));
  t.ok(main.files.length > 5, 'the graph was walked');
  t.notOk(main.files.some((f) => f.startsWith('lib/opentelemetry/')), 'no lib/opentelemetry file is reachable from lib/index.ts');
  t.notOk(main.packages.some((p) => p.startsWith('@opentelemetry/')), `no @opentelemetry package imported (${main.packages.sort().join(', ')})`);
  const otel = walk(join(root, 'lib/opentelemetry/index.ts'));
  t.ok(otel.packages.includes('@opentelemetry/api'), 'sanity: the scan sees lib/opentelemetry importing @opentelemetry/api');
  t.same(otel.packages.filter((p) => p.startsWith('@opentelemetry/')), ['@opentelemetry/api'], 'and no other @opentelemetry package: the SDK and semconv stay the application\'s');
});
