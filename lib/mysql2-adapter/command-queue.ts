/**
 * The command order of one adapter connection: commands run one at a time in the order they
 * were called, whatever their form, as mysql2's command queue does. Code that fires a
 * statement without awaiting it and then sends another (or releases the connection) relies
 * on that.
 */
import { ConnectionReleasedError } from '../errors.js';
import { attempt } from './callbacks.js';

/**
 * One command's place in the queue, taken when it is called. Its form may be known later: a
 * query may still become a stream until the end of the tick it was called in.
 */
export interface Command {
  /**
   * Sends the command; set once its form is known. It must call `done` exactly once, when
   * the connection is free for the next command.
   */
  start: ((done: () => void) => void) | undefined;
  /** Fails the command unsent (`destroy()`); set with `start`. */
  abort: ((err: Error) => void) | undefined;
  /** Settles the form of a query at once, as a promise query. */
  decide: (() => void) | undefined;
  /** Set when the command was dropped (`destroy()`) before its form was known. */
  aborted: Error | undefined;
}

/**
 * A connection's FIFO of commands. Once closed it takes no new command; it calls `onDrained`
 * whenever it is closed and nothing called before is left, so the owner can give the
 * connection back then (the owner makes that idempotent).
 */
export class CommandQueue {
  /** Commands called and not yet sent, oldest first. */
  #queue: Command[] = [];
  /** A command has been sent and has not finished. */
  #running = false;
  /** New commands are refused. */
  #closed = false;
  #onDrained: () => void;

  /** @param onDrained Called once closed with nothing left to send, and again on later drains. */
  constructor(onDrained: () => void) {
    this.#onDrained = onDrained;
  }

  /** True once `close()` or `destroy()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Takes the next place in the command order; undefined once the queue was closed. */
  reserve(): Command | undefined {
    if (this.#closed) return undefined;
    const command: Command = { start: undefined, abort: undefined, decide: undefined, aborted: undefined };
    this.#queue.push(command);
    return command;
  }

  /** Says how to send a reserved command; it is sent in its turn. */
  fill(command: Command, start: (done: () => void) => void, abort: (err: Error) => void): void {
    if (command.aborted !== undefined) {
      abort(command.aborted);
      return;
    }
    command.start = start;
    command.abort = abort;
    this.#next();
  }

  /**
   * Sends a reserved command with a promise outcome in its turn; rejects at once with
   * `ConnectionReleasedError` when there was no place (the queue was closed). The promise is
   * the caller's alone: left unhandled, its rejection is reported as mysql2's promise API's
   * would be.
   */
  run<T>(command: Command | undefined, send: () => Promise<T>): Promise<T> {
    if (command === undefined) return Promise.reject(new ConnectionReleasedError());
    return new Promise<T>((resolve, reject) => {
      this.fill(
        command,
        (done) => {
          // One native chain from the statement to the caller's await (no side branch), so a
          // failure's async stack trace still reaches the caller.
          resolve(attempt(send).finally(done));
        },
        reject,
      );
    });
  }

  /** Refuses new commands; those already called still run, then `onDrained`. Later calls do nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#next();
  }

  /**
   * Closes the queue and drops what is left, as mysql2 does when its connection is destroyed:
   * a command already sent finishes, and those queued behind it fail with `err`, unsent. Then
   * `closeConnection` runs, and the queue drains.
   */
  destroy(err: Error, closeConnection: () => void): void {
    this.#closed = true;
    // With nothing running, mysql2 would have sent the first command already: send it now.
    if (!this.#running) this.#queue[0]?.decide?.();
    for (const command of this.#queue.splice(0)) {
      if (command.abort === undefined) command.aborted = err;
      else command.abort(err);
    }
    try {
      closeConnection();
    } finally {
      this.#next();
    }
  }

  // Sends the commands whose turn has come, one at a time; calls onDrained once the queue
  // was closed and nothing called on it is left.
  #next(): void {
    while (!this.#running) {
      const command = this.#queue[0];
      if (command === undefined) {
        if (this.#closed) this.#onDrained();
        return;
      }
      // A query whose form is not known yet: decided by the end of the tick it was called in.
      if (command.start === undefined) return;
      this.#queue.shift();
      this.#running = true;
      let finished = false;
      command.start(() => {
        if (finished) return;
        finished = true;
        this.#running = false;
        this.#next();
      });
    }
  }
}
