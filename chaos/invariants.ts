/**
 * The verdict: each of the pool's promises checked against what the child reported, what
 * the database holds, what the periodic bank readings saw and how the child ended.
 */
import { ACCOUNTS, START_BALANCE, type FinalState } from './admin.js';
import type { BankReadings } from './bank-watch.js';
import type { FaultRecord } from './faults.js';
import type { Anomaly, ChildResult, FirstLoss } from './protocol.js';
import { EXIT_LIMIT_MS, POOL_SETTINGS, SERVER_CLEAN_LIMIT_MS } from './settings.js';

/** One checked promise. */
export interface Invariant {
  /** 1 writes, 2 money, 3 time, 4 errors, 5 end, or harness. */
  group: string;
  name: string;
  held: boolean;
  detail: string;
}

/** Everything the verdict is drawn from. */
export interface Evidence {
  child: ChildResult | undefined;
  /** How the child process ended; `afterEndedMs` from its "end() resolved" line to its exit. */
  exit: { code: number | null; signal: string | null; afterEndedMs: number | undefined };
  faults: FaultRecord[];
  bank: BankReadings;
  final: FinalState | undefined;
  /** The pool's connections the server still listed after end() (after waiting up to SERVER_CLEAN_LIMIT_MS). */
  leftOnServer: number[] | undefined;
  /** When the workload started (epoch ms): details show times from it. */
  originAt: number | undefined;
}

/** Which first-statement losses a fault accounts for. */
export interface LossVerdict {
  explained: Record<string, number>;
  unexplained: FirstLoss[];
  /** Each loss with the fault it was matched to (`by`), for the JSON report. */
  matched: Array<FirstLoss & { by: string | undefined }>;
}

/**
 * ms a close may take to reach the pool after the fault recorded it (the relay's hop, the
 * kernel, the pool's event loop on a busy machine). A call that started later than that
 * after a fault's last close should have been lent a connection the pool knew was dead.
 */
const SLACK_MS = 250;
/** ms a close takes to reach the pool's kernel; a close that came sooner before a stall ended was there to be read. */
const DELIVERY_MS = 50;

/** What the child saw that bears on its losses. */
export interface LossContext {
  endCalledAt: number | undefined;
  loopBlocks: ReadonlyArray<{ startedAt: number; endedAt: number }>;
  danglingSpans: ReadonlyArray<{ sentAt: number; settledAt: number }>;
}

/**
 * Matches each first-statement loss to a fault that closed connections while its call ran
 * (counting a close from when it could reach the pool: after a freeze or drop holding it).
 * Not a match:
 * - a close that landed while the pool's event loop was stalled, for a call that started
 *   after the stall: the pool must let the loop read such closes before it lends;
 * - a silently dropped flow, for a call that started longer than connWaitAge after the drop
 *   began: every connection on such a flow had been idle that long, so the pool must have
 *   pinged it (and found it dead) before lending it, unless a statement left running by an
 *   earlier call made it look freshly used.
 */
