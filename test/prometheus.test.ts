// registerPoolMetrics: the pools' series on a prom-client registry, checked by scraping the
// registry's text output and comparing each value with pool.stats(). And the main entry
// point must load without prom-client installed (prom-client is an optional peer).
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Registry, register as globalRegistry } from 'prom-client';
import t from 'tap';
import { createPool, InvalidArgumentError, type FreshPool, type PoolStats } from '../lib/index.js';
import { registerPoolMetrics } from '../lib/prometheus.js';
import { captureLog } from './helpers/log.js';
import { sleep, startServer } from './helpers/mariadb.js';

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const server = await startServer(t);

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a text exposition. */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** Every series: name, the labels a pool's stats give it, and the value expected from the stats. */
function expectedSeries(pool: string, s: PoolStats): Array<[string, Record<string, string>, number]> {
  return [
    ['connections', { pool, state: 'idle' }, s.idle],
    ['connections', { pool, state: 'borrowed' }, s.borrowed],
    ['connections_max', { pool }, s.max],
    ['connections_min', { pool }, s.min],
    ['waiting_borrows', { pool }, s.waiting],
    ['connections_created_total', { pool }, s.created],
    ...Object.entries(s.destroyed).map(([reason, n]): [string, Record<string, string>, number] => ['connections_destroyed_total', { pool, reason }, n]),
    ['pings_total', { pool }, s.pings],
    ['ping_failures_total', { pool }, s.pingFailures],
    ['connect_attempts_total', { pool }, s.connectAttempts],
    ['connect_failures_total', { pool }, s.connectFailures],
    ['loop_stalls_total', { pool }, s.loopStalls],
    ['acquires_total', { pool }, s.acquires],
    ['acquire_wait_seconds_total', { pool }, s.acquireWaitMsTotal / 1000],
    ['acquire_wait_seconds_max', { pool }, s.acquireWaitMsMax / 1000],
    ['validation_seconds_total', { pool }, s.validationMsTotal / 1000],
  ];
}

const FAMILIES: Record<string, 'gauge' | 'counter'> = {
  connections: 'gauge',
  connections_max: 'gauge',
  connections_min: 'gauge',
  waiting_borrows: 'gauge',
  acquire_wait_seconds_max: 'gauge',
  connections_created_total: 'counter',
  connections_destroyed_total: 'counter',
  pings_total: 'counter',
  ping_failures_total: 'counter',
  connect_attempts_total: 'counter',
  connect_failures_total: 'counter',
  loop_stalls_total: 'counter',
  acquires_total: 'counter',
  acquire_wait_seconds_total: 'counter',
  validation_seconds_total: 'counter',
};

async function serverId(pool: FreshPool): Promise<number> {
  return pool.withConnection(async (conn) => Number((await conn.query<any[]>('SELECT CONNECTION_ID() AS id'))[0][0].id));
}

