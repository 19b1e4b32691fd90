/**
 * The pool's configuration: one DEFAULTS table, and validation that fails at `createPool`
 * with a `ConfigError` naming the field and the value, never later at first use.
 */
import type { ConnectionOptions } from 'mysql2/promise';
import type { Logger } from 'pino';
import { ConfigError } from './errors.js';

/** What `createPool` accepts. Durations are in milliseconds. */
export interface FreshPoolConfig {
  /**
   * Where to connect: a URL (`mysql://user:password@host:3306/database?charset=utf8mb4`,
   * `mariadb://` also accepted) or mysql2 `ConnectionOptions`. Required.
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
  /** A pino logger. Default: pino at level `info`, named `mysql-fresh-pool`. */
  logger?: Logger;
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

/** The validated configuration the pool runs on. */
export interface ResolvedConfig {
  readonly connection: Readonly<ConnectionOptions>;
  readonly max: number;
  readonly min: number;
  readonly maxAgeMs: number;
  /** Explicit connWaitAge, or `undefined` to derive it from the server's wait_timeout. */
  readonly connWaitAgeMs: number | undefined;
  readonly pingTimeoutMs: number;
  readonly acquireTimeoutMs: number;
  /** 0 = off. */
  readonly leakWarningAfterMs: number;
  readonly resetOnReturn: boolean;
  /** 0 = idle connections stay open. */
  readonly idleTimeoutMs: number;
  /** 0 = off. */
  readonly keepAliveIntervalMs: number;
  readonly name: string;
  readonly logger: Logger | undefined;
}

const KNOWN_KEYS = new Set([
  'connection', 'max', 'min', 'maxAge', 'connWaitAge', 'pingTimeout', 'acquireTimeout', 'leakWarningAfter', 'resetOnReturn',
  'idleTimeout', 'keepAliveInterval', 'name', 'logger',
]);

/** Checks `config` and fills in defaults. Throws `ConfigError` on the first problem found. */
export function resolveConfig(config: FreshPoolConfig): ResolvedConfig {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new ConfigError('config', config, 'expected an object');
  }
  for (const key of Object.keys(config)) {
    if (!KNOWN_KEYS.has(key)) throw new ConfigError(key, (config as unknown as Record<string, unknown>)[key], 'unknown key');
  }
  const max = integer('max', config.max ?? DEFAULTS.max, 1);
  const min = integer('min', config.min ?? DEFAULTS.min, 0);
  if (min > max) throw new ConfigError('min', min, `must not exceed max (${max})`);
  const maxAgeMs = duration('maxAge', config.maxAge ?? DEFAULTS.maxAge, true);
  const connWaitAgeMs = config.connWaitAge === undefined ? undefined : duration('connWaitAge', config.connWaitAge, true);
  if (connWaitAgeMs !== undefined && maxAgeMs !== 0 && connWaitAgeMs >= maxAgeMs) {
    throw new ConfigError('connWaitAge', connWaitAgeMs, `must be below maxAge (${maxAgeMs} ms)`);
  }
  const idleTimeoutMs = duration('idleTimeout', config.idleTimeout ?? DEFAULTS.idleTimeout, true);
  const keepAliveIntervalMs = duration('keepAliveInterval', config.keepAliveInterval ?? DEFAULTS.keepAliveInterval, true);
  if (keepAliveIntervalMs !== 0 && idleTimeoutMs !== 0 && keepAliveIntervalMs >= idleTimeoutMs) {
    throw new ConfigError('keepAliveInterval', keepAliveIntervalMs, `must be below idleTimeout (${idleTimeoutMs} ms)`);
  }
  if (keepAliveIntervalMs !== 0 && maxAgeMs !== 0 && keepAliveIntervalMs >= maxAgeMs) {
    throw new ConfigError('keepAliveInterval', keepAliveIntervalMs, `must be below maxAge (${maxAgeMs} ms)`);
  }
  return Object.freeze({
    connection: resolveConnection(config.connection),
    max,
    min,
    maxAgeMs,
    connWaitAgeMs,
    pingTimeoutMs: duration('pingTimeout', config.pingTimeout ?? DEFAULTS.pingTimeout, false),
    acquireTimeoutMs: duration('acquireTimeout', config.acquireTimeout ?? DEFAULTS.acquireTimeout, false),
    leakWarningAfterMs: duration('leakWarningAfter', config.leakWarningAfter ?? DEFAULTS.leakWarningAfter, true),
    resetOnReturn: boolean('resetOnReturn', config.resetOnReturn ?? DEFAULTS.resetOnReturn),
    idleTimeoutMs,
    keepAliveIntervalMs,
    name: poolName(config.name ?? DEFAULTS.name),
    logger: checkLogger(config.logger),
  });
}