export function judgeLosses(losses: readonly FirstLoss[], faults: readonly FaultRecord[], ctx: LossContext): LossVerdict {
  // A close sent while the path was frozen or silenced reaches the pool only when it thaws
  // (or is reset): until then the pool cannot know.
  const held = faults.filter((f) => f.kind === 'freeze' || f.kind === 'drop');
  const deliveredAt = (closedAt: number) => held.reduce((at, f) => (f.startedAt <= at && at <= f.endedAt ? f.endedAt : at), closedAt);
  const windows = faults
    .filter((f) => f.closedAt !== undefined)
    .map((f) => {
      const closedAt = deliveredAt(f.closedAt!);
      return {
        kind: f.kind,
        from: f.startedAt - SLACK_MS,
        to: closedAt + SLACK_MS,
        closedAt,
        pingedAfter: f.kind === 'drop' ? f.startedAt + POOL_SETTINGS.connWaitAge + SLACK_MS : Infinity,
      };
    });
  if (ctx.endCalledAt !== undefined) windows.push({ kind: 'end', from: ctx.endCalledAt - SLACK_MS, to: Infinity, closedAt: Infinity, pingedAfter: Infinity });
  const readableAfterStall = (closedAt: number, startedAt: number) =>
    ctx.loopBlocks.some((b) => closedAt >= b.startedAt && closedAt + DELIVERY_MS <= b.endedAt && startedAt >= b.endedAt);
  const danglingAt = (at: number) => ctx.danglingSpans.some((d) => d.sentAt <= at && d.settledAt >= at);
  const verdict: LossVerdict = { explained: {}, unexplained: [], matched: [] };
  for (const loss of losses) {
    const by = windows.find(
      (w) =>
        w.from <= loss.failedAt &&
        w.to >= loss.startedAt &&
        !readableAfterStall(w.closedAt, loss.startedAt) &&
        (loss.startedAt <= w.pingedAfter || danglingAt(loss.startedAt)),
    );
    if (by) verdict.explained[by.kind] = (verdict.explained[by.kind] ?? 0) + 1;
    else verdict.unexplained.push(loss);
    verdict.matched.push({ ...loss, by: by?.kind });
  }
  return verdict;
}

const sample = (items: readonly unknown[], n = 8) => (items.length === 0 ? '' : ` e.g. ${items.slice(0, n).map((i) => JSON.stringify(i)).join(', ')}`);

