// Every configuration error is raised by createPool, typed, with the field and the value.
import t, { type Test } from 'tap';
import { inspect } from 'node:util';
import type { ConnectionOptions } from 'mysql2/promise';
import { describeTarget, redactUrl, resolveConfig } from '../lib/config.js';
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
  rejects(t, { connection: 'mysql://root@host:99999/db' }, 'connection.port', 99999);
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
  t.match(caught, { field: 'connection.port', value: 99999 });
  t.match(caught?.message, 'mysql://app:***@host:99999/db', 'the message names the URL, redacted');
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

// ---- Passwords never reach an error, whatever the string looks like ----

/** Every way the error may be shown or serialized. */
function renderings(err: unknown): string[] {
  const e = err as ConfigError;
  return [String(e.message), String(e.value), String(err), String(JSON.stringify(err)), String(JSON.stringify(e.value)), inspect(err), inspect(err, { showHidden: true, depth: 10 }), String(e.stack)];
}

/** The error createPool throws for `config`, or undefined when it accepts it (the pool is ended). */
async function thrownBy(config: unknown): Promise<unknown> {
  try {
    const pool = createPool(config as FreshPoolConfig);
    await pool.end();
    return undefined;
  } catch (err) {
    return err;
  }
}

// [input, fragments of the password that must never be shown]. Each password is made of
// distinctive pieces so that a piece kept by a half-right redaction is caught too.
const NASTY: Array<[string, string[]]> = [
  ['mysql://app:SekA/TailA@host/db', ['SekA', 'TailA']],
  ['mysql:app:SekB@db/shop', ['SekB']],
  ['mysql:/app:SekB2@db/shop', ['SekB2']],
  ['mysql:///app:SekB3@db/shop', ['SekB3']],
  ['mysql//app:SekB4@host/db', ['SekB4']],
  ['app:SekB5@host/db', ['SekB5']],
  ['mysql:SekB6@host/db', ['SekB6']],
  ['postgres://app:SekC@TailC@host', ['SekC', 'TailC']],
  ['mysql://app:SekC2@TailC2@host:0/db', ['SekC2', 'TailC2']],
  ['mysql://app@x:SekC3@host:0/db', ['SekC3']],
  ['mysql://app:SekD:TailD@host:0/db', ['SekD', 'TailD']],
  ['mysql://app:SekE#TailE@host/db', ['SekE', 'TailE']],
  ['mysql://app:SekF?TailF@host/db', ['SekF', 'TailF']],
  // Parse "successfully" as host `app`, port 4411, with the rest of the password in the
  // query, path or fragment: must be refused, not dialed.
  ['mysql://app:4411?TailG@host/db', ['4411', 'TailG']],
  ['mysql://app:4412/TailH@host/db', ['4412', 'TailH']],
  ['mysql://app:4413#TailH2@host/db', ['4413', 'TailH2']],
  ['mysql://app:Sek%ZZTailI@host/db', ['Sek%ZZTailI', 'TailI']],
  ['mysql://app:SekJ%40TailJ@host:0/db', ['SekJ', 'TailJ']],
  ['mysql://app:SekK%2FTailK@host:99999/db', ['SekK', 'TailK']],
  ['mysql://app:SekL%3ATailL@host:-1/db', ['SekL', 'TailL']],
  ['mysql://app:SekM@[::1]:0/db', ['SekM']],
  ['mysql://app:SekM2@[::1/db', ['SekM2']],
  ['mysql://app:SekM3/x@[::1]:3306/db', ['SekM3']],
  ['mysql://app:SekM4@[fe80::1%25eth0]:70000/db', ['SekM4']],
  ['http://app:SekN@host/db', ['SekN']],
  ['MYSQL://app:SekN2/x@host/db', ['SekN2']],
  ['  mysql://app:SekO/x@host/db  ', ['SekO']],
  ['mysql://app:Sek P@host:0/db', ['Sek P']],
  ['mysql://app:SekQ\n/TailQ@host/db', ['SekQ', 'TailQ']],
  ['mysql://:SekR/x@host/db', ['SekR']],
  ['mysql://SekS/only@host/db', ['SekS']],
  ['mysql://host:0/db?password=SekT&charset=utf8mb4', ['SekT']],
  ['mysql://app:SekU@host:0/db?password1=SekU1&password2=SekU2', ['SekU', 'SekU1', 'SekU2']],
  ['mysql://host:0/db?pass%77ord=SekV', ['SekV']],
  ['mysql://host/db?x=1&password=SekW@TailW', ['SekW', 'TailW']],
  ['mysql://app:SekX@host:0/db?x=a@b', ['SekX']],
  ['mysql://a%3Ab:SekY@host:0/db', ['SekY']],
  ['mysql://app:SekZ@', ['SekZ']],
];

