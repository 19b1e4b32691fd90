/**
 * What a chaos call carries while it runs (how far it got, how long it paused on purpose)
 * and what the jobs need from the child: the pool, the adapter, and where to record the
 * outcomes the orchestrator later looks for in the database.
 */
import type { FreshPool, Mysql2PoolAdapter } from '../lib/index.js';
import type { JobKind } from './protocol.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One call in progress: how far it got and how long it paused on purpose. */
export class Call {
  /** Statements of this borrow that succeeded so far. */
  succeeded = 0;
  /** Deliberate pauses, ms. */
  readonly pauses: number[] = [];

  constructor(readonly kind: JobKind) {}

  /** Runs one statement, counting it when it succeeds. */
  async q<T>(statement: PromiseLike<T>): Promise<T> {
    const result = await statement;
    this.succeeded++;
    return result;
  }

  /** Sleeps `ms` with the connection held. */
  async pause(ms: number): Promise<void> {
    this.pauses.push(ms);
    await sleep(ms);
  }
}

/** What the orchestrator checks against the database afterwards. */
export interface Outcomes {
  writeResolved(key: number): void;
  writeNotSent(key: number): void;
  transfer(id: number, outcome: 'committed' | 'rolledBack' | 'unknown'): void;
}

/** What a job needs. */
export interface WorkloadEnv {
  readonly pool: FreshPool;
  readonly adapter: Mysql2PoolAdapter;
  readonly outcomes: Outcomes;
  /** This caller's index (its row in `holds`). */
  readonly caller: number;
  nextKey(): number;
  nextTransferId(): number;
  /** Tracks a statement left running after its call returned; `key` when it is a write. */
  dangle(statement: PromiseLike<unknown>, key: number | undefined): void;
}