/** Checks every invariant. */
export function judge(e: Evidence): { invariants: Invariant[]; losses: LossVerdict } {
  const out: Invariant[] = [];
  const check = (group: string, name: string, held: boolean, detail: string) => out.push({ group, name, held, detail });
  const { child, final } = e;
  check('harness', 'the child reported its results', child !== undefined, child ? '' : `exit code ${e.exit.code}, signal ${e.exit.signal}`);
  check('harness', 'the final state was read', final !== undefined, '');
  const losses = judgeLosses(child?.firstLosses ?? [], e.faults, { endCalledAt: child?.end.calledAt, loopBlocks: child?.loopBlocks ?? [], danglingSpans: child?.danglingSpans ?? [] });
  if (child === undefined || final === undefined) return { invariants: out, losses };

  // 1. Writes.
  const missing = child.writes.resolved.filter((k) => !final.writeKeys.has(k));
  check('1 writes', 'every acknowledged write is in the table', missing.length === 0, `${child.writes.resolved.length} acknowledged, ${missing.length} missing${sample(missing)}`);
  const unsentPresent = child.writes.notSent.filter((k) => final.writeKeys.has(k));
  check('1 writes', 'no write rejected before it was sent is in the table', unsentPresent.length === 0, `${child.writes.notSent.length} not sent, ${unsentPresent.length} present${sample(unsentPresent)}`);

  // 2. Money.
  const ledger = new Map(final.transfers.map((t) => [t.id, t]));
  const lost = child.transfers.committed.filter((id) => !ledger.has(id));
  check('2 money', 'every committed transfer is in the ledger', lost.length === 0, `${child.transfers.committed.length} committed, ${lost.length} missing${sample(lost)}`);
  const revived = child.transfers.rolledBack.filter((id) => ledger.has(id));
  check('2 money', 'no rolled-back or thrown transaction is in the ledger', revived.length === 0, `${child.transfers.rolledBack.length} rolled back, ${revived.length} present${sample(revived.map((id) => ledger.get(id)))}`);
  const poison = final.transfers.filter((t) => t.kind === 'poison');
  check('2 money', 'no transaction left open or thrown was committed', poison.length === 0, `${poison.length} of their rows in the ledger${sample(poison)}`);
  const expected = new Map(Array.from({ length: ACCOUNTS }, (_, i) => [i + 1, START_BALANCE]));
  for (const t of final.transfers) {
    expected.set(t.src, expected.get(t.src)! - (t.kind === 'poison' ? 0 : t.amount));
    expected.set(t.dst, expected.get(t.dst)! + t.amount);
  }
  const off = [...expected].filter(([id, balance]) => final.balances.get(id) !== balance).map(([id, balance]) => ({ id, expected: balance, actual: final.balances.get(id) }));
  check('2 money', 'every balance matches the ledger (transfers are atomic)', off.length === 0, `${final.transfers.length} ledger rows (${child.transfers.unknown.length} of unknown outcome), ${off.length} accounts off${sample(off)}`);
  const total = [...final.balances.values()].reduce((sum, b) => sum + b, 0);
  const expectedTotal = ACCOUNTS * START_BALANCE;
  check(
    '2 money',
    'the bank total never changed',
    total === expectedTotal && e.bank.wrong.length === 0,
    `final ${total} (expected ${expectedTotal}); ${e.bank.readings} readings during the run, ${e.bank.wrong.length} wrong${sample(e.bank.wrong)}, ${e.bank.failed} failed (server down)`,
  );

  // 3. Time.
  const slow = child.anomalies.filter((a) => a.type === 'overBound');
  const fromOrigin = (a: Anomaly) => (a.startedAt === undefined ? a : { ...a, startedAt: a.startedAt - (e.originAt ?? 0) });
  check('3 time', 'every call settled within its bound', slow.length === 0, `${slow.length} over${sample(slow.map(fromOrigin))}; slowest (less pauses) ${JSON.stringify(child.slowestMs)}`);

  // 4. Errors.
  const bad = child.anomalies.filter((a) => a.type === 'badError');
  check('4 errors', 'every rejection is a typed error or a loss in flight', bad.length === 0, `${bad.length} not allowed${sample(bad, 5)}`);
  check(
    '4 errors',
    'no dead connection lent: each first-statement loss came with a fault',
    losses.unexplained.length === 0,
    `${child.firstLosses.length} first-statement losses, at ${JSON.stringify(losses.explained)}; ${losses.unexplained.length} with no fault${sample(
      losses.unexplained.map((l) => ({ kind: l.kind, code: l.code, message: l.message, startMs: l.startedAt - (e.originAt ?? 0), failMs: l.failedAt - (e.originAt ?? 0) })),
    )}`,
  );
  const crashes = child.anomalies.filter((a) => a.type === 'unhandledRejection' || a.type === 'uncaughtException');
  check('4 errors', 'no unhandled rejection or uncaught exception', crashes.length === 0, `${crashes.length}${sample(crashes.map(fromOrigin), 3)}`);

  // 5. End.
  check('5 end', 'end() resolved', !child.end.hung, child.end.resolvedAt !== undefined && child.end.calledAt !== undefined ? `in ${child.end.resolvedAt - child.end.calledAt} ms` : 'it hung');
  const pending = child.anomalies.filter((a) => a.type === 'pendingAfterEnd');
  check('5 end', 'no call or statement still pending after end()', pending.length === 0, `${pending.length}${sample(pending)}; ${child.dangling.sent} statements left running by their calls`);
  check(
    '5 end',
    `the server lists none of the pool's connections after end() (within ${SERVER_CLEAN_LIMIT_MS} ms)`,
    e.leftOnServer !== undefined && e.leftOnServer.length === 0,
    e.leftOnServer === undefined ? 'not checked' : `${e.leftOnServer.length} left${sample(e.leftOnServer)}`,
  );
  const exitMs = e.exit.afterEndedMs;
  check(
    '5 end',
    `the child exited by itself within ${EXIT_LIMIT_MS} ms of end()`,
    exitMs !== undefined && exitMs <= EXIT_LIMIT_MS && e.exit.code === 0,
    exitMs === undefined ? `did not (exit code ${e.exit.code}, signal ${e.exit.signal})` : `after ${exitMs} ms, exit code ${e.exit.code}`,
  );
  return { invariants: out, losses };
}
