/**
 * The connection options TypeORM hands to `createPool`, checked against the pool they cannot
 * configure: the pool's own connection options decide how to connect, so an option the
 * DataSource sets must either be one the pool's connections already use, or be refused.
 * Never silently ignored: a DataSource that says `timezone: 'Z'` or `poolSize: 50` and gets
 * something else would be a bug found in production.
 */
import mysqlCore from 'mysql2';
import type { ConnectionOptions } from 'mysql2/promise';
import { ConfigError } from '../errors.js';

/**
 * What TypeORM's MySQL driver sets on every connection unless the DataSource says otherwise
 * (`supportBigNumbers`, `bigNumberStrings`; `stringifyObjects` always). TypeORM's results
 * depend on them (BIGINT columns read as exact strings, as its `bigint` type promises) and so
 * does its escaping (an object parameter becomes a string, never a `key = value` list). Spread them
 * into `createPool`'s `connection` options for a pool TypeORM uses:
 * `createPool({ connection: { uri, ...TYPEORM_CONNECTION_DEFAULTS } })`.
 */
export const TYPEORM_CONNECTION_DEFAULTS = Object.freeze({
  supportBigNumbers: true,
  bigNumberStrings: true,
  stringifyObjects: true,
} as const satisfies ConnectionOptions);

/** mysql2 options as TypeORM's MySQL driver builds them from the DataSource options for `createPool`. */
export type TypeormPoolOptions = Readonly<Record<string, unknown>>;

/** How one option TypeORM may pass is compared with what the pool's connections use. */
interface Compared {
  /** The DataSource option it comes from, for the error. */
  readonly source: string;
  /**
   * The value as mysql2's `ConnectionConfig` would hold it. Applied to both sides: the pool's
   * value went through mysql2 already, and normalising it again changes only what mysql2 keeps
   * as given but treats as unset (an empty `database` or `socketPath`).
   */
  readonly normalize: (value: unknown) => unknown;
  /** The pool connection's value, from mysql2's `connection.config`. */
  readonly read?: (config: Readonly<Record<string, unknown>>) => unknown;
  /** Never shown in an error. */
  readonly secret?: boolean;
  /** How the error names the pool's value, when a plain value would not say enough. */
  readonly show?: (used: unknown, wanted: unknown) => string;
}

// The normalisations are mysql2's own (ConnectionConfig in lib/connection_config.js, 3.x): a
// DataSource value that connects exactly as the pool's connections do must compare equal, so
// an empty password against a pool without one is not "another password".

// mysql2 stores `options.x || false`, so 0 or '' must compare as the false it keeps.
const flag = (value: unknown) => value || false;
// mysql2 stores `options.x || undefined` (user, password), and reads '' as unset where it
// keeps the value as given (database, socketPath).
const unsetWhenEmpty = (value: unknown) => value || undefined;
const TIMEZONE = /^(?:local|Z|[ +-]\d\d:\d\d)$/;

const COMPARED: Readonly<Record<string, Compared>> = {
  host: { source: 'host', normalize: (value) => value || 'localhost' },
  port: { source: 'port', normalize: (value) => (typeof value === 'string' ? Number.parseInt(value, 10) : value) || 3306 },
  user: { source: 'username', normalize: unsetWhenEmpty },
  password: { source: 'password', normalize: unsetWhenEmpty, secret: true },
  database: { source: 'database', normalize: unsetWhenEmpty },
  socketPath: { source: 'socketPath', normalize: unsetWhenEmpty },
  charset: {
    source: 'charset',
    normalize: charsetNumber,
    read: (config) => config.charsetNumber,
    show: (used, wanted) => `collation number ${String(used)}, where the DataSource's charset is number ${String(wanted)}`,
  },
  timezone: { source: 'timezone', normalize: timezone },
  connectTimeout: { source: 'connectTimeout', normalize: (value) => (Number.isNaN(Number(value)) ? 10_000 : value) },
  insecureAuth: { source: 'insecureAuth', normalize: flag },
  supportBigNumbers: { source: 'supportBigNumbers', normalize: flag },
  bigNumberStrings: { source: 'bigNumberStrings', normalize: flag },
  decimalNumbers: { source: 'extra.decimalNumbers', normalize: flag },
  jsonStrings: { source: 'extra.jsonStrings', normalize: flag },
  dateStrings: { source: 'dateStrings', normalize: flag },
  stringifyObjects: { source: 'stringifyObjects', normalize: flag },
  multipleStatements: { source: 'multipleStatements', normalize: flag },
  trace: { source: 'trace', normalize: (value) => value !== false },
};

