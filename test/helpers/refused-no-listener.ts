/**
 * Child-process scenario for stats-events.test.ts: a pool whose server refuses every connect,
 * with NO 'error' listener. An EventEmitter that emits 'error' without a listener throws; the
 * pool must not let that crash the process. Prints one JSON line per outcome, then ends the
 * pool and must exit by itself with code 0.
 * Usage: node --import=<ts loader> refused-no-listener.ts <closed port>
 */
import { createPool } from '../../lib/index.js';
import { childLoaded } from './child.js';
import { captureLog } from './log.js';

childLoaded();

const port = Number(process.argv[2]);
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
const log = captureLog();
const pool = createPool({ connection: `mysql://root@127.0.0.1:${port}/test`, acquireTimeout: 400, name: 'nolistener', logger: log.logger });
out({ errorListeners: pool.listenerCount('error') });
try {
  await pool.withConnection(() => 'unexpected');
  out({ borrow: 'resolved' });
} catch (err) {
  const e = err as { name?: string; code?: string; cause?: { code?: string } };
  out({ borrow: 'rejected', name: e.name, code: e.code, causeCode: e.cause?.code });
}
// Let a few more paced attempts fail while nobody waits.
await new Promise((resolve) => setTimeout(resolve, 300));
const s = pool.stats();
out({ connectAttempts: s.connectAttempts, connectFailures: s.connectFailures });
await pool.end();
out({ end: 'resolved' });
