/**
 * Child-process scenario for ready-races.test.ts: end() called while ready() is still making
 * its first connection. Prints one JSON line per outcome, the last one when end() resolved,
 * then does nothing more: the process must exit by itself (nothing of the pool left open).
 * Usage: node --import=<ts loader> ready-end-child.ts <mysql url>
 */
import { createPool } from '../../lib/index.js';
import { captureLog } from './log.js';

const url = process.argv[2]!;
const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');
const pool = createPool({ connection: url, logger: captureLog().logger });

const readying = pool.ready().then(
  () => out({ ready: 'resolved' }),
  (err: { name?: string; code?: string }) => out({ ready: 'rejected', name: err.name, code: err.code }),
);
await pool.end();
await readying;
out({ step: 'ended', stats: pool.stats() });