t.test('a password never reaches the error, for any string, wherever the string is given', async (t) => {
  for (const [input, secrets] of NASTY) {
    const decoded = secrets.map((s) => s.replace(/%([0-9A-F]{2})/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16))));
    const never = [...new Set([...secrets, ...decoded])];
    const ways: Array<[string, unknown]> = [
      ['connection', { connection: input }],
      ['connection.uri', { connection: { uri: input } }],
      ['connection.uri with options', { connection: { uri: input, user: 'other', port: 3306 } }],
      ['config itself', input],
      ['an unknown key', { connection: 'mysql://h/db', uri: input }],
      ['an unknown key in an array', { connection: 'mysql://h/db', urls: [input] }],
      ['an array connection', { connection: [input] }],
      ['a password key', { connection: 'mysql://h/db', password: input }],
    ];
    for (const [way, config] of ways) {
      const err = await thrownBy(config);
      if (way !== 'connection.uri with options') {
        // Every one of these inputs is wrong somewhere: accepting it would dial a wrong host
        // (the part of the password before / ? # taken for a port) or fail later.
        t.ok(err instanceof ConfigError, `${JSON.stringify(input)} as ${way}: refused with ConfigError (got ${inspect(err)})`);
      }
      if (err === undefined) continue;
      const texts = renderings(err);
      for (const secret of never) {
        const shown = texts.find((text) => text.includes(secret));
        t.equal(shown, undefined, `${JSON.stringify(input)} as ${way}: ${JSON.stringify(secret)} not shown`);
      }
    }
  }
});

t.test('redactUrl holds for any string: the password goes, the rest stays when it is unambiguous', async (t) => {
  t.equal(redactUrl('mysql://app:hunter2@host:3306/db?charset=utf8mb4'), 'mysql://app:***@host:3306/db?charset=utf8mb4');
  t.equal(redactUrl('mysql://root@host/db'), 'mysql://root@host/db', 'no password: unchanged');
  t.equal(redactUrl('mysql://host/db'), 'mysql://host/db');
  t.equal(redactUrl('not a url'), 'not a url');
  t.equal(redactUrl(''), '');
  t.equal(redactUrl('mysql://app:s3cr/et@host/db'), 'mysql://app:***@host/db', 'a / in the password');
  t.equal(redactUrl('postgres://app:p@ss@host'), 'postgres://app:***@host', 'an @ in the password');
  t.equal(redactUrl('mysql://app:pa#ss@host/db'), 'mysql://app:***@host/db', 'a # in the password');
  t.equal(redactUrl('mysql://app:pa?ss@host/db'), 'mysql://app:***@host/db', 'a ? in the password');
  t.equal(redactUrl('mysql://app:p%40ss@[::1]:3306/db'), 'mysql://app:***@[::1]:3306/db', 'URL-encoded, IPv6 host');
  t.equal(redactUrl('mysql:app:hunter2@db/shop'), 'mysql:***@db/shop', 'no // after the scheme: unsure, no userinfo at all');
  t.equal(redactUrl('mysql://app@x:hunter2@host'), 'mysql://***@host', 'an @ before the colon: unsure which part is the user');
  t.equal(redactUrl('mysql://host/db?user=a&password=hunter2&x=1'), 'mysql://host/db?user=a&password=***&x=1', 'a password query parameter');
  t.equal(redactUrl('mysql://host/db?password=a@b'), 'mysql://***', 'an @ in a query password: nothing of it shown');
  t.equal(redactUrl('mysql://app:pw@'), 'mysql://app:***@');
  for (const [input, secrets] of NASTY) {
    const out = redactUrl(input);
    for (const secret of secrets) t.notOk(out.includes(secret), `${JSON.stringify(input)} -> ${JSON.stringify(out)}: no ${JSON.stringify(secret)}`);
  }
});

