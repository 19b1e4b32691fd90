/**
 * The pool's configuration: one DEFAULTS table, and validation that fails at `createPool`
 * with a `ConfigError` naming the field and the value, never later at first use.
 */
import type { ConnectionOptions } from 'mysql2/promise';
import { ConfigError } from './errors.js';
import { hasLevels, type FreshPoolLogger } from './log.js';
import { resolveSessionSetup, type OnConnect, type SessionSetup } from './session-setup.js';

/** What `createPool` accepts. Durations are in milliseconds. */
export interface FreshPoolConfig {
  /**
   * Where to connect: a URL (`mysql://user:password@host:3306/database?charset=utf8mb4`,
   * `mariadb://` also accepted; a `/ ? # @ :` in the user name or password must be
   * percent-encoded) or mysql2 `ConnectionOptions`. The port must be 1 to 65535. Required.
   */
  connection: string | ConnectionOptions;
  /** Most connections open at once. Default 10. */
  max?: number;
  /** Connections kept open even when idle. Default 0. */
  min?: number;
  /**
   * ms. A connection older than this is replaced when next borrowed (no round trip); each
   * connection's limit is shortened by a random 0–2.5 % so they do not all expire together.
   * 0 means no age limit. Default 1 800 000 (30 minutes).
   */
  maxAge?: number;
  /**
   * ms. A connection idle longer than this is pinged before it is lent. 0 pings on every
   * borrow. Default: derived from the server's `wait_timeout` (read once, from the first
   * connection) as `min(wait_timeout / 2, 30 000)`. A value at or above `wait_timeout` is
   * clamped to that and logged as a warning. Must be below `maxAge`.
   */
  connWaitAge?: number;
  /** ms. A validation ping that has not answered by then counts as failed. Default 2 000. */
  pingTimeout?: number;
  /**
   * ms. A borrow that has no connection by then rejects with `AcquireTimeoutError`.
   * Default 10 000.
   */
  acquireTimeout?: number;
  /**
   * ms. A statement about to be sent on a connection found dead (no transaction open) waits
   * this long for a new connection to the same server, then rejects with
   * `AcquireTimeoutError`; nothing was sent. Default: `acquireTimeout`. A cluster sets it to
   * `pingTimeout` on its node pools, so a write on a crashed primary fails in a second, not
   * after the whole `acquireTimeout`.
   */
  reconnectTimeout?: number;
  /**
   * ms. A connection held longer than this logs a warning with the borrower's stack, and an
   * info line when it comes back. 0 turns it off. Default 0 (off).
   */
  leakWarningAfter?: number;
  /**
   * Send COM_RESET_CONNECTION on every return, clearing session state (variables, temporary
   * tables, transaction). Costs a round trip per borrow. Default false: only a connection that
   * may have a transaction open is cleaned (ROLLBACK), which costs nothing otherwise.
   */
  resetOnReturn?: boolean;
  /**
   * ms. An idle connection beyond `min` is closed after this long unused. 0 keeps idle
   * connections open. Default 600 000 (10 minutes).
   */
  idleTimeout?: number;
  /**
   * ms. An idle connection unused for this long is pinged, so a load balancer or NAT never
   * sees it idle long enough to drop it (HikariCP's keepaliveTime). 0 turns it off. Must be
   * below `idleTimeout` and `maxAge` when those are on. Default 0 (off).
   */
  keepAliveInterval?: number;
  /** The pool's name, in logs, events and metrics labels. Default `default`. */
  name?: string;
  /**
   * Where the pool logs: a pino logger, `console`, or any object with pino's `debug`, `info`,
   * `warn` and `error` (see `FreshPoolLogger`). Every line carries `pool` (the pool's `name`).
   * Default: pino at level `info`, named `mysql-fresh-pool`, writing to stdout.
   */
  logger?: FreshPoolLogger;
  /**
   * SQL run on every new connection before it is first lent, and again after each
   * COM_RESET_CONNECTION (`resetOnReturn`, `conn.reset()`): a statement or a list, in order,
   * e.g. `"SET time_zone = '+00:00'"`. A failure closes that connection (it is never lent half
   * set up) and fails the borrow with `ConnectionSetupError`. Default: none.
   */
  initSql?: string | string[];
  /**
   * Called with each new connection (mysql2's promise API) after `initSql`, at the same
   * moments, before it is lent; may be async. Throwing fails that connection as `initSql`
   * does. Default: none.
   */
  onConnect?: OnConnect;
}

