// ready()'s ConnectError names what it tried to reach, as mysql2 dials it: the socket when
// socketPath is set (not localhost:3306), else host:port; never the password. No server needed.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { ConnectError, createPool, type FreshPoolConfig } from '../lib/index.js';
import { closedPort } from './helpers/delay-relay.js';
import { captureLog } from './helpers/log.js';

async function readyError(t: Test, connection: FreshPoolConfig['connection']): Promise<ConnectError> {
  const pool = createPool({ connection, logger: captureLog().logger });
  t.teardown(() => pool.end());
  const err = await pool.ready().then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof ConnectError, `ready() rejects with ConnectError (got ${String(err)})`);
  return err as ConnectError;
}

t.test('socketPath to a socket that does not exist: the message names the socket', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fresh-pool-sock-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socketPath = join(dir, 'mysqld.sock');
  const err = await readyError(t, { socketPath, user: 'app', password: 'SekSocket', host: 'db.example', port: 3307 });
  t.match(err, { code: 'ERR_FRESH_POOL_CONNECT', cause: { code: 'ENOENT' } }, "the driver's error is the cause");
  t.match(err.message, `Cannot connect to socket ${socketPath} as app:`);
  for (const wrong of ['localhost', '3306', 'db.example', '3307', 'SekSocket']) t.notMatch(err.message, wrong, `not ${wrong}`);
});

t.test('a refused TCP port: the message names host:port and the user, not the password', async (t) => {
  const port = await closedPort();
  const err = await readyError(t, `mysql://app:SekTcp@127.0.0.1:${port}/test`);
  t.match(err, { code: 'ERR_FRESH_POOL_CONNECT', cause: { code: 'ECONNREFUSED' } });
  t.match(err.message, `Cannot connect to 127.0.0.1:${port} as app:`);
  t.notMatch(`${err.message} ${inspect(err)} ${JSON.stringify(err)}`, 'SekTcp');
});
