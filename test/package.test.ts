// The package as its users get it. The working tree (without node_modules, dist or build) is
// copied to a temp dir and packed once there with `npm pack`, which builds through `prepack`
// exactly as a fresh clone would; the tarball is then linted by publint and arethetypeswrong
// and installed into fresh consumer projects:
//   - CommonJS: require() of every entry point (the main one, prometheus, opentelemetry, knex,
//     typeorm; their optional peers installed), a pool on a real (private) MariaDB running
//     SELECT 1, an error recognised by `code`, and the ESM copy of the same error next to it
//     (the dual-package hazard: instanceof differs between the copies, `code` does not);
//   - CommonJS TypeScript (module node16): every entry point typechecks (arethetypeswrong's
//     TS1479 case);
//   - ESM TypeScript (module nodenext): every entry point typechecks, and the compiled file
//     runs against the same server.
// Consumers install with --prefer-offline from the npm cache and use this project's tsc.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';
import t from 'tap';
import { startServer } from './helpers/mariadb.js';

// One pack (two tsc builds at once), two installs, two consumer tsc runs at once, one server:
// about 40 s on an idle 2-core machine, more on a busy one.
t.setTimeout(300_000);

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(root, 'node_modules/typescript/bin/tsc');
const attw = join(root, 'node_modules/@arethetypeswrong/cli/dist/index.js');
/** The version installed here, so that the consumers' installs find it in the npm cache. */
const versionOf = (name: string) => JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version as string;
const work = mkdtempSync(join(tmpdir(), 'fresh-pool-package-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

/**
 * The environment for child processes: no tap loader or tap settings, and no `npm_*` variable.
 * Under `npm test` those carry this project's context, its .npmrc included (legacy-peer-deps),
 * which must not leak into the consumer projects: npm there reads its user and global config
 * as it would in a user's shell.
 */
const childEnv: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !/^(npm_|NODE_OPTIONS$|TAP)/i.test(k)),
);

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end, never rejecting: the exit code is part of the result. */
function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = childEnv): Promise<Ran> {
  return new Promise((done) => {
    execFile(cmd, args, { cwd, env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      done({ code, stdout: String(stdout), stderr: String(stderr) || (err && typeof err.code !== 'number' ? String(err) : '') });
    });
  });
}

async function mustRun(cmd: string, args: string[], cwd: string, env?: NodeJS.ProcessEnv): Promise<Ran> {
  const ran = await run(cmd, args, cwd, env);
  if (ran.code !== 0) throw new Error(`${[cmd, ...args].join(' ')} exited ${ran.code}\n${ran.stdout.slice(-3000)}\n${ran.stderr.slice(-3000)}`);
  return ran;
}

const npm = (args: string[], cwd: string) => mustRun('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], cwd);

/** The last `RESULT {...}` line a consumer printed (pino's log lines share its stdout). */
function result(ran: Ran): Record<string, unknown> {
  const line = ran.stdout.split('\n').reverse().find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`no RESULT line\n${ran.stdout.slice(-3000)}\n${ran.stderr.slice(-3000)}`);
  return JSON.parse(line.slice('RESULT '.length));
}

/** Copies the working tree as a fresh clone would have it and packs it; returns the tarball. */
async function pack(): Promise<string> {
  const src = join(work, 'src');
  const skip = new Set(['node_modules', '.git', 'dist', 'build', '.tap', 'coverage']);
  cpSync(root, src, { recursive: true, filter: (from) => !skip.has(relative(root, from).split(/[\\/]/)[0]!) });
  symlinkSync(join(root, 'node_modules'), join(src, 'node_modules'), 'dir');
  const out = join(work, 'packed');
  mkdirSync(out);
  const { stdout } = await npm(['pack', '--pack-destination', out], src);
  const name = stdout.trim().split('\n').pop()!.trim();
  return join(out, name);
}

