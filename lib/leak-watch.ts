/**
 * Leak warning (HikariCP's leakDetectionThreshold): a connection held longer than
 * `leakWarningAfter` ms logs a warning with the stack of the code that borrowed it, and an
 * info line when it finally comes back. Costs nothing when off.
 */
import type { PoolLog } from './log.js';

/** One watched borrow. */
export interface LeakWatch {
  readonly timer: NodeJS.Timeout;
  readonly borrowedAt: number;
  warned: boolean;
}

/**
 * Starts watching a borrow.
 * @param stack the borrower's stack, captured synchronously in its call (before any await)
 */
export function watchForLeak(log: PoolLog, connId: () => number, afterMs: number, stack: string | undefined): LeakWatch {
  const watch: LeakWatch = {
    borrowedAt: Date.now(),
    warned: false,
    timer: setTimeout(() => {
      watch.warned = true;
      log.warn({ connId: connId(), heldMs: Date.now() - watch.borrowedAt, leakWarningAfterMs: afterMs, stack }, 'connection held longer than leakWarningAfter');
    }, afterMs),
  };
  // A forgotten connection must not also keep the process alive.
  watch.timer.unref();
  return watch;
}

/** Stops watching; logs the return of a borrow that was warned about. */
export function endLeakWatch(log: PoolLog, watch: LeakWatch, connId: number): void {
  clearTimeout(watch.timer);
  if (watch.warned) log.info({ connId, heldMs: Date.now() - watch.borrowedAt }, 'leaked connection returned');
}