t.test('two pools on one registry: series, values, HELP/TYPE, unregister', async (t) => {
  const a = createPool({ connection: server.url, name: 'a', max: 2, maxAge: 500, connWaitAge: 100, logger: captureLog().logger });
  const b = createPool({ connection: server.url, name: 'b', max: 2, connWaitAge: 50, logger: captureLog().logger });
  let lease: Awaited<ReturnType<FreshPool['lease']>> | undefined;
  t.teardown(() => {
    lease?.release(); // before end(), which waits for it
    return Promise.all([a.end(), b.end()]);
  });
  const registry = new Registry();
  const unregister = registerPoolMetrics([a, b], { registry });

  // Pool a: one connection retired at maxAge while idle, then two borrows held together.
  const retired = once(a, 'evict', { signal: AbortSignal.timeout(3_000) });
  await serverId(a);
  const [evict] = (await retired) as [{ reason: string }];
  t.equal(evict.reason, 'maxAge');
  let arrived = 0;
  let allIn!: () => void;
  const together = new Promise<void>((r) => (allIn = r));
  await Promise.all([0, 1].map(() => a.withConnection(async () => (++arrived === 2 ? allIn() : undefined, await together))));
  // Pool b: one borrow, idle past connWaitAge, then one lease (pinged) kept during the scrape.
  await serverId(b);
  await sleep(80);
  lease = await b.lease();

  const text = await registry.metrics();
  const sa = a.stats();
  const sb = b.stats();
  t.match(sa, { created: 3, destroyed: { maxAge: 1 }, acquires: 3, idle: 2, borrowed: 0 }, 'pool a did what the test meant');
  t.match(sb, { created: 1, acquires: 2, pings: 1, idle: 0, borrowed: 1 }, 'pool b did what the test meant');

  // The literal lines, as a Prometheus server reads them.
  const lines = text.split('\n');
  for (const line of [
    'mysql_fresh_pool_connections{pool="a",state="idle"} 2',
    'mysql_fresh_pool_connections{pool="a",state="borrowed"} 0',
    'mysql_fresh_pool_connections{pool="b",state="idle"} 0',
    'mysql_fresh_pool_connections{pool="b",state="borrowed"} 1',
    'mysql_fresh_pool_connections_max{pool="a"} 2',
    'mysql_fresh_pool_connections_created_total{pool="a"} 3',
    'mysql_fresh_pool_connections_created_total{pool="b"} 1',
    'mysql_fresh_pool_connections_destroyed_total{pool="a",reason="maxAge"} 1',
    'mysql_fresh_pool_acquires_total{pool="a"} 3',
    'mysql_fresh_pool_acquires_total{pool="b"} 2',
    'mysql_fresh_pool_pings_total{pool="b"} 1',
    'mysql_fresh_pool_waiting_borrows{pool="a"} 0',
  ]) {
    t.ok(lines.includes(line), line);
  }
  t.notOk(lines.some((l) => l.startsWith('mysql_fresh_pool_connections_destroyed_total{pool="b"')), 'no destroyed series for pool b: nothing destroyed');

  // Every series of both pools, with the value stats() gives.
  const samples = parse(text);
  for (const [pool, s] of [['a', sa], ['b', sb]] as const) {
    const expected = expectedSeries(pool, s);
    for (const [name, labels, value] of expected) {
      const found = samples.filter((x) => x.name === `mysql_fresh_pool_${name}` && JSON.stringify(x.labels) === JSON.stringify(labels));
      t.equal(found.length, 1, `one ${name}${JSON.stringify(labels)}`);
      t.ok(Math.abs((found[0]?.value ?? NaN) - value) < 1e-9, `${name}${JSON.stringify(labels)} = ${value} (stats)`);
    }
    t.equal(samples.filter((x) => x.labels.pool === pool).length, expected.length, `pool ${pool}: no series beyond those`);
  }
  t.ok(samples.every((x) => x.name.startsWith('mysql_fresh_pool_')), 'only the pools\' series on this registry');
  t.ok(samples.every((x) => x.labels.pool === 'a' || x.labels.pool === 'b'), 'every series has a pool label');

  // HELP and TYPE: counters end in _total, gauges do not; times in seconds, no ms.
  const families = [...new Set(samples.map((x) => x.name))].sort();
  t.same(families, Object.keys(FAMILIES).map((n) => `mysql_fresh_pool_${n}`).sort(), 'the documented families');
  for (const [name, type] of Object.entries(FAMILIES)) {
    const full = `mysql_fresh_pool_${name}`;
    t.ok(lines.some((l) => l.startsWith(`# HELP ${full} `) && l.length > `# HELP ${full} `.length), `HELP for ${full}`);
    t.ok(lines.includes(`# TYPE ${full} ${type}`), `${full} is a ${type}`);
    t.equal(name.endsWith('_total'), type === 'counter', `${full}: _total iff counter`);
    t.match(full, /^[a-z_]+$/, 'snake_case');
    t.notMatch(full, /_ms|millis/, 'base unit seconds');
  }

  // A second scrape: counters report the pool's totals again, not twice.
  const again = parse(await registry.metrics());
  t.same(again, samples, 'a second scrape with no traffic in between gives the same samples');

  // unregister removes every series; registering again works.
  unregister();
  t.equal(registry.getMetricsAsArray().length, 0, 'registry empty after unregister()');
  t.notMatch(await registry.metrics(), /mysql_fresh_pool_/);
  const unregister2 = registerPoolMetrics([a, b], { registry });
  t.match(await registry.metrics(), /mysql_fresh_pool_connections\{pool="a",state="idle"\} 2/, 'registering again after unregister works');
  unregister2();
});