/** Defaults for every optional setting, in one place. Durations in ms. */
export const DEFAULTS = Object.freeze({
  max: 10,
  min: 0,
  maxAge: 30 * 60_000,
  pingTimeout: 2_000,
  acquireTimeout: 10_000,
  leakWarningAfter: 0,
  resetOnReturn: false,
  idleTimeout: 10 * 60_000,
  keepAliveInterval: 0,
  name: 'default',
  /** Upper bound of the derived connWaitAge, so middleboxes that drop idle flows (AWS NLB: 350 s) are caught. */
  connWaitAgeCap: 30_000,
  /** Share of maxAge that may be taken off each connection's lifetime at random. */
  maxAgeJitter: 0.025,
  /** First delay after a failed connect. */
  connectBackoffInitial: 100,
  /** Longest delay between connect attempts while the server refuses them. */
  connectBackoffMax: 2_000,
  /** How often the loop watch notes that the event loop turned. */
  loopTickMs: 25,
  /** An event loop that has not turned for longer than this is stalled: closes may be unread. */
  loopStallMs: 50,
  /** How long a graceful close (COM_QUIT) may take before the socket is destroyed. */
  closeTimeout: 1_000,
});

/**
 * How a failed statement's error points at the caller:
 * - `async` (mysql2's `trace` not set, the default): nothing is captured per statement; a
 *   failed statement's error is re-stamped where the caller awaits it, so V8's async stack
 *   trace lists the awaiting functions (`at async handler (app.ts:12)`), free on success;
 * - `capture` (`trace: true` set explicitly): mysql2's way, a stack captured on every statement;
 * - `off` (`trace: false`): neither.
 */
export type StackTraces = 'async' | 'capture' | 'off';

// mysql2 captures a stack on every statement unless `trace` is false; when the user left it
// unset, the pool stamps stacks its own way (free on success) and turns mysql2's off.
function connectionAndStacks(connection: Readonly<ConnectionOptions>): { connection: Readonly<ConnectionOptions>; stackTraces: StackTraces } {
  if (connection.trace === true) return { connection, stackTraces: 'capture' };
  if (connection.trace === false) return { connection, stackTraces: 'off' };
  const copy = Object.defineProperties({}, Object.getOwnPropertyDescriptors(connection)) as ConnectionOptions;
  Object.defineProperty(copy, 'trace', { value: false, enumerable: true });
  return { connection: Object.freeze(copy), stackTraces: 'async' };
}

/** The validated configuration the pool runs on. */
export interface ResolvedConfig {
  readonly connection: Readonly<ConnectionOptions>;
  /** How a failed statement's error gets a stack that points at the caller; see `StackTraces`. */
  readonly stackTraces: StackTraces;
  readonly max: number;
  readonly min: number;
  readonly maxAgeMs: number;
  /** Explicit connWaitAge, or `undefined` to derive it from the server's wait_timeout. */
  readonly connWaitAgeMs: number | undefined;
  readonly pingTimeoutMs: number;
  readonly acquireTimeoutMs: number;
  /** 0 = off. */
  readonly leakWarningAfterMs: number;
  /** See `reconnectTimeout`; `acquireTimeoutMs` unless set. */
  readonly reconnectTimeoutMs: number;
  readonly resetOnReturn: boolean;
  /** 0 = idle connections stay open. */
  readonly idleTimeoutMs: number;
  /** 0 = off. */
  readonly keepAliveIntervalMs: number;
  readonly name: string;
  /** The user's logger as given; the pool binds it to `name` (see `poolLog`). */
  readonly logger: FreshPoolLogger | undefined;
  /** `initSql` and `onConnect`. */
  readonly setup: SessionSetup;
}

const KNOWN_KEYS = new Set([
  'connection', 'max', 'min', 'maxAge', 'connWaitAge', 'pingTimeout', 'acquireTimeout', 'reconnectTimeout', 'leakWarningAfter', 'resetOnReturn',
  'idleTimeout', 'keepAliveInterval', 'name', 'logger', 'initSql', 'onConnect',
]);