t.test('a valid URL: the password reaches mysql2 but no serialization of the resolved options', async (t) => {
  for (const [connection, password] of [
    ['mysql://app:p%40ss%2Fw%3Ard@host:3307/db?charset=utf8mb4', 'p@ss/w:rd'],
    [{ uri: 'mysql://app:SekV1@host/db' }, 'SekV1'],
    [{ host: 'h', user: 'app', password: 'SekV2' }, 'SekV2'],
    [{ uri: 'mysql://app:ignored@host/db', password: 'SekV3' }, 'SekV3'],
  ] as const) {
    const resolved = resolveConfig({ connection: connection as FreshPoolConfig['connection'] });
    t.equal(resolved.connection.password, password, `${inspect(connection)}: the driver still reads the password`);
    for (const text of [JSON.stringify(resolved), inspect(resolved, { depth: 5 }), JSON.stringify({ ...resolved.connection })]) {
      t.notOk(text.includes(password), `${inspect(connection)}: not in ${text}`);
    }
  }
  const mfa = resolveConfig({ connection: 'mysql://app:SekW1@host/db?password2=SekW2&password3=SekW3' }).connection;
  t.same([mfa.password, mfa.password2, mfa.password3], ['SekW1', 'SekW2', 'SekW3'], 'second and third factor passwords from the query still reach mysql2');
  for (const secret of ['SekW1', 'SekW2', 'SekW3']) t.notOk(JSON.stringify(mfa).includes(secret) || inspect(mfa).includes(secret), `${secret} hidden`);
  t.equal(resolveConfig({ connection: 'mysql://app@host/db?password1=SekW4' }).connection.password1, 'SekW4');
  t.equal(typeof resolveConfig({ connection: 'mysql://app@host/db?password2=1234' }).connection.password2, 'string', 'a numeric password stays a string');
});

t.test('ports: 1 to 65535, integers, in URLs and in options', async (t) => {
  rejects(t, { connection: 'mysql://h:0/db' }, 'connection.port', 0);
  rejects(t, { connection: 'mysql://app:pw@h:0/db' }, 'connection.port', 0);
  rejects(t, { connection: 'mysql://h:65536/db' }, 'connection.port', 65536);
  rejects(t, { connection: 'mysql://[::1]:99999/db' }, 'connection.port', 99999);
  rejects(t, { connection: { uri: 'mysql://h:0/db' } }, 'connection.port', 0);
  rejects(t, { connection: { uri: 'mysql://h:99999/db' } }, 'connection.port', 99999);
  rejects(t, { connection: { uri: 'mysql://h/db', port: 99999 } }, 'connection.port', 99999);
  rejects(t, { connection: { uri: 'mysql://h/db', port: 0 } }, 'connection.port', 0);
  rejects(t, { connection: 'mysql://h/db?port=0' }, 'connection.port', 0);
  rejects(t, { connection: 'mysql://h/db?port=99999' }, 'connection.port', 99999);
  for (const port of [0, -1, 99999, 65536, 3306.5, Number.NaN, Infinity, '3306', null]) {
    rejects(t, { connection: { host: 'h', port } }, 'connection.port', port);
  }
  // The URL's own text says where the port is: the message shows it (no password).
  let caught: ConfigError | undefined;
  try {
    createPool({ connection: 'mysql://app:SekPort@h:0/db' });
  } catch (err) {
    caught = err as ConfigError;
  }
  t.match(caught?.message, 'mysql://app:***@h:0/db', 'the message names the URL, redacted');
  for (const [connection, port] of [['mysql://h:1/db', 1], ['mysql://h:65535/db', 65535], [{ host: 'h', port: 3306 }, 3306], [{ uri: 'mysql://h:3307/db', port: 3308 }, 3308]] as const) {
    t.equal(resolveConfig({ connection }).connection.port, port, `${inspect(connection)}: accepted`);
  }
  t.equal(resolveConfig({ connection: 'mysql://h/db' }).connection.port, undefined, 'no port: mysql2 uses 3306');
  t.equal(resolveConfig({ connection: { host: 'h', port: undefined } }).connection.port, undefined);
});

t.test('describeTarget: what ConnectError says it tried to reach, never the password', async (t) => {
  const cases: Array<[ConnectionOptions, string]> = [
    [{}, 'localhost:3306'],
    [{ host: 'db.example', port: 3307, user: 'app' }, 'db.example:3307 as app'],
    [{ host: '::1', port: 3306 }, '[::1]:3306'],
    [{ socketPath: '/run/mysqld/mysqld.sock', user: 'app', host: 'ignored', port: 1 }, 'socket /run/mysqld/mysqld.sock as app'],
    [{ socketPath: '/tmp/my.sock' }, 'socket /tmp/my.sock'],
    [{ host: 'h', user: 'app', password: 'SekTarget' }, 'h:3306 as app'],
    [{ host: 'h', user: '' }, 'h:3306'],
  ];
  for (const [options, expected] of cases) t.equal(describeTarget(options), expected, inspect(options));
  t.equal(describeTarget(resolveConfig({ connection: 'mysql://app:SekTarget@[fe80::1]:3310/db' }).connection), '[fe80::1]:3310 as app');
});
