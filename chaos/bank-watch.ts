/**
 * Reads the bank's total every few hundred ms while the run lasts, each in one consistent
 * snapshot (a single SELECT), from a connection of its own. A reading that differs from the
 * starting total means money appeared or vanished: a transfer half-applied, or a rolled-back
 * change that was committed after all.
 */
import { bankTotal, type Admin } from './admin.js';

/** What the watch saw. */
export interface BankReadings {
  readings: number;
  /** Readings that failed (the server was down, say). */
  failed: number;
  /** Readings that differed from the expected total. */
  wrong: Array<{ at: number; total: number }>;
}

/** Reads the total every `intervalMs` until stopped. */
export class BankWatch {
  readonly result: BankReadings = { readings: 0, failed: 0, wrong: [] };
  #running = true;
  #done: Promise<void> | undefined;

  constructor(
    private readonly admin: Admin,
    private readonly expectedTotal: number,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.#done = this.#loop();
  }

  async stop(): Promise<BankReadings> {
    this.#running = false;
    await this.#done;
    return this.result;
  }

  async #loop(): Promise<void> {
    while (this.#running) {
      try {
        const { total } = await bankTotal(this.admin);
        this.result.readings++;
        if (total !== this.expectedTotal) this.result.wrong.push({ at: Date.now(), total });
      } catch {
        this.result.failed++;
      }
      await new Promise((resolve) => setTimeout(resolve, this.intervalMs));
    }
  }
}
