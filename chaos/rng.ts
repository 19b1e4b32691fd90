/**
 * The seeded randomness of a chaos run. Every choice (the fault schedule, each caller's
 * workload, which connections a KILL picks) draws from its own named stream, so one stream's
 * draws never shift another's: the same seed plans the same schedule however the run's
 * timing turned out.
 */

/** A source of numbers in [0, 1) with helpers for the draws the chaos run makes. */
export interface Rng {
  /** A number in [0, 1). */
  next(): number;
  /** An integer from `min` to `max`, both included. */
  int(min: number, max: number): number;
  /** One element of `items`; throws on an empty list. */
  pick<T>(items: readonly T[]): T;
  /** A key of `weights`, each as likely as its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K;
  /** True with probability `p`. */
  chance(p: number): boolean;
}

/** mulberry32: a tiny, fast 32-bit PRNG, good enough for test schedules (not for secrets). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a of `text`: turns a seed and a stream's name into that stream's own seed. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The stream `name` of run `seed`: the same pair always gives the same draws. */
export function stream(seed: number, name: string): Rng {
  const next = mulberry32(fnv1a(`${seed}:${name}`));
  const rng: Rng = {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: (items) => {
      if (items.length === 0) throw new Error('pick from an empty list');
      return items[Math.floor(next() * items.length)]!;
    },
    weighted: (weights) => {
      const entries = Object.entries(weights) as Array<[keyof typeof weights, number]>;
      const total = entries.reduce((sum, [, w]) => sum + w, 0);
      let draw = next() * total;
      for (const [key, w] of entries) {
        draw -= w;
        if (draw < 0) return key;
      }
      return entries[entries.length - 1]![0];
    },
    chance: (p) => next() < p,
  };
  return rng;
}

/** A short hex fingerprint of `value`'s JSON, to show that two runs planned the same thing. */
export function fingerprint(value: unknown): string {
  return fnv1a(JSON.stringify(value)).toString(16).padStart(8, '0');
}