/** A fresh project of the given module type with the tarball, the optional peers and @types/node installed. */
async function consumer(name: string, type: 'commonjs' | 'module', tarball: string): Promise<string> {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type }, null, 2));
  const peers = ['prom-client', '@opentelemetry/api', 'knex', 'typeorm', '@types/node'].map((p) => `${p}@${versionOf(p)}`);
  await npm(['install', '--prefer-offline', '--no-package-lock', tarball, ...peers], dir);
  return dir;
}

/** The entry points of the integrations, each in `lib/<name>/` and `mysql-fresh-pool/<name>`. */
const INTEGRATIONS = ['opentelemetry', 'knex', 'typeorm'] as const;
/** The node10 stubs: `<entry>/package.json`, for resolvers that ignore `exports`. */
const STUBS = ['prometheus', ...INTEGRATIONS].map((e) => `${e}/package.json`);

const started = Date.now();
const [server, tarball] = await Promise.all([startServer(t), pack()]);
t.comment(`packed ${relative(work, tarball)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
// Installs run while the linters do.
const installs = Promise.all([consumer('cjs-consumer', 'commonjs', tarball), consumer('esm-consumer', 'module', tarball)]);
installs.catch(() => {});

t.test('publint: no errors, warnings or suggestions', async (t) => {
  const bytes = readFileSync(tarball);
  const { messages, pkg } = await publint({ pack: { tarball: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer }, strict: true });
  for (const m of messages) t.comment(`publint ${m.type}: ${formatMessage(m, pkg, { color: false })}`);
  t.same(messages.map((m) => m.code), [], 'publint --strict is clean');
});

t.test('arethetypeswrong: every entry point, every resolution mode', async (t) => {
  const ran = await run(process.execPath, [attw, tarball, '--no-definitely-typed', '--format', 'table-flipped', '--no-color', '--no-emoji'], work);
  t.comment(ran.stdout.trim());
  if (ran.stderr.trim()) t.comment(ran.stderr.trim());
  t.equal(ran.code, 0, 'attw exits 0 (default strict profile: node10, node16 CJS and ESM, bundler)');
  t.match(ran.stdout, /No problems found/, 'attw reports no problems');
});

t.test('the tarball: license, both builds, sources for the maps, nothing else', async (t) => {
  const [cjsDir] = await installs;
  const pkgDir = join(cjsDir, 'node_modules/mysql-fresh-pool');
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else files.push(relative(pkgDir, path).split('\\').join('/'));
    }
  };
  walk(pkgDir);
  for (const f of ['LICENSE', 'README.md', 'package.json', ...STUBS, 'dist/index.js', 'dist/index.d.ts', 'dist/prometheus.js',
    'dist/commonjs/index.js', 'dist/commonjs/index.d.ts', 'dist/commonjs/prometheus.js', 'dist/commonjs/package.json', 'lib/index.ts',
    ...INTEGRATIONS.flatMap((i) => [`dist/${i}/index.js`, `dist/${i}/index.d.ts`, `dist/commonjs/${i}/index.js`, `dist/commonjs/${i}/index.d.ts`])]) {
    t.ok(files.includes(f), `ships ${f}`);
  }
  t.match(readFileSync(join(pkgDir, 'LICENSE'), 'utf8'), /MIT License[\s\S]*2026 mysql-fresh-pool contributors/, 'MIT license text');
  t.same(JSON.parse(readFileSync(join(pkgDir, 'dist/commonjs/package.json'), 'utf8')), { type: 'commonjs' }, 'the CommonJS build is marked as such');
  const stray = files.filter((f) => !/^(dist|lib)\//.test(f) && !['LICENSE', 'README.md', 'package.json', ...STUBS].includes(f));
  t.same(stray, [], 'no tests, benchmarks, build scripts or configs shipped');

  const maps = files.filter((f) => f.endsWith('.map'));
  t.ok(maps.length > 60, `source and declaration maps in both builds (${maps.length})`);
  const unresolved: string[] = [];
  for (const map of maps) {
    const { sources, sourceRoot = '' } = JSON.parse(readFileSync(join(pkgDir, map), 'utf8')) as { sources: string[]; sourceRoot?: string };
    for (const source of sources) {
      const target = resolve(dirname(join(pkgDir, map)), sourceRoot, source);
      if (!target.startsWith(pkgDir + '/') || !existsSync(target)) unresolved.push(`${map} -> ${source}`);
    }
  }
  t.same(unresolved, [], 'every map source resolves inside the package');
});

t.test('CommonJS consumer: require() both entry points, a pool on a real server, errors by code', async (t) => {
  const [cjsDir] = await installs;
  writeFileSync(join(cjsDir, 'consumer.js'), `
const fp = require('mysql-fresh-pool');
const { registerPoolMetrics } = require('mysql-fresh-pool/prometheus');
const { Registry } = require('prom-client');
const out = {};
out.exports = Object.fromEntries(['createPool', 'FreshPool', 'FreshPoolError', 'ConfigError', 'ConnectError', 'AcquireTimeoutError',
  'PoolClosedError', 'TransactionLostError', 'createMysql2Adapter', 'DEFAULTS'].map((name) => [name, typeof fp[name]]));
out.registerPoolMetrics = typeof registerPoolMetrics;
out.integrations = {
  opentelemetry: typeof require('mysql-fresh-pool/opentelemetry').registerPoolMetrics,
  knex: typeof require('mysql-fresh-pool/knex').freshPoolClient,
  typeorm: typeof require('mysql-fresh-pool/typeorm').freshPoolDriver,
};
(async () => {
  const pool = fp.createPool({ connection: process.env.MYSQL_URL, max: 2, name: 'cjs' });
  const registry = new Registry();
  const unregister = registerPoolMetrics(pool, { registry });
  out.one = await pool.withConnection(async (conn) => {
    const [rows] = await conn.query('SELECT 1 AS one');
    return rows[0].one;
  });
  out.acquiresSeries = /mysql_fresh_pool_acquires_total\\{pool="cjs"\\} 1/.test(await registry.metrics());
  unregister();
  await pool.end();
  try {
    fp.createPool({ connection: process.env.MYSQL_URL, max: -1 });
  } catch (err) {
    out.configError = { code: err.code, name: err.name, field: err.field, isConfigError: err instanceof fp.ConfigError, isFreshPoolError: err instanceof fp.FreshPoolError };
  }
  const esm = await import('mysql-fresh-pool');
  try {
    esm.createPool({ connection: process.env.MYSQL_URL, max: -1 });
  } catch (err) {
    out.esmCopy = { code: err.code, sameClass: esm.ConfigError === fp.ConfigError, isCjsConfigError: err instanceof fp.ConfigError };
  }
  console.log('RESULT ' + JSON.stringify(out));
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
`);
  const ran = await mustRun(process.execPath, ['consumer.js'], cjsDir, { ...childEnv, MYSQL_URL: server.url });
  const out = result(ran);
  t.same(out.exports, {
    createPool: 'function', FreshPool: 'function', FreshPoolError: 'function', ConfigError: 'function', ConnectError: 'function',
    AcquireTimeoutError: 'function', PoolClosedError: 'function', TransactionLostError: 'function', createMysql2Adapter: 'function', DEFAULTS: 'object',
  }, 'require("mysql-fresh-pool") has the exports');
  t.equal(out.registerPoolMetrics, 'function', 'require("mysql-fresh-pool/prometheus") has registerPoolMetrics');
  t.same(out.integrations, { opentelemetry: 'function', knex: 'function', typeorm: 'function' }, 'require() of each integration entry point');
  t.equal(out.one, 1, 'SELECT 1 through withConnection on the private server');
  t.equal(out.acquiresSeries, true, 'the metrics saw that borrow');
  t.same(out.configError, { code: 'ERR_FRESH_POOL_CONFIG', name: 'ConfigError', field: 'max', isConfigError: true, isFreshPoolError: true }, 'a bad setting throws ConfigError');
  t.same(out.esmCopy, { code: 'ERR_FRESH_POOL_CONFIG', sameClass: false, isCjsConfigError: false },
    'the ESM copy of the same error: instanceof across the copies fails, code matches (the README says to match on code)');
});

// One consumer file, checked as CommonJS (node16) and as ESM (nodenext). skipLibCheck as most
// projects have it: the declaration files themselves are arethetypeswrong's part, and checking
// all of @types/node and mysql2 twice would triple the time.
const typedConsumer = `
import { createPool, ConfigError, FreshPoolError, type FreshPool, type FreshPoolConfig, type PoolStats } from 'mysql-fresh-pool';
import { registerPoolMetrics, type PoolMetricsOptions } from 'mysql-fresh-pool/prometheus';
import { Registry } from 'prom-client';
import { registerPoolMetrics as registerOtelMetrics, type PoolMetricsOptions as OtelOptions } from 'mysql-fresh-pool/opentelemetry';
import { freshPoolClient, type FreshPoolClientOptions } from 'mysql-fresh-pool/knex';
import { freshPoolDriver, type FreshPoolDriverOptions } from 'mysql-fresh-pool/typeorm';

// Each integration's entry point resolves, with its types, in this module system.
export const integrations: [typeof registerOtelMetrics, OtelOptions | undefined, typeof freshPoolClient, FreshPoolClientOptions, typeof freshPoolDriver, FreshPoolDriverOptions] =
  [registerOtelMetrics, undefined, freshPoolClient, { endPoolOnDestroy: false }, freshPoolDriver, { endPoolOnDestroy: false }];

export async function main(url: string): Promise<Record<string, unknown>> {
  const config: FreshPoolConfig = { connection: url, max: 2, name: 'typed' };
  const pool: FreshPool = createPool(config);
  const options: PoolMetricsOptions = { registry: new Registry() };
  const unregister: () => void = registerPoolMetrics(pool, options);
  const one = await pool.withConnection(async (conn) => {
    const [rows] = await conn.query('SELECT 1 AS one');
    return (rows as Array<{ one: number }>)[0]!.one;
  });
  const stats: PoolStats = pool.stats();
  unregister();
  await pool.end();
  let code: string | undefined;
  try {
    createPool({ connection: url, max: -1 });
  } catch (err) {
    if (err instanceof FreshPoolError) code = err.code;
  }
  return { one, acquires: stats.acquires, code, expected: ConfigError.code };
}
`;

/** Writes the typed consumer into `dir` and runs tsc there (both at once: they take a while). */
function typecheck(dir: string, module: 'node16' | 'nodenext', emit: boolean): Promise<Ran> {
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src/consumer.ts'), typedConsumer);
  if (emit) writeFileSync(join(dir, 'src/index.ts'), `
import { main } from './consumer.js';
console.log('RESULT ' + JSON.stringify(await main(process.env.MYSQL_URL!)));
`);
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'es2022', module, moduleResolution: module, strict: true, skipLibCheck: true, types: ['node'],
      rootDir: 'src', ...(emit ? { outDir: 'out' } : { noEmit: true }),
    },
    include: ['src'],
  }, null, 2));
  return run(process.execPath, [tsc, '-p', 'tsconfig.json'], dir);
}
const typechecks = installs.then(([cjsDir, esmDir]) => Promise.all([typecheck(cjsDir, 'node16', false), typecheck(esmDir, 'nodenext', true)]));
typechecks.catch(() => {});

t.test('CommonJS TypeScript consumer (module node16): both entry points typecheck', async (t) => {
  const [ran] = await typechecks;
  t.equal(ran.code, 0, `tsc: no errors${ran.code === 0 ? '' : `\n${ran.stdout}${ran.stderr}`}`);
});

t.test('ESM TypeScript consumer (module nodenext): typechecks and runs', async (t) => {
  const [, esmDir] = await installs;
  const [, compiled] = await typechecks;
  t.equal(compiled.code, 0, `tsc: no errors${compiled.code === 0 ? '' : `\n${compiled.stdout}${compiled.stderr}`}`);
  const ran = await mustRun(process.execPath, ['out/index.js'], esmDir, { ...childEnv, MYSQL_URL: server.url });
  t.same(result(ran), { one: 1, acquires: 1, code: 'ERR_FRESH_POOL_CONFIG', expected: 'ERR_FRESH_POOL_CONFIG' }, 'SELECT 1 on the private server; the error by code');
});
