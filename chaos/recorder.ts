/**
 * The child's bookkeeping: every call's outcome by kind, every rejection by kind, code and
 * whether it came before any statement of its borrow succeeded, the writes and transfers to
 * look for in the database, and the anomalies the orchestrator judges. Kept as counts, with
 * capped lists of details, so a long run's report stays small.
 */
import type { PoolStats } from '../lib/index.js';
import { classify, codeOf } from './classify.js';
import type { Anomaly, ChildResult, ErrorCount, FirstLoss, JobKind } from './protocol.js';
import type { Call, Outcomes } from './call.js';

/** Most details kept per list; the rest are only counted. */
const DETAIL_CAP = 200;

/** Collects one run's results in the child. */
export class Recorder implements Outcomes {
  readonly #calls: ChildResult['calls'] = {};
  readonly #errors = new Map<string, ErrorCount>();
  readonly #anomalies: Anomaly[] = [];
  #anomaliesOmitted = 0;
  readonly #firstLosses: FirstLoss[] = [];
  readonly #writesResolved: number[] = [];
  readonly #writesNotSent: number[] = [];
  readonly #transfers: ChildResult['transfers'] = { committed: [], rolledBack: [], unknown: [] };
  readonly #slowestMs: Record<string, number> = {};
  readonly dangling = { sent: 0, resolved: 0, rejected: 0, pending: 0 };
  /** When each statement left running was sent and settled. */
  readonly danglingSpans: ChildResult['danglingSpans'] = [];
  readonly loopBlocks: ChildResult['loopBlocks'] = [];
  /** Lulls in the load. */
  lulls = 0;

  writeResolved(key: number): void {
    this.#writesResolved.push(key);
  }

  writeNotSent(key: number): void {
    this.#writesNotSent.push(key);
  }

  transfer(id: number, outcome: 'committed' | 'rolledBack' | 'unknown'): void {
    this.#transfers[outcome].push(id);
  }

  /** A call that resolved, `durationMs` long (monotonic), `boundMs` its limit. */
  callOk(call: Call, startedAt: number, durationMs: number, boundMs: number): void {
    this.#count(call.kind).ok++;
    this.#timing(call, startedAt, durationMs, boundMs, undefined);
  }

  /** A call that rejected with `err`. */
  callFailed(call: Call, err: unknown, startedAt: number, durationMs: number, boundMs: number): void {
    this.#count(call.kind).failed++;
    const code = codeOf(err);
    const cls = classify(err);
    const first = call.succeeded === 0;
    this.#error(call.kind, code, cls, first);
    if (cls === 'violation') this.anomaly({ type: 'badError', kind: call.kind, code, message: messageOf(err), startedAt });
    // Every one is kept: the orchestrator matches each against the faults.
    if (cls === 'inFlight' && first) this.#firstLosses.push({ kind: call.kind, code, message: messageOf(err), startedAt, failedAt: Date.now() });
    this.#timing(call, startedAt, durationMs, boundMs, code);
  }

  /** A statement left running after its call returned settled. */
  danglingSettled(err: unknown | undefined, sentAt: number): void {
    this.dangling.pending--;
    this.danglingSpans.push({ sentAt, settledAt: Date.now() });
    if (err === undefined) {
      this.dangling.resolved++;
      return;
    }
    this.dangling.rejected++;
    const code = codeOf(err);
    const cls = classify(err, true);
    // It was sent before its call returned: in flight by definition, never a "first" loss.
    this.#error('danglingStatement', code, cls, false);
    if (cls === 'violation') this.anomaly({ type: 'badError', kind: 'danglingStatement', code, message: messageOf(err) });
  }

  anomaly(anomaly: Anomaly): void {
    if (this.#anomalies.length < DETAIL_CAP) this.#anomalies.push(anomaly);
    else this.#anomaliesOmitted++;
  }

  /** The final report. */
  result(end: ChildResult['end'], poolStats: PoolStats, poolWarnings: Record<string, number>): ChildResult {
    return {
      event: 'result',
      calls: this.#calls,
      errors: [...this.#errors.values()],
      anomalies: this.#anomalies,
      anomaliesOmitted: this.#anomaliesOmitted,
      firstLosses: this.#firstLosses,
      writes: { resolved: this.#writesResolved, notSent: this.#writesNotSent },
      transfers: this.#transfers,
      dangling: { ...this.dangling },
      danglingSpans: this.danglingSpans,
      loopBlocks: this.loopBlocks,
      lulls: this.lulls,
      end,
      slowestMs: this.#slowestMs,
      poolStats,
      poolWarnings,
    };
  }

  #count(kind: JobKind) {
    const c = (this.#calls[kind] ??= { total: 0, ok: 0, failed: 0 });
    c.total++;
    return c;
  }

  #error(kind: ErrorCount['kind'], code: string, cls: ErrorCount['cls'], first: boolean): void {
    const key = `${kind}|${code}|${first}`;
    const entry = this.#errors.get(key);
    if (entry) entry.count++;
    else this.#errors.set(key, { kind, code, cls, first, count: 1 });
  }

  #timing(call: Call, startedAt: number, durationMs: number, boundMs: number, code: string | undefined): void {
    const pausedMs = call.pauses.reduce((sum, ms) => sum + ms, 0);
    const activeMs = Math.round(durationMs - pausedMs);
    if (activeMs > (this.#slowestMs[call.kind] ?? 0)) this.#slowestMs[call.kind] = activeMs;
    if (durationMs > boundMs) {
      this.anomaly({ type: 'overBound', kind: call.kind, startedAt, durationMs: Math.round(durationMs), boundMs, ...(code === undefined ? {} : { code }) });
    }
  }
}

function messageOf(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return text.slice(0, 300);
}
