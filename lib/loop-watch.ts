/**
 * Notices when the event loop has been stalled (a CPU-bound job, a synchronous call). While
 * it is, a socket's close can sit unprocessed in the kernel: mysql2 cannot know the
 * connection is dead, and a borrow made right after the stall would lend it. After a stall
 * the pool lets the loop poll its sockets once (delivering any pending 'end' / 'error') before it trusts a connection, which costs no round trip.
 *
 * The cost on the hot path is one comparison; the watch itself is one unref'd interval timer
 * and one setImmediate per tick.
 */

/** Watches for stalls; times in ms since the epoch. */
export class LoopWatch {
  #lastTurnAt = Date.now();
  #timer: NodeJS.Timeout | undefined;
  readonly #stallMs: number;
  readonly #tickMs: number;

  /**
   * @param tickMs how often the watch notes that the loop turned, ms
   * @param stallMs a loop that has not turned for longer than this, ms, counts as stalled
   */
  constructor(tickMs: number, stallMs: number) {
    this.#tickMs = tickMs;
    this.#stallMs = stallMs;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#lastTurnAt = Date.now();
    // The tick runs in the timers phase, before this iteration polls its sockets: a close that
    // arrived during a stall is still unread then, and so a borrow made by another timer due in
    // the same phase must still see the loop as stalled. The turn counts from the tick's time
    // only once a poll phase has passed, in the check phase right after it.
    this.#timer = setInterval(() => {
      const tickAt = Date.now();
      setImmediate(() => {
        this.#lastTurnAt = tickAt;
      });
    }, this.#tickMs);
    // It must never be what keeps a process alive.
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Whether the loop has not turned for longer than the stall threshold, as of `nowMs`. */
  stalled(nowMs: number): boolean {
    return nowMs - this.#lastTurnAt > this.#stallMs;
  }

  /**
   * Resolves once the loop has certainly polled its sockets. Two setImmediate hops: called
   * from an I/O callback, the first runs in this same iteration's check phase, right after a
   * poll that happened before the stall; the second runs only after the next poll.
   */
  static turn(): Promise<void> {
    return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
  }
}
