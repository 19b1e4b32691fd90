// Every line the pool logs carries `pool` (its name), whatever logger it was given: the
// default pino, a user's pino, `console`, or an object with pino's four methods. A logged
// error is the Error itself, so pino's serializer prints its type, message, code and stack
// (not `{"type":"Object", "stack": ""}`, as a copied `{ message, code }` printed).
import t, { type Test } from 'tap';
import { pino } from 'pino';
import { createPool, type FreshPoolLogger } from '../lib/index.js';
import { runChild } from './helpers/child.js';
import { closedPort } from './helpers/delay-relay.js';
import { captureLog, type LogLine } from './helpers/log.js';
import { busyWait, startServer } from './helpers/mariadb.js';

const server = await startServer(t);

/** Asserts `err` is what pino's err serializer makes of a real Error: type, message, code, stack. */
function assertSerializedError(t: Test, err: unknown, what: string): void {
  const e = err as { type?: unknown; message?: unknown; code?: unknown; stack?: unknown } | undefined;
  t.type(e, 'object', `${what}: err is an object`);
  t.match(e?.type, /^[A-Za-z]*Error$/, `${what}: err.type is the error class (${String(e?.type)})`);
  t.not(e?.type, 'Object', `${what}: not a plain object copy`);
  t.match(e?.message, /\S/, `${what}: err.message`);
  t.match(e?.code, /^[A-Z_0-9]+$/, `${what}: err.code (${String(e?.code)})`);
  t.match(e?.stack, /\n\s+at /, `${what}: err.stack has frames`);
}

function everyLineNamesThePool(t: Test, lines: readonly LogLine[], name: string): void {
  const others = lines.filter((l) => l.pool !== name).map((l) => `${l.msg}: pool=${String(l.pool)}`);
  t.same(others, [], `all ${lines.length} lines carry pool: ${name}`);
}

t.test('a user pino logger: every line carries the pool name; an evicted connection logs its error', async (t) => {
  const log = captureLog();
  const name = 'orders';
  const pool = createPool({ connection: server.url, max: 1, connWaitAge: 100, leakWarningAfter: 50, name, logger: log.logger });
  await pool.ready();
  // A leak warning and its all-clear.
  await pool.withConnection(() => new Promise((resolve) => setTimeout(resolve, 150)));
  // A connection killed while the loop was busy: found dead at the next borrow.
  const killedId = await pool.withConnection(async (c) => c.threadId);
  server.killSync([killedId]);
  busyWait(200);
  await pool.withConnection((c) => c.query('SELECT 1'));
  await pool.end();

  const messages = new Set(log.lines.map((l) => l.msg));
  for (const msg of ['connection created', 'server wait_timeout read', 'connection held longer than leakWarningAfter', 'leaked connection returned', 'connection evicted', 'pool ended']) {
    t.ok(messages.has(msg), `logged: ${msg}`);
  }
  everyLineNamesThePool(t, log.lines, name);
  const eviction = log.find('connection evicted').find((l) => l.connId === killedId);
  t.ok(eviction, 'the killed connection was evicted');
  t.match(eviction?.reason, /^(pingFailed|closedByServer|connectionError)$/, `found dead (${String(eviction?.reason)})`);
  assertSerializedError(t, eviction?.err, 'eviction');
  t.notMatch(log.text(), /"type":"Object"/, 'no error logged as a plain object');
});

