/**
 * The orchestrator's side of the fault plan: KILL, restart, a frozen or dropped network
 * path, a lowered wait_timeout, a server that accepts no more connections. Faults run one
 * after the other at their planned times (later when the previous one overran); each is
 * recorded with when it really started and ended, so errors can be matched to it.
 */
import type { TestServer } from '../test/helpers/mariadb.js';
import { poolConnections, type Admin, type PoolUser } from './admin.js';
import type { Planned, ServerFault } from './plan.js';
import type { ChaosRelay } from './relay.js';
import { stream } from './rng.js';

/** One fault as it happened. Times are epoch ms. */
export interface FaultRecord {
  kind: string;
  plannedAtMs: number;
  startedAt: number;
  endedAt: number;
  ok: boolean;
  detail: string;
  /**
   * When the fault had closed every connection it closes (KILLs answered, the server stopped,
   * flows reset); unset for faults that close none themselves (a freeze, wait_timeout, a full
   * server). Only these can account for a statement lost on a freshly lent connection.
   */
  closedAt?: number;
}

/** What one injection did. */
interface Injected {
  detail: string;
  closedAt?: number;
}

/** What the injector acts on. */
export interface FaultTargets {
  server: TestServer;
  admin: Admin;
  relay: ChaosRelay;
  poolUser: PoolUser;
  seed: number;
  /** The server's own values, restored after each fault that changes them. */
  waitTimeoutSeconds: number;
  maxConnections: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs the server-side plan. */
export class FaultInjector {
  readonly records: FaultRecord[] = [];
  readonly #targets: FaultTargets;
  #stopped = false;
  /** A wait_timeout fault has run: connections made during it keep wait_timeout 1 s. */
  #shortWaitTimeoutSeen = false;
  readonly #wakers = new Set<() => void>();

  constructor(targets: FaultTargets) {
    this.#targets = targets;
  }

  /** Starts no further fault (the one running finishes and restores what it changed). */
  stop(): void {
    this.#stopped = true;
    for (const wake of this.#wakers) wake();
  }

  /**
   * Runs `plan`, its times counted from `originAt` (epoch ms); resolves when done or stopped.
   * Two plans may run at once (lanes); `lane` keeps their KILL draws apart.
   */
  async run(plan: ReadonlyArray<Planned<ServerFault>>, originAt: number, lane: string): Promise<void> {
    for (const [index, { atMs, fault }] of plan.entries()) {
      await this.#until(originAt + atMs);
      if (this.#stopped) return;
      const startedAt = Date.now();
      let injected: Injected;
      let ok = true;
      try {
        injected = await this.#inject(fault, `${lane}-${index}`);
      } catch (err) {
        ok = false;
        // It may have closed connections before it failed: they count until now.
        injected = { detail: `failed: ${(err as Error).message}`, closedAt: Date.now() };
      }
      this.records.push({ kind: fault.kind, plannedAtMs: atMs, startedAt, endedAt: Date.now(), ok, ...injected });
    }
  }

  async #until(at: number): Promise<void> {
    const waitMs = at - Date.now();
    if (waitMs <= 0 || this.#stopped) return;
    await new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, waitMs);
      this.#wakers.add(wake);
    });
  }

  async #inject(fault: ServerFault, id: string): Promise<Injected> {
    const { server, admin, relay } = this.#targets;
    switch (fault.kind) {
      case 'kill':
        return { detail: await this.#kill(fault.count, fault.target, id), closedAt: Date.now() };
      case 'killInStall':
        return { detail: await this.#kill(fault.count, 'idle', id), closedAt: Date.now() };
      case 'restart': {
        await server.stop();
        const closedAt = Date.now();
        this.#shortWaitTimeoutSeen = false; // every connection made with it is gone
        await sleep(fault.downMs);
        await server.start();
        return { detail: `down ${fault.downMs} ms`, closedAt };
      }
      case 'freeze': {
        // A connection still on wait_timeout 1 s sees no traffic during the freeze, so the
        // server may close it under a statement stuck in the stalled path.
        const closes = this.#shortWaitTimeoutSeen;
        await relay.freeze(fault.ms);
        return closes ? { detail: `${fault.ms} ms (after a wait_timeout fault)`, closedAt: Date.now() } : { detail: `${fault.ms} ms` };
      }
      case 'drop': {
        const flows = relay.flows;
        await relay.drop(fault.silentMs);
        return { detail: `${flows} flows silent ${fault.silentMs} ms, then reset`, closedAt: Date.now() };
      }
      case 'waitTimeout':
        this.#shortWaitTimeoutSeen = true;
        await admin.query('SET GLOBAL wait_timeout = 1');
        try {
          await sleep(fault.ms);
        } finally {
          await this.#restore(`SET GLOBAL wait_timeout = ${this.#targets.waitTimeoutSeconds}`);
        }
        return { detail: `1 s for ${fault.ms} ms` };
      case 'maxConnections': {
        await admin.query('SET GLOBAL max_connections = 1');
        let killed: Injected = { detail: '' };
        try {
          if (fault.kill > 0) killed = { detail: `, then killed ${await this.#kill(fault.kill, 'any', id)}`, closedAt: Date.now() };
          await sleep(fault.ms);
        } finally {
          await this.#restore(`SET GLOBAL max_connections = ${this.#targets.maxConnections}`);
        }
        return { ...killed, detail: `1 for ${fault.ms} ms${killed.detail}` };
      }
    }
  }

  // Victims are drawn from the fault's own stream: the same draws each run, over whichever
  // connections exist at that moment.
  async #kill(count: number, target: 'idle' | 'busy' | 'any', id: string): Promise<string> {
    const rng = stream(this.#targets.seed, `kill-${id}`);
    const rows = await poolConnections(this.#targets.admin, this.#targets.poolUser);
    const candidates = rows.filter((r) => (target === 'any' ? true : target === 'idle' ? r.command === 'Sleep' : r.command !== 'Sleep'));
    const victims: number[] = [];
    for (let i = 0; i < count && candidates.length > 0; i++) {
      victims.push(candidates.splice(Math.floor(rng.next() * candidates.length), 1)[0]!.id);
    }
    for (const id of victims) {
      // Gone already (closed by the pool meanwhile): nothing to kill.
      await this.#targets.admin.query(`KILL CONNECTION ${id}`).catch(() => undefined);
    }
    return `${target}: ${victims.length} of ${rows.length} (${victims.join(', ') || 'none'})`;
  }

  // A setting must come back even when the admin connection was lost meanwhile.
  async #restore(sql: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#targets.admin.query(sql);
        return;
      } catch (err) {
        if (attempt >= 20) throw err;
        await sleep(100);
      }
    }
  }
}
