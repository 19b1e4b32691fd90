/** A pool for one test: its log captured, ended at the test's teardown. */
import type { Test } from 'tap';
import { createPool, type FreshPoolConfig } from '../../lib/index.js';
import { captureLog } from './log.js';

export function loggedPool(t: Test, url: string, extra: Partial<FreshPoolConfig> = {}) {
  const log = captureLog();
  const pool = createPool({ connection: url, max: 1, logger: log.logger, ...extra });
  t.teardown(() => pool.end());
  return { pool, log };
}