/** Checks `config` and fills in defaults. Throws `ConfigError` on the first problem found. */
export function resolveConfig(config: FreshPoolConfig): ResolvedConfig {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new ConfigError('config', redactValue(config), 'expected an object');
  }
  for (const key of Object.keys(config)) {
    // A misplaced `password` or `uri` is the likeliest unknown key: its value is shown redacted.
    if (!KNOWN_KEYS.has(key)) throw new ConfigError(redactUrl(key), redactValue((config as unknown as Record<string, unknown>)[key], key), 'unknown key');
  }
  const max = integer('max', config.max ?? DEFAULTS.max, 1);
  const min = integer('min', config.min ?? DEFAULTS.min, 0);
  if (min > max) throw new ConfigError('min', min, `must not exceed max (${max})`);
  const maxAgeMs = duration('maxAge', config.maxAge ?? DEFAULTS.maxAge, true);
  const connWaitAgeMs = config.connWaitAge === undefined ? undefined : duration('connWaitAge', config.connWaitAge, true);
  if (connWaitAgeMs !== undefined && maxAgeMs !== 0 && connWaitAgeMs >= maxAgeMs) {
    throw new ConfigError('connWaitAge', connWaitAgeMs, `must be below maxAge (${maxAgeMs} ms)`);
  }
  const acquireTimeoutMs = duration('acquireTimeout', config.acquireTimeout ?? DEFAULTS.acquireTimeout, false);
  const idleTimeoutMs = duration('idleTimeout', config.idleTimeout ?? DEFAULTS.idleTimeout, true);
  const keepAliveIntervalMs = duration('keepAliveInterval', config.keepAliveInterval ?? DEFAULTS.keepAliveInterval, true);
  if (keepAliveIntervalMs !== 0 && idleTimeoutMs !== 0 && keepAliveIntervalMs >= idleTimeoutMs) {
    throw new ConfigError('keepAliveInterval', keepAliveIntervalMs, `must be below idleTimeout (${idleTimeoutMs} ms)`);
  }
  if (keepAliveIntervalMs !== 0 && maxAgeMs !== 0 && keepAliveIntervalMs >= maxAgeMs) {
    throw new ConfigError('keepAliveInterval', keepAliveIntervalMs, `must be below maxAge (${maxAgeMs} ms)`);
  }
  return Object.freeze({
    ...connectionAndStacks(resolveConnection(config.connection)),
    max,
    min,
    maxAgeMs,
    connWaitAgeMs,
    pingTimeoutMs: duration('pingTimeout', config.pingTimeout ?? DEFAULTS.pingTimeout, false),
    acquireTimeoutMs,
    reconnectTimeoutMs: duration('reconnectTimeout', config.reconnectTimeout ?? acquireTimeoutMs, false),
    leakWarningAfterMs: duration('leakWarningAfter', config.leakWarningAfter ?? DEFAULTS.leakWarningAfter, true),
    resetOnReturn: boolean('resetOnReturn', config.resetOnReturn ?? DEFAULTS.resetOnReturn),
    idleTimeoutMs,
    keepAliveIntervalMs,
    name: poolName(config.name ?? DEFAULTS.name),
    logger: checkLogger(config.logger),
    setup: resolveSessionSetup(config.initSql, config.onConnect),
  });
}

function integer(field: string, value: unknown, least: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < least) {
    throw new ConfigError(field, value, `expected an integer >= ${least}`);
  }
  return value;
}

/** What a pool's (or a cluster's, or a node's) name may be: it labels logs and metrics. */
export const POOL_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

function poolName(value: unknown): string {
  if (typeof value !== 'string' || !POOL_NAME.test(value)) {
    throw new ConfigError('name', value, 'expected 1 to 128 letters, digits, or _ . : -');
  }
  return value;
}

function boolean(field: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new ConfigError(field, value, 'expected true or false');
  return value;
}

function duration(field: string, value: unknown, zeroAllowed: boolean): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!zeroAllowed && value === 0)) {
    throw new ConfigError(field, value, `expected a finite number of milliseconds ${zeroAllowed ? '>= 0' : '> 0'}`);
  }
  // Node's timers take at most a signed 32-bit delay; a longer one silently fires after 1 ms.
  if (value > 2 ** 31 - 1) throw new ConfigError(field, value, 'expected at most 2147483647 ms');
  return value;
}

function checkLogger(logger: unknown): FreshPoolLogger | undefined {
  if (logger === undefined) return undefined;
  if (!hasLevels(logger)) throw new ConfigError('logger', logger, 'expected a pino logger or console (debug, info, warn and error methods)');
  return logger;
}

/** mysql2 options that hold a secret: the driver reads them, no serialization shows them. */
const SECRET_OPTIONS = ['password', 'password1', 'password2', 'password3', 'passwordSha1'] as const;
type SecretOption = (typeof SECRET_OPTIONS)[number];
type Secrets = Partial<Record<SecretOption, unknown>>;

