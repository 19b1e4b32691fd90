// Every configuration error is raised by createPool, typed, with the field and the value.
import t, { type Test } from 'tap';
import { inspect } from 'node:util';
import { ConfigError, createPool, FreshPoolError, type FreshPoolConfig } from '../lib/index.js';

const url = 'mysql://root@127.0.0.1:1/test'; // never contacted: min is 0 and nothing borrows

function rejects(t: Test, config: unknown, field: string, value: unknown): void {
  let caught: unknown;
  try {
    createPool(config as FreshPoolConfig);
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof ConfigError, `${field}: ConfigError`);
  t.ok(caught instanceof FreshPoolError, `${field}: a FreshPoolError`);
  const err = caught as ConfigError;
  t.equal(err.code, 'ERR_FRESH_POOL_CONFIG');
  t.equal(err.name, 'ConfigError');
  t.equal(err.field, field);
  t.same(err.value, value);
  t.match(err.message, field);
}

t.test('not an object', async (t) => {
  rejects(t, undefined, 'config', undefined);
  rejects(t, 'mysql://x', 'config', 'mysql://x');
});

t.test('unknown keys are named', async (t) => {
  rejects(t, { connection: url, maxAgeMs: 5 }, 'maxAgeMs', 5);
  rejects(t, { connection: url, connectionLimit: 5 }, 'connectionLimit', 5);
});

t.test('negative, non-numeric, infinite and oversized durations', async (t) => {
  for (const field of ['maxAge', 'connWaitAge', 'pingTimeout', 'acquireTimeout', 'leakWarningAfter', 'idleTimeout', 'keepAliveInterval']) {
    rejects(t, { connection: url, [field]: -1 }, field, -1);
    rejects(t, { connection: url, [field]: '1000' }, field, '1000');
    rejects(t, { connection: url, [field]: Number.NaN }, field, Number.NaN);
    rejects(t, { connection: url, [field]: Infinity }, field, Infinity);
    rejects(t, { connection: url, [field]: 2 ** 31 }, field, 2 ** 31);
  }
});

t.test('zero: allowed where it means something, refused where it cannot', async (t) => {
  rejects(t, { connection: url, pingTimeout: 0 }, 'pingTimeout', 0);
  rejects(t, { connection: url, acquireTimeout: 0 }, 'acquireTimeout', 0);
  const pool = createPool({ connection: url, maxAge: 0, connWaitAge: 0 });
  t.equal(pool.stats().connWaitAgeMs, 0, 'connWaitAge 0 (ping every borrow) is kept, not swallowed by a default');
  await pool.end();
});

t.test('sizes', async (t) => {
  rejects(t, { connection: url, max: 0 }, 'max', 0);
  rejects(t, { connection: url, max: 2.5 }, 'max', 2.5);
  rejects(t, { connection: url, min: -1 }, 'min', -1);
  rejects(t, { connection: url, min: 5, max: 2 }, 'min', 5);
});

t.test('connWaitAge must be below maxAge', async (t) => {
  rejects(t, { connection: url, maxAge: 1000, connWaitAge: 1000 }, 'connWaitAge', 1000);
  rejects(t, { connection: url, maxAge: 1000, connWaitAge: 5000 }, 'connWaitAge', 5000);
});

t.test('connection', async (t) => {
  rejects(t, {}, 'connection', undefined);
  rejects(t, { connection: 42 }, 'connection', 42);
  rejects(t, { connection: 'not a url' }, 'connection', 'not a url');
  rejects(t, { connection: 'postgres://root@host/db' }, 'connection', 'postgres://root@host/db');
  rejects(t, { connection: 'mysql://root@host:99999/db' }, 'connection', 'mysql://root@host:99999/db');
  rejects(t, { connection: { host: 'h', port: 70000 } }, 'connection.port', 70000);
  rejects(t, { connection: { uri: 7 } }, 'connection.uri', 7);
});

t.test('a bad URL never shows its password', async (t) => {
  let caught: ConfigError | undefined;
  try {
    createPool({ connection: 'mysql://app:hunter2-secret@host:99999/db' });
  } catch (err) {
    caught = err as ConfigError;
  }
  t.ok(caught);
  t.equal(caught?.value, 'mysql://app:***@host:99999/db');
  for (const text of [caught?.message, caught?.stack, inspect(caught), JSON.stringify(caught)]) {
    t.notMatch(String(text), 'hunter2');
  }
});

t.test('keepAliveInterval must be below idleTimeout and maxAge', async (t) => {
  rejects(t, { connection: url, idleTimeout: 1000, keepAliveInterval: 1000 }, 'keepAliveInterval', 1000);
  rejects(t, { connection: url, idleTimeout: 0, maxAge: 1000, keepAliveInterval: 2000 }, 'keepAliveInterval', 2000);
});

t.test('name and booleans', async (t) => {
  rejects(t, { connection: url, name: '' }, 'name', '');
  rejects(t, { connection: url, name: 'has space' }, 'name', 'has space');
  rejects(t, { connection: url, resetOnReturn: 'yes' }, 'resetOnReturn', 'yes');
});

t.test('logger must look like pino', async (t) => {
  rejects(t, { connection: url, logger: console.log }, 'logger', console.log);
  rejects(t, { connection: url, logger: {} }, 'logger', {});
});

t.test('a valid config builds a pool without touching the network', async (t) => {
  const pool = createPool({ connection: url, max: 3, min: 0, maxAge: 60_000, connWaitAge: 5_000, pingTimeout: 100, acquireTimeout: 100 });
  t.match(pool.stats(), { size: 0, max: 3, min: 0, connWaitAgeMs: 5_000 });
  await pool.end();
});