/** Options that cannot be compared with a connection: refused whenever set, with where they belong. */
const REFUSED: Readonly<Record<string, { readonly source: string; readonly hint: string }>> = {
  connectionLimit: { source: 'poolSize', hint: "the pool's size is createPool's max" },
  acquireTimeout: { source: 'acquireTimeout', hint: "set createPool's acquireTimeout (ms) instead" },
  ssl: { source: 'ssl', hint: "set ssl in createPool's connection options instead" },
  flags: { source: 'flags', hint: "set flags in createPool's connection options instead" },
  debug: { source: 'debug', hint: "set debug in createPool's connection options instead" },
};

const TYPEORM_DEFAULTS: Readonly<Record<string, unknown>> = TYPEORM_CONNECTION_DEFAULTS;

// An option named like a secret (password2, passwordSha1, ...) is never shown in an error.
const SECRET_NAME = /pass|pwd|secret|token|key|cred|auth/i;

const DATASOURCE = 'DataSource.';

/**
 * Refuses, before any connection is made, what the DataSource sets that the pool cannot take
 * from it: pool settings (`poolSize`, `acquireTimeout`), options that cannot be compared with
 * a connection (`ssl`, `flags`, `debug`), and whatever else `extra` adds. Unset (undefined)
 * options are what TypeORM passes for everything the DataSource leaves out: they are fine.
 * Throws `ConfigError`.
 */
export function refuseUnusable(options: TypeormPoolOptions): void {
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined || Object.hasOwn(COMPARED, key)) continue;
    const refused = REFUSED[key];
    if (refused !== undefined) {
      throw new ConfigError(
        `${DATASOURCE}${refused.source}`,
        value,
        `not applied by this pool (${refused.hint}); leave ${refused.source} (and extra.${key}) out of the DataSource options`,
      );
    }
    throw new ConfigError(
      `${DATASOURCE}extra.${key}`,
      SECRET_NAME.test(key) ? '***' : value,
      "not applied by this pool: connection options come from createPool's connection, pool settings from createPool's own; " +
        'leave it out of the DataSource options',
    );
  }
}

/**
 * Compares what the DataSource sets with what a connection of the pool uses (mysql2's
 * `connection.config`). Throws `ConfigError` on the first difference.
 */
export function checkAgainstConnection(options: TypeormPoolOptions, connectionConfig: unknown): void {
  const config = (connectionConfig ?? {}) as Readonly<Record<string, unknown>>;
  for (const [key, value] of Object.entries(options)) {
    const compared = COMPARED[key];
    if (value === undefined || compared === undefined) continue;
    const wanted = compared.normalize(value);
    const used = compared.read === undefined ? config[key] : compared.read(config);
    if (equal(wanted, compared.normalize(used))) continue;
    const field = `${DATASOURCE}${compared.source}`;
    const shown = compared.secret === true ? '***' : value;
    if (TYPEORM_DEFAULTS[key] === value) {
      throw new ConfigError(
        field,
        shown,
        `TypeORM sets ${key}: ${String(value)} unless the DataSource says otherwise, and its results or its escaping depend on it, ` +
          `but the pool's connections use ${String(used)}; add it to createPool's connection options ` +
          '(spread TYPEORM_CONNECTION_DEFAULTS), or set the same value in the DataSource',
      );
    }
    const theirs = compared.secret === true ? 'another password' : (compared.show?.(used, wanted) ?? describe(used));
    throw new ConfigError(
      field,
      shown,
      `the pool's connections use ${theirs}; connection options come from createPool: ` +
        `leave ${compared.source} out of the DataSource options, or set the same value on both`,
    );
  }
}

// TypeORM's charset name as the collation number mysql2 would send for it; without one,
// mysql2's default. A number is the pool's side, already mysql2's.
function charsetNumber(value: unknown): unknown {
  const table = (mysqlCore as unknown as { Charsets?: Readonly<Record<string, number>> }).Charsets;
  if (!value) return table?.UTF8MB4_UNICODE_CI ?? value;
  if (typeof value !== 'string') return value;
  const number = table?.[value.toUpperCase()];
  if (number === undefined) throw new ConfigError(`${DATASOURCE}charset`, value, 'not a charset or collation mysql2 knows');
  return number;
}

// A URL turns the `+` of '+01:00' into a space, which mysql2 reads back as a `+`. A zone
// mysql2 does not take (an IANA name) it replaces with 'Z', only logging it: refused here
// rather than matched against a 'Z' pool, as the DataSource asked for something else.
function timezone(value: unknown): unknown {
  if (!value) return 'local';
  if (!TIMEZONE.test(String(value))) {
    throw new ConfigError(`${DATASOURCE}timezone`, value, "not a timezone mysql2 takes ('local', 'Z' or '+HH:MM'); mysql2 would use 'Z'");
  }
  return typeof value === 'string' && value.startsWith(' ') ? `+${value.slice(1)}` : value;
}

function equal(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item, i) => Object.is(item, b[i]));
  return Object.is(a, b);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return JSON.stringify(value);
  return String(value);
}