t.test('connect failures: warn lines with the pool name and the real error', async (t) => {
  const port = await closedPort();
  // A user's pino with serializers of its own still has pino's `err` serializer.
  const log = captureLog('debug', { serializers: { connId: (id: unknown) => id } });
  const pool = createPool({ connection: `mysql://root@127.0.0.1:${port}/test`, name: 'refused-pool', acquireTimeout: 400, logger: log.logger });
  await t.rejects(pool.withConnection(() => undefined), { code: 'ERR_FRESH_POOL_ACQUIRE_TIMEOUT' });
  await pool.end();
  const failed = log.find('connect failed');
  t.ok(failed.length >= 1, `connect failed logged (${failed.length})`);
  t.equal(failed[0]?.level, 40, 'as a warning');
  assertSerializedError(t, failed[0]?.err, 'connect failed');
  t.equal((failed[0]?.err as { code?: unknown } | undefined)?.code, 'ECONNREFUSED');
  everyLineNamesThePool(t, log.lines, 'refused-pool');
});

t.test('a logger without child(): pool is added to the fields', async (t) => {
  const lines: Array<{ level: string; fields: Record<string, unknown>; msg: string }> = [];
  const at = (level: string) => (fields: object, msg: string) => void lines.push({ level, fields: fields as Record<string, unknown>, msg });
  const logger: FreshPoolLogger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  const pool = createPool({ connection: server.url, max: 1, name: 'plain-logger', logger });
  await pool.query('SELECT 1');
  await pool.end();
  t.ok(lines.length >= 2, `${lines.length} lines`);
  t.same(lines.filter((l) => l.fields.pool !== 'plain-logger'), [], 'every line carries pool');
  t.ok(lines.some((l) => l.msg === 'connection created' && typeof l.fields.connId === 'number'), 'fields kept beside pool');
});

t.test('the default logger and console: every line names the pool; errors print with their stack', async (t) => {
  const port = await closedPort();
  const r = await runChild('./default-logger.ts', [String(port)], { runMs: 30_000 });
  t.equal(r.exitCode, 0, `the child exits by itself (stderr: ${r.stderr.slice(-2_000)})`);
  // Default: pino JSON lines on stdout.
  const pinoLines = r.lines.filter((l): l is LogLine => typeof l === 'object' && l !== null && 'msg' in l);
  t.ok(pinoLines.length >= 1, `the default logger wrote ${pinoLines.length} lines`);
  everyLineNamesThePool(t, pinoLines, 'by-default');
  t.ok(pinoLines.every((l) => l.name === 'mysql-fresh-pool'), 'named mysql-fresh-pool');
  t.notOk(pinoLines.some((l) => l.level < 30), 'at level info: no debug lines');
  const failed = pinoLines.find((l) => l.msg === 'connect failed');
  assertSerializedError(t, failed?.err, 'default logger');
  // console: the message first, then the fields, as util.inspect prints them (warn: stderr).
  const warned = r.stderr.match(/^connect failed \{/gm)?.length ?? 0;
  t.ok(warned >= 1, `console.warn wrote connect failed (${warned})`);
  t.equal(r.stderr.match(/^connect failed \{\s*pool: 'by-console',/gm)?.length ?? 0, warned, 'each names the pool');
  t.match(r.stderr, /err: Error: connect ECONNREFUSED[^\n]*\n\s+at /, 'the error with its stack');
  t.match(r.stderr, /code: 'ECONNREFUSED'/, 'and its code');
  t.match(r.stdout, /^pool ended \{\s*pool: 'by-console'/m, 'debug lines through console.debug (stdout)');
});

t.test('types: pino, console and a hand-made logger are accepted; an incomplete one is not', async (t) => {
  const url = 'mysql://root@127.0.0.1:1/test'; // never contacted
  const pools = [
    createPool({ connection: url, logger: console }),
    createPool({ connection: url, logger: pino({ level: 'silent' }) }),
    createPool({ connection: url, logger: { debug() {}, info() {}, warn() {}, error() {} } }),
  ];
  // @ts-expect-error a logger needs all four levels
  t.throws(() => createPool({ connection: url, logger: { info() {}, warn() {} } }), { code: 'ERR_FRESH_POOL_CONFIG', field: 'logger' });
  t.equal(pools.length, 3);
  // Not ended: they never connect, and end()'s debug line would reach TAP's stdout via console.debug.
});