function isSecretOption(key: string): key is SecretOption {
  return (SECRET_OPTIONS as readonly string[]).includes(key);
}

function secretsOf(options: ConnectionOptions): Secrets {
  const secrets: Secrets = {};
  // Read one by one: a caller's own non-enumerable password is not lost.
  for (const key of SECRET_OPTIONS) if (options[key] !== undefined) secrets[key] = options[key];
  return secrets;
}

function resolveConnection(connection: unknown): Readonly<ConnectionOptions> {
  if (typeof connection === 'string') return fromUrl(connection, 'connection');
  if (connection === null || typeof connection !== 'object' || Array.isArray(connection)) {
    throw new ConfigError('connection', redactValue(connection), 'expected a mysql:// URL or mysql2 connection options');
  }
  const options = connection as ConnectionOptions;
  const { uri, ...rest } = options;
  checkPort(rest.port, '');
  if (uri === undefined) return withHiddenSecrets(rest, secretsOf(options));
  if (typeof uri !== 'string') throw new ConfigError('connection.uri', redactValue(uri), 'expected a string');
  const parsed = fromUrl(uri, 'connection.uri');
  // Options given beside the uri win over the uri's own, as in mysql2.
  return withHiddenSecrets({ ...parsed, ...rest }, { ...secretsOf(parsed), ...secretsOf(options) });
}

const PORT_FIELD = 'connection.port';

/** @param where where the port was written, for the message (`''` for connection options) */
function checkPort(port: unknown, where: string): void {
  if (port === undefined) return;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(PORT_FIELD, port, `expected an integer from 1 to 65535${where}`);
  }
}

