// reconnectTimeout: how long a statement on a connection found dead waits for a new one to the
// same server. Shorter than acquireTimeout, it fails such a statement soon (nothing was sent),
// which a cluster wants for a node that crashed.
import t from 'tap';
import { AcquireTimeoutError, createPool } from '../lib/index.js';
import { startServer } from './helpers/mariadb.js';

const server = await startServer(t);
const silent = { debug() {}, info() {}, warn() {}, error() {} };

t.test('invalid values are refused at createPool, naming the field', async (t) => {
  for (const value of [0, -1, Number.NaN, '100']) {
    t.throws(() => createPool({ connection: server.url, reconnectTimeout: value as never }), { code: 'ERR_FRESH_POOL_CONFIG', field: 'reconnectTimeout' });
  }
});

t.test('a statement on a connection found dead, server down: rejects after reconnectTimeout, not acquireTimeout', { skip: !server.canRestart && 'needs to stop the server' }, async (t) => {
  const pool = createPool({ connection: server.url, max: 1, acquireTimeout: 100_000, reconnectTimeout: 300, logger: silent });
  t.teardown(() => pool.end());
  const err = await pool
    .withConnection(async (conn) => {
      await conn.query('SELECT 1');
      await server.stop();
      // The server's close reaches the connection: it is known dead before the next statement.
      await new Promise((resolve) => setTimeout(resolve, 200));
      return conn.query('SELECT 2');
    })
    .catch((e: unknown) => e);
  await server.start();
  t.ok(err instanceof AcquireTimeoutError, `AcquireTimeoutError, got ${String(err)}`);
  t.equal((err as AcquireTimeoutError).timeoutMs, 300, 'bounded by reconnectTimeout');
  t.match((err as Error).message, /ECONNREFUSED/, 'names the last failure');
  t.equal(await pool.withConnection(async (conn) => ((await conn.query('SELECT 3 AS n')) as unknown as [Array<{ n: number }>])[0][0]!.n), 3, 'the pool works once the server is back');
});
