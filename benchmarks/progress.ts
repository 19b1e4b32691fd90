/**
 * Progress on stderr. On a terminal: one live line (step, what runs now, a bar, time left in
 * the step and in all), redrawn as work moves and once a second, and a line kept per finished
 * step. Elsewhere (CI, a pipe, a file): one line as each step starts, and one at the end.
 */

export interface Step {
  title: string;
  /** Planned duration, ms: the time-left figures start from it. */
  planMs: number;
  /**
   * Steps of one kind (the throughput workloads) whose plans are known to be close: how long
   * the first ones really took rescales the plans of the rest. Other plans are taken as they are.
   */
  paced?: boolean;
}

const clock = (ms: number) => {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};

export class Progress {
  private readonly tty: boolean;
  private readonly startedAt = performance.now();
  private index = -1;
  private stepStartedAt = 0;
  private fraction = 0;
  private detail = '';
  private timer: NodeJS.Timeout | undefined;
  /** Actual ÷ planned time of the paced steps so far: scales the plan of those still to come. */
  private pace = 1;
  private plannedDone = 0;
  private actualDone = 0;

  constructor(
    private readonly steps: Step[],
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(out.isTTY) && process.env.TERM !== 'dumb';
  }

  /** A line of its own, kept above the live line. */
  say(line: string): void {
    this.out.write(this.tty ? `\r\x1b[K${line}\n` : `${line}\n`);
    if (this.tty && this.index >= 0 && this.index < this.steps.length) this.draw();
  }

  /** Starts step `index` (in the order given to the constructor). */
  begin(index: number): void {
    this.finishStep();
    this.index = index;
    this.stepStartedAt = performance.now();
    this.fraction = 0;
    this.detail = '';
    const step = this.steps[index]!;
    if (this.tty) {
      this.timer ??= setInterval(() => this.draw(), 1_000).unref();
      this.draw();
    } else {
      this.out.write(`${this.label()} ${step.title} (about ${clock(this.planOf(step))}; about ${clock(this.leftInAll())} left in all)\n`);
    }
  }

  /** How far the current step is, 0 to 1, and what runs now. */
  tick = (fraction: number, detail: string): void => {
    this.fraction = Math.min(1, Math.max(0, fraction));
    this.detail = detail;
    if (this.tty) this.draw();
  };

  /** Ends the last step and says how long it all took. */
  end(): void {
    this.finishStep();
    this.index = this.steps.length;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.out.write(`${this.tty ? '\r\x1b[K' : ''}benchmark done in ${clock(performance.now() - this.startedAt)}\n`);
  }

  /** Stops redrawing (on an error), leaving the line as it is. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.tty) this.out.write('\n');
  }

  private finishStep(): void {
    if (this.index < 0 || this.index >= this.steps.length) return;
    const step = this.steps[this.index]!;
    const took = performance.now() - this.stepStartedAt;
    if (step.paced) {
      this.plannedDone += step.planMs;
      this.actualDone += took;
      this.pace = this.actualDone / Math.max(1, this.plannedDone);
    }
    if (this.tty) this.out.write(`\r\x1b[K${this.label()} ${step.title}: done in ${clock(took)}\n`);
  }

  private planOf(step: Step): number {
    return step.paced ? step.planMs * this.pace : step.planMs;
  }

  private label(): string {
    return `[${this.index + 1}/${this.steps.length}]`;
  }

  private leftInStep(): number {
    const step = this.steps[this.index]!;
    const elapsed = performance.now() - this.stepStartedAt;
    // Early on, the plan is the better guess; later, the pace the step actually keeps.
    if (this.fraction < 0.1) return Math.max(0, this.planOf(step) - elapsed);
    return (elapsed * (1 - this.fraction)) / this.fraction;
  }

  private leftInAll(): number {
    let later = 0;
    for (let i = this.index + 1; i < this.steps.length; i++) later += this.planOf(this.steps[i]!);
    return this.leftInStep() + later;
  }

  private draw(): void {
    if (this.index < 0 || this.index >= this.steps.length) return;
    const width = 16;
    const filled = Math.round(this.fraction * width);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    const pct = `${String(Math.floor(this.fraction * 100)).padStart(3)}%`;
    const times = `step ${clock(this.leftInStep())} left · all ~${clock(this.leftInAll())} left`;
    const head = `${this.label()} ${this.steps[this.index]!.title}`;
    let line = `${head} ${bar} ${pct} · ${times}${this.detail ? ` · ${this.detail}` : ''}`;
    const columns = this.out.columns || 120;
    if (line.length > columns - 1) line = `${line.slice(0, columns - 2)}…`;
    this.out.write(`\r\x1b[K${line}`);
  }
}