t.test('custom prefix, a single pool, the global registry', async (t) => {
  const pool = createPool({ connection: server.url, name: 'solo', logger: captureLog().logger });
  t.teardown(() => pool.end());
  await serverId(pool);
  const registry = new Registry();
  const unregister = registerPoolMetrics(pool, { registry, prefix: 'app_db_' });
  const text = await registry.metrics();
  t.ok(text.split('\n').includes('app_db_connections{pool="solo",state="idle"} 1'), 'prefixed gauge');
  t.ok(text.split('\n').includes('app_db_acquires_total{pool="solo"} 1'), 'prefixed counter');
  t.ok(text.split('\n').includes('# TYPE app_db_connections_created_total counter'));
  t.notMatch(text, /mysql_fresh_pool_/, 'no default-prefixed series');
  unregister();
  t.equal(registry.getMetricsAsArray().length, 0);

  // No registry given: prom-client's global one.
  const before = globalRegistry.getMetricsAsArray().length;
  const unregisterGlobal = registerPoolMetrics(pool);
  t.match(await globalRegistry.metrics(), /mysql_fresh_pool_connections\{pool="solo",state="idle"\} 1/, 'default: the global registry');
  unregisterGlobal();
  t.equal(globalRegistry.getMetricsAsArray().length, before, 'and unregister removes them from it');
});

t.test('invalid arguments: duplicate pool names, a bad prefix', async (t) => {
  const one = createPool({ connection: server.url, name: 'dup', logger: captureLog().logger });
  const two = createPool({ connection: server.url, name: 'dup', logger: captureLog().logger });
  t.teardown(() => Promise.all([one.end(), two.end()]));
  const registry = new Registry();
  t.throws(() => registerPoolMetrics([one, two], { registry }), InvalidArgumentError, 'duplicate names rejected');
  t.throws(() => registerPoolMetrics([one, two], { registry }), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'pools', value: 'dup' });
  t.equal(registry.getMetricsAsArray().length, 0, 'nothing registered');
  for (const prefix of ['1bad', 'has space', 'dash-ed_']) {
    t.throws(() => registerPoolMetrics(one, { registry, prefix }), { code: 'ERR_FRESH_POOL_INVALID_ARGUMENT', field: 'prefix' }, `prefix ${JSON.stringify(prefix)} rejected`);
  }
  t.equal(registry.getMetricsAsArray().length, 0, 'still nothing registered');

  // Not a promise of the library, recorded for the report: the same names registered twice
  // on one registry (e.g. a second call for another pool) -- what happens?
  const unregister = registerPoolMetrics(one, { registry });
  let second: unknown;
  try {
    registerPoolMetrics(createPool({ connection: server.url, name: 'other', logger: captureLog().logger }), { registry });
  } catch (err) {
    second = err;
  }
  t.comment(`second registerPoolMetrics call on the same registry: ${second ? `throws ${(second as Error).name}: ${(second as Error).message}` : 'accepted'}`);
  unregister();
});

