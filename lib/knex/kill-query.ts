/**
 * `KILL QUERY` for Knex's `.timeout(ms, { cancel: true })`, sent on a one-off connection
 * outside the pool, as Knex's own mysql2 client sends it. Never through the pool: the query
 * being cancelled holds one of its connections, and when it holds the last one a borrow for
 * the KILL would wait for that very query (until `acquireTimeout`) instead of stopping it.
 */
import type { ConnectionOptions } from 'mysql2';
import { DEFAULTS, describeTarget } from '../config.js';
import * as driver from '../driver.js';
import { ConnectError } from '../errors.js';
import { knexUnsupported } from './errors.js';

// What reaches the same server as the same account, and nothing of the session: no database
// (KILL needs none, and a database dropped since would fail the connect), no session options.
const ROUTE_OPTIONS = [
  'host',
  'port',
  'socketPath',
  'localAddress',
  'user',
  'ssl',
  'insecureAuth',
  'enableCleartextPlugin',
  'authPlugins',
  'authSwitchHandler',
  'connectAttributes',
  'connectTimeout',
] as const;
const SECRET_OPTIONS = ['password', 'password2', 'password3', 'passwordSha1'] as const;

// mysql2's own connect timeout when none is set; a 0 there means none at all, and a cancel
// the query's caller waits for must end.
const DEFAULT_LIMIT_MS = 10_000;

/**
 * Stops the statement running on the server connection `threadId`, reached with `config`,
 * the mysql2 options of that very connection: the KILL goes to its host and port (or socket)
 * as its user, so it reaches the server the query runs on, a cluster node included.
 *
 * Bounded by the connection's `connectTimeout` (10 s when unset or 0), for the connect and
 * again for the KILL's answer. Rejects with `ConnectError` (the driver's error as `cause`)
 * when the connection cannot be made, or with the server's own error for the KILL (e.g.
 * ER_NO_SUCH_THREAD); the password never reaches either. Rejects with
 * `UnsupportedOperationError` when the connection was made on a stream object: no second
 * connection can be made to where it leads.
 */
export async function killQuery(config: Readonly<ConnectionOptions>, threadId: number): Promise<void> {
  const options = oneOffOptions(config);
  const limitMs = typeof options.connectTimeout === 'number' && options.connectTimeout > 0 ? options.connectTimeout : DEFAULT_LIMIT_MS;
  const dialing = driver.dial(options);
  const timer = setTimeout(() => dialing.abort(new Error(`no connection within ${limitMs} ms`)), limitMs);
  let conn: driver.DriverConnection;
  try {
    conn = await dialing.done;
  } catch (err) {
    throw new ConnectError(`${describeTarget(options)} to send KILL QUERY ${threadId}`, err);
  } finally {
    clearTimeout(timer);
  }
  try {
    const watchdog = driver.destroyUnlessDoneWithin(conn, limitMs, `KILL QUERY ${threadId} got no answer within ${limitMs} ms`);
    try {
      await conn.query(`KILL QUERY ${threadId}`);
    } finally {
      watchdog.cancel();
    }
  } finally {
    await driver.close(conn, DEFAULTS.closeTimeout);
  }
}

// The secrets are copied non-enumerable: mysql2 reads them, but a log of the options, a
// spread or util.inspect does not show them.
function oneOffOptions(config: Readonly<ConnectionOptions>): ConnectionOptions {
  const source = config as Readonly<Record<string, unknown>>;
  const options: Record<string, unknown> = {};
  for (const key of ROUTE_OPTIONS) {
    if (source[key] !== undefined) options[key] = source[key];
  }
  // A stream factory makes a new stream per connection. A stream object is the query's own
  // socket: without it the connect would go to mysql2's default, localhost:3306, where the
  // same thread id may be someone else's statement.
  if (typeof source.stream === 'function') options.stream = source.stream;
  else if (source.stream != null) throw knexUnsupported('cancelQuery', 'the connection was made on a stream object, so KILL QUERY has no way to its server');
  for (const key of SECRET_OPTIONS) {
    if (source[key] !== undefined) Object.defineProperty(options, key, { value: source[key], enumerable: false });
  }
  return options as ConnectionOptions;
}
