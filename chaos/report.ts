/** The printed report: faults, calls, rejections and invariants, as plain-text tables. */
import type { BankReadings } from './bank-watch.js';
import type { FaultRecord } from './faults.js';
import type { Invariant, LossVerdict } from './invariants.js';
import type { FaultPlan } from './plan.js';
import type { ChildResult } from './protocol.js';
import { poolSettingsFor, type RunOptions } from './settings.js';

/** A table with a header row; columns padded to their widest cell. */
export function table(header: readonly string[], rows: ReadonlyArray<readonly (string | number)[]>): string {
  const cells = [header, ...rows].map((r) => r.map(String));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

/** Faults by kind: planned, run, failed to inject, and one example. */
export function faultTable(plan: FaultPlan, records: readonly FaultRecord[], child: ChildResult | undefined): string {
  const kinds = new Map<string, { planned: number; run: number; failed: number; example: string }>();
  const row = (kind: string) => {
    let r = kinds.get(kind);
    if (!r) kinds.set(kind, (r = { planned: 0, run: 0, failed: 0, example: '' }));
    return r;
  };
  for (const { fault } of [...plan.server, ...plan.stallKills]) row(fault.kind).planned++;
  for (const { fault } of plan.pool) row(fault.kind).planned++;
  for (const f of records) {
    const r = row(f.kind);
    r.run++;
    if (!f.ok) r.failed++;
    r.example ||= f.detail;
  }
  if (child) {
    row('blockLoop').run = child.loopBlocks.length;
    row('lull').run = child.lulls;
    row('end').run = child.end.calledAt === undefined ? 0 : 1;
  }
  return table(['fault', 'planned', 'injected', 'failed', 'example'], [...kinds].map(([kind, r]) => [kind, r.planned, r.run, r.failed, r.example]));
}

/** Calls by kind. */
export function callTable(child: ChildResult): string {
  const rows = Object.entries(child.calls).sort(([a], [b]) => a.localeCompare(b)).map(([kind, c]) => [kind, c.total, c.ok, c.failed, child.slowestMs[kind] ?? 0]);
  const total = rows.reduce((sum, r) => sum + (r[1] as number), 0);
  const failed = rows.reduce((sum, r) => sum + (r[3] as number), 0);
  rows.push(['(all)', total, total - failed, failed, '']);
  rows.push(['(statements left running)', child.dangling.sent, child.dangling.resolved, child.dangling.rejected, '']);
  return table(['call', 'made', 'ok', 'failed', 'slowest ms'], rows);
}

/** Rejections by code and class, split by whether any statement of the borrow had succeeded. */
export function errorTable(child: ChildResult): string {
  const byCode = new Map<string, { cls: string; first: number; later: number; kinds: Set<string> }>();
  for (const e of child.errors) {
    const key = `${e.code}|${e.cls}`;
    let r = byCode.get(key);
    if (!r) byCode.set(key, (r = { cls: e.cls, first: 0, later: 0, kinds: new Set() }));
    if (e.first) r.first += e.count;
    else r.later += e.count;
    r.kinds.add(e.kind);
  }
  const rows = [...byCode].sort(([a], [b]) => a.localeCompare(b)).map(([key, r]) => [key.split('|')[0]!, r.cls, r.first, r.later, [...r.kinds].sort().join(' ')]);
  return rows.length === 0 ? '(none)' : table(['code', 'class', 'first stmt', 'later', 'calls'], rows);
}

/** Invariants, held or failed. */
export function invariantTable(invariants: readonly Invariant[]): string {
  return table(['group', 'result', 'invariant', 'detail'], invariants.map((i) => [i.group, i.held ? 'held' : 'FAILED', i.name, i.detail]));
}

/** What the JSON report is made from. */
export interface ReportInput {
  options: RunOptions;
  plan: FaultPlan;
  reproduce: string;
  held: boolean;
  /** When the workload started (epoch ms): the report's times are counted from it. */
  originAt: number | undefined;
  faults: readonly FaultRecord[];
  bank: BankReadings;
  losses: LossVerdict;
  invariants: readonly Invariant[];
  child: ChildResult | undefined;
}

/** The `--json` report: counts instead of the long lists, times in ms from the start. */
export function jsonReport(r: ReportInput) {
  const origin = r.originAt ?? 0;
  const child = r.child && {
    ...r.child,
    writes: { resolved: r.child.writes.resolved.length, notSent: r.child.writes.notSent.length },
    transfers: { committed: r.child.transfers.committed.length, rolledBack: r.child.transfers.rolledBack.length, unknown: r.child.transfers.unknown.length },
    firstLosses: r.child.firstLosses.length,
    danglingSpans: r.child.danglingSpans.length,
    loopBlocks: r.child.loopBlocks.map((b) => ({ startMs: b.startedAt - origin, endMs: b.endedAt - origin })),
  };
  return {
    seed: r.options.seed,
    durationMs: r.options.durationMs,
    callers: r.options.callers,
    marginMs: r.options.marginMs,
    pool: poolSettingsFor(r.options.seed),
    reproduce: r.reproduce,
    held: r.held,
    plan: { fingerprint: r.plan.fingerprint, server: r.plan.server },
    faults: r.faults.map((f) => ({ ...f, startMs: f.startedAt - origin, endMs: f.endedAt - origin })),
    bank: r.bank,
    firstStatementLosses: r.losses.matched.map((l) => ({ kind: l.kind, code: l.code, message: l.message, by: l.by ?? null, startMs: l.startedAt - origin, failMs: l.failedAt - origin })),
    invariants: r.invariants,
    child,
  };
}
