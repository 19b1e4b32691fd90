/**
 * What the child (the pool's process) tells the orchestrator: one JSON object per stdout
 * line. Times named `...At` are epoch ms (`Date.now()`, the same clock in both processes);
 * durations are measured with the monotonic clock.
 */
import type { PoolStats } from '../lib/index.js';
import type { ErrorClass } from './classify.js';

/** The kinds of call the workload makes. */
export type JobKind =
  | 'read'
  | 'readExecute'
  | 'readAdapter'
  | 'slowRead'
  | 'write'
  | 'writeExecute'
  | 'writeAdapter'
  | 'transfer'
  | 'transferAdapter'
  | 'txThrow'
  | 'leftOpen'
  | 'dangling'
  | 'hold'
  | 'holdTx';

/** What the orchestrator passes to the child (as one JSON argument). */
export interface ChildArgs {
  url: string;
  seed: number;
  durationMs: number;
  callers: number;
  marginMs: number;
  canRestart: boolean;
}

/** Rejections of one kind of call with one code. */
export interface ErrorCount {
  kind: JobKind | 'danglingStatement';
  code: string;
  cls: ErrorClass;
  /** Whether it failed before any statement of its borrow had succeeded. */
  first: boolean;
  count: number;
}

/** Something the child saw that may break the promise; judged by the orchestrator. */
export interface Anomaly {
  type: 'overBound' | 'badError' | 'unhandledRejection' | 'uncaughtException' | 'pendingAfterEnd';
  kind?: string;
  code?: string;
  message?: string;
  startedAt?: number;
  durationMs?: number;
  boundMs?: number;
}

/** A connection-level error on the first statement of a borrow. */
export interface FirstLoss {
  kind: JobKind;
  code: string;
  /** The driver's message: it says who closed the connection. */
  message: string;
  startedAt: number;
  failedAt: number;
}

/** What became of each transfer, by its ledger id. */
export interface TransferOutcomes {
  /** withTransaction (or COMMIT) resolved: must be in the ledger. */
  committed: number[];
  /** Rejected before COMMIT was sent, or thrown on purpose: must not be. */
  rolledBack: number[];
  /** COMMIT's outcome unknown: either. */
  unknown: number[];
}

/** The child's final report. */
export interface ChildResult {
  event: 'result';
  calls: Record<string, { total: number; ok: number; failed: number }>;
  errors: ErrorCount[];
  anomalies: Anomaly[];
  /** Anomalies left out to keep the report small, by type. */
  anomaliesOmitted: number;
  firstLosses: FirstLoss[];
  writes: { resolved: number[]; notSent: number[] };
  transfers: TransferOutcomes;
  dangling: { sent: number; resolved: number; rejected: number; pending: number };
  /** Epoch ms; a connection given back with one still running looks freshly used to the pool. */
  danglingSpans: Array<{ sentAt: number; settledAt: number }>;
  loopBlocks: Array<{ startedAt: number; endedAt: number }>;
  lulls: number;
  end: { calledAt: number | undefined; resolvedAt: number | undefined; hung: boolean };
  /** Slowest call of each kind, ms, less its deliberate pauses. */
  slowestMs: Record<string, number>;
  poolStats: PoolStats;
  poolWarnings: Record<string, number>;
}

/** Every line the child prints. */
export type ChildLine =
  | { event: 'started'; at: number }
  | { event: 'ending'; at: number }
  | { event: 'ended'; at: number; endMs: number }
  | { event: 'endHung'; at: number }
  | ChildResult;
