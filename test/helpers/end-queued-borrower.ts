/**
 * Child-process scenario for end.test.ts: end() is called while one borrow runs and another
 * waits for the same (only) connection, and that connection is past maxAge when it comes
 * back, so the waiting borrow needs a brand-new connection after end(). Prints one JSON line
 * per outcome. Usage: node --import=<ts loader> end-queued-borrower.ts <mysql url>
 */
import { createPool } from '../../lib/index.js';
import { childLoaded } from './child.js';
import { captureLog } from './log.js';

childLoaded();

const url = process.argv[2]!;
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
const log = captureLog();
const pool = createPool({ connection: url, max: 1, maxAge: 300, connWaitAge: 100, acquireTimeout: 3_000, logger: log.logger });

let started!: () => void;
const running = new Promise<void>((resolve) => (started = resolve));
const a = pool.withConnection(async (conn) => {
  started();
  await conn.query('SELECT SLEEP(0.5)'); // outlives maxAge while lent
  return 'a done';
});
await running;
let bCalled = false;
const b = pool.withConnection(() => {
  bCalled = true;
  return 'b done';
});
const ended = pool.end();
out({ a: await a });
try {
  out({ b: 'resolved', value: await b, bCalled });
} catch (err) {
  const e = err as { name?: string; code?: string; message?: string };
  out({ b: 'rejected', name: e.name, code: e.code, message: e.message, bCalled });
}
await ended;
out({ end: 'resolved', stats: pool.stats() });