function integer(field: string, value: unknown, least: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < least) {
    throw new ConfigError(field, value, `expected an integer >= ${least}`);
  }
  return value;
}

function poolName(value: unknown): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(value)) {
    throw new ConfigError('name', value, 'expected 1 to 64 letters, digits, or _ . : -');
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

function checkLogger(logger: unknown): Logger | undefined {
  if (logger === undefined) return undefined;
  const methods = ['debug', 'info', 'warn', 'error'] as const;
  if (logger === null || typeof logger !== 'object' || methods.some((m) => typeof (logger as Record<string, unknown>)[m] !== 'function')) {
    throw new ConfigError('logger', logger, 'expected a pino logger (debug, info, warn and error methods)');
  }
  return logger as Logger;
}

function resolveConnection(connection: unknown): Readonly<ConnectionOptions> {
  if (typeof connection === 'string') return fromUrl(connection);
  if (connection === null || typeof connection !== 'object' || Array.isArray(connection)) {
    throw new ConfigError('connection', connection, 'expected a mysql:// URL or mysql2 connection options');
  }
  const { password, uri, ...rest } = connection as ConnectionOptions;
  if (uri !== undefined) {
    if (typeof uri !== 'string') throw new ConfigError('connection.uri', uri, 'expected a string');
    const parsed = fromUrl(uri, 'connection.uri');
    return withHiddenPassword({ ...parsed, ...rest }, password ?? parsed.password);
  }
  if (rest.port !== undefined && (!Number.isInteger(rest.port) || rest.port < 1 || rest.port > 65535)) {
    throw new ConfigError('connection.port', rest.port, 'expected an integer from 1 to 65535');
  }
  return withHiddenPassword(rest, password);
}

function fromUrl(text: string, field = 'connection'): ConnectionOptions {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(field, redactUrl(text), 'not a valid URL');
  }
  if (url.protocol !== 'mysql:' && url.protocol !== 'mariadb:') {
    throw new ConfigError(field, redactUrl(text), 'expected the mysql: or mariadb: scheme');
  }
  if (url.hostname === '') throw new ConfigError(field, redactUrl(text), 'the URL has no host');
  const options: ConnectionOptions = { host: url.hostname.replace(/^\[(.*)\]$/, '$1') };
  if (url.port !== '') options.port = Number(url.port);
  if (url.username !== '') options.user = decodeURIComponent(url.username);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (database !== '') options.database = database;
  for (const [key, raw] of url.searchParams) {
    (options as Record<string, unknown>)[key] = parseParam(raw);
  }
  return withHiddenPassword(options, url.password === '' ? undefined : decodeURIComponent(url.password));
}

// Same rule as mysql2's own URL parsing: JSON where it parses (numbers, booleans, objects).
function parseParam(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** The URL with any password replaced by `***`, for errors and logs. */
export function redactUrl(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@/]*@/i, '$1:***@');
}

// pg-pool's trick: a non-enumerable password is still read by the driver but never reaches
// JSON.stringify, a spread, util.inspect or a log serializer.
function withHiddenPassword(options: ConnectionOptions, password: string | undefined): Readonly<ConnectionOptions> {
  const copy = { ...options };
  delete copy.password;
  if (password !== undefined) {
    Object.defineProperty(copy, 'password', { value: password, enumerable: false, writable: false });
  }
  return Object.freeze(copy);
}