// prom-client is an optional peer: nothing the main entry point loads may import it.
t.test('the main entry point never imports prom-client', async (t) => {
  t.test('static: the import graph of lib/index.ts', async (t) => {
    const specifiers = (file: string): string[] => {
      const src = readFileSync(file, 'utf8');
      const found: string[] = [];
      const patterns = [
        /^\s*(?:import|export)\s+(?:type\s+)?[^'"]*?\bfrom\s*['"]([^'"]+)['"]/gm, // import x from / export {..} from
        /^\s*import\s*['"]([^'"]+)['"]/gm, // side-effect import
        /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g, // dynamic import
        /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g, // require
      ];
      for (const re of patterns) for (const m of src.matchAll(re)) found.push(m[1]!);
      return found;
    };
    const lib = join(root, 'lib');
    t.ok(specifiers(join(lib, 'prometheus.ts')).includes('prom-client'), 'sanity: the scan finds prometheus.ts importing prom-client');
    const seen = new Set<string>();
    const bare = new Map<string, string[]>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const spec of specifiers(file)) {
        if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
        else bare.set(spec, [...(bare.get(spec) ?? []), file.slice(root.length + 1)]);
      }
    };
    visit(join(lib, 'index.ts'));
    const reached = [...seen].map((f) => f.slice(root.length + 1)).sort();
    t.comment(`reached from lib/index.ts: ${reached.join(', ')}`);
    t.comment(`packages imported: ${[...bare.keys()].sort().join(', ')}`);
    t.ok(reached.length > 5, 'the graph was walked');
    t.notOk(reached.includes('lib/prometheus.ts'), 'lib/prometheus.ts is not reachable from the main entry');
    t.notOk(bare.has('prom-client'), `no file reachable from lib/index.ts imports prom-client${bare.has('prom-client') ? ` (${bare.get('prom-client')!.join(', ')})` : ''}`);
    t.ok(bare.has('mysql2/promise') || bare.has('mysql2'), 'sanity: it does see mysql2');
  });

  t.test('package.json: prom-client an optional peer, prometheus its own entry', async (t) => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    t.notOk(pkg.dependencies?.['prom-client'], 'not a dependency');
    t.ok(pkg.peerDependencies?.['prom-client'], 'a peer dependency');
    t.equal(pkg.peerDependenciesMeta?.['prom-client']?.optional, true, 'marked optional');
    t.match(pkg.exports?.['./prometheus'], { default: './dist/prometheus.js' }, 'mysql-fresh-pool/prometheus entry');
  });

  // The same, for real: lib/ compiled into a temp dir whose node_modules holds every package
  // of this project except prom-client; the main entry loads, the prometheus one cannot.
  t.test('dynamic: lib compiled, loaded where prom-client is absent', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'fresh-pool-noprom-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const out = join(dir, 'dist');
    await run(process.execPath, [
      join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json'),
      '--outDir', out, '--declaration', 'false', '--declarationMap', 'false', '--sourceMap', 'false',
    ]).catch((err: { stdout?: string }) => t.comment(`tsc reported errors (files are emitted anyway): ${String(err.stdout).slice(0, 500)}`));
    t.ok(existsSync(join(out, 'index.js')), 'compiled');
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
    mkdirSync(join(dir, 'node_modules'));
    for (const name of readdirSync(join(root, 'node_modules'))) {
      if (name === 'prom-client' || name.startsWith('.')) continue;
      symlinkSync(join(root, 'node_modules', name), join(dir, 'node_modules', name));
    }
    const probe = `
      const main = await import(${JSON.stringify(join(out, 'index.js'))});
      let prom;
      try { await import(${JSON.stringify(join(out, 'prometheus.js'))}); prom = 'loaded'; }
      catch (e) { prom = e.code + ' ' + /prom-client/.test(e.message); }
      console.log(JSON.stringify({ createPool: typeof main.createPool, prom }));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', probe], { cwd: dir, env: { ...process.env, NODE_OPTIONS: '', NODE_PATH: '' } });
    const result = JSON.parse(stdout.trim().split('\n').pop()!);
    t.equal(result.createPool, 'function', 'the main entry loads without prom-client');
    t.equal(result.prom, 'ERR_MODULE_NOT_FOUND true', 'sanity: prom-client really is absent there (the prometheus entry cannot load)');
  });
});
