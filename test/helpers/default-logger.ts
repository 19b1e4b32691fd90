/**
 * Child-process scenario for logs.test.ts: two pools whose server refuses every connect, one
 * with the default logger (pino, to stdout), one with `logger: console` (warn lines to
 * stderr). Each borrow times out after a few failed connects, which both pools log.
 * Usage: node --import=<ts loader> default-logger.ts <closed port>
 */
import { createPool } from '../../lib/index.js';
import { childLoaded } from './child.js';

childLoaded();

const url = `mysql://root@127.0.0.1:${Number(process.argv[2])}/test`;
const byDefault = createPool({ connection: url, name: 'by-default', acquireTimeout: 400 });
const byConsole = createPool({ connection: url, name: 'by-console', acquireTimeout: 400, logger: console });
for (const pool of [byDefault, byConsole]) {
  await pool.withConnection(() => undefined).catch(() => undefined);
  await pool.end();
}