function fromUrl(text: string, field: string): ConnectionOptions {
  const shown = redactUrl(text);
  const invalid = (problem: string) => new ConfigError(field, shown, problem);
  const encodeHint = 'a / ? # @ or : in the user name or password must be percent-encoded (%2F %3F %23 %40 %3A)';
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    const port = portInText(text);
    if (port !== undefined) checkPort(port, ` (in ${shown})`);
    throw invalid(text.includes('@') ? `not a valid URL; ${encodeHint}` : 'not a valid URL');
  }
  if (url.protocol !== 'mysql:' && url.protocol !== 'mariadb:') throw invalid('expected the mysql: or mariadb: scheme');
  if (url.hostname === '') throw invalid('the URL has no host');
  // The parser ends a password at its first / ? or #, so a password holding one parses as
  // user `app`, host = the text before the password, port = the password's start, and the
  // rest of it, with its @, lands in the path, query or fragment. Refused, not dialed.
  if (`${url.pathname}${url.search}${url.hash}`.includes('@')) throw invalid(`an @ after the host; ${encodeHint}`);
  const decode = (part: string, what: string): string => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw invalid(`the ${what} is not valid percent-encoding`);
    }
  };
  const options: ConnectionOptions = { host: url.hostname.replace(/^\[(.*)\]$/, '$1') };
  if (url.port !== '') options.port = Number(url.port);
  if (url.username !== '') options.user = decode(url.username, 'user name');
  const database = decode(url.pathname.replace(/^\//, ''), 'database name');
  if (database !== '') options.database = database;
  const secrets: Secrets = {};
  for (const [key, raw] of url.searchParams) {
    // A password is text even when it looks like a number or JSON.
    if (isSecretOption(key)) secrets[key] = raw;
    else (options as Record<string, unknown>)[key] = parseParam(raw);
  }
  if (url.password !== '') secrets.password = decode(url.password, 'password');
  checkPort(options.port, ` (in ${shown})`);
  return withHiddenSecrets(options, secrets);
}

/**
 * The port written in a URL the parser refused, when one can be told: after the last @ (or
 * `scheme://`), up to the first / ? or #. Lets `mysql://h:99999/db` be reported as a port.
 */
function portInText(text: string): number | undefined {
  const m = /^[\x00-\x20]*[A-Za-z][A-Za-z0-9+.-]*:\/\/(?:.*@)?(?:\[[^\]]*\]|[^/?#[\]:@]*):(-?\d+)(?:[/?#]|[\x00-\x20]*$)/s.exec(text);
  return m === null ? undefined : Number(m[1]);
}

// Same rule as mysql2's own URL parsing: JSON where it parses (numbers, booleans, objects).
function parseParam(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** Query parameters whose values are hidden by `redactUrl`: names that may hold a secret. */
const SECRET_PARAM = /pass|pwd|secret|token|key|cred|auth|ssl/i;

/**
 * `text` with everything that may be a password replaced by `***`, for errors and logs.
 * Holds for any string, a URL or not: the userinfo (all before the last `@`, since an
 * unencoded password may hold `@ / ? # :`) keeps only a plain user name right after
 * `scheme://`, and is hidden whole when it is unclear where the user name ends; the values
 * of query parameters named like a secret (`password`, `password2`, `ssl`, ...) are hidden.
 */
export function redactUrl(text: string): string {
  const hidden: Array<[number, number]> = [];
  const at = text.lastIndexOf('@');
  if (at !== -1) {
    const lead = /^[\x00-\x20]*(?:[A-Za-z][A-Za-z0-9+.-]*:([/\\]*))?/.exec(text);
    const start = lead?.[0].length ?? 0;
    const userinfo = text.slice(start, at);
    const user = /^[A-Za-z0-9._~!$&'()*+,;=%-]*(?=:|$)/.exec(userinfo)?.[0];
    if (lead?.[1] === '//' && user !== undefined) {
      if (user.length < userinfo.length) hidden.push([start + user.length + 1, at]);
    } else {
      hidden.push([start, at]);
    }
  }
  for (const m of text.matchAll(/[?&]([^=&?#]*)=/g)) {
    if (!SECRET_PARAM.test(m[1]!) && !SECRET_PARAM.test(decodeLoosely(m[1]!))) continue;
    const from = m.index + m[0].length;
    const amp = text.indexOf('&', from);
    hidden.push([from, amp === -1 ? text.length : amp]);
  }
  const merged: Array<[number, number]> = [];
  for (const [from, to] of hidden.filter(([from, to]) => to > from).sort((a, b) => a[0] - b[0])) {
    const last = merged.at(-1);
    if (last !== undefined && from <= last[1]) last[1] = Math.max(last[1], to);
    else merged.push([from, to]);
  }
  let out = '';
  let pos = 0;
  for (const [from, to] of merged) {
    out += `${text.slice(pos, from)}***`;
    pos = to;
  }
  return out + text.slice(pos);
}

function decodeLoosely(part: string): string {
  try {
    return decodeURIComponent(part.replace(/\+/g, ' '));
  } catch {
    return part;
  }
}

/**
 * `value` as an error may hold it: strings through `redactUrl`, the whole value under a key
 * named like a secret, arrays and plain objects copied the same way (other objects as they are).
 */
function redactValue(value: unknown, key = '', depth = 0): unknown {
  if (value === undefined || value === null) return value;
  if (SECRET_PARAM.test(key)) return '***';
  if (typeof value === 'string') return redactUrl(value);
  if (typeof value !== 'object') return value;
  const proto = Object.getPrototypeOf(value) as unknown;
  if (!Array.isArray(value) && proto !== Object.prototype && proto !== null) return value;
  if (depth >= 4) return Array.isArray(value) ? '[an array]' : '[an object]';
  if (Array.isArray(value)) return value.map((item) => redactValue(item, '', depth + 1));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactValue(v, k, depth + 1)]));
}

/**
 * What `ConnectError` names as the server it tried: `socket /run/mysqld/mysqld.sock as app`
 * or `db.example:3306 as app` (an IPv6 host in brackets), as mysql2 would dial it: the socket
 * when `socketPath` is set, else `host` (default `localhost`) and `port` (default 3306). Never
 * the password.
 */
export function describeTarget(connection: Readonly<ConnectionOptions>): string {
  const as = connection.user ? ` as ${connection.user}` : '';
  // mysql2 tests these options for truthiness, so an empty string or port 0 means the default.
  if (connection.socketPath) return `socket ${connection.socketPath}${as}`;
  const host = connection.host ? connection.host : 'localhost';
  const port = connection.port ? connection.port : 3306;
  return `${host.includes(':') ? `[${host}]` : host}:${port}${as}`;
}

// pg-pool's trick: a non-enumerable password is still read by the driver but never reaches
// JSON.stringify, a spread, util.inspect or a log serializer.
function withHiddenSecrets(options: ConnectionOptions, secrets: Secrets): Readonly<ConnectionOptions> {
  const copy: Record<string, unknown> = { ...options };
  for (const key of SECRET_OPTIONS) {
    delete copy[key];
    if (secrets[key] !== undefined) Object.defineProperty(copy, key, { value: secrets[key], enumerable: false, writable: false });
  }
  return Object.freeze(copy) as Readonly<ConnectionOptions>;
}
