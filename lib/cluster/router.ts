/**
 * Which node takes a borrow. Reads go to a replica (or a synced Galera node other than the
 * writer) that is up, the least borrowed first, round-robin among equals; with none, to the
 * writer; with no writer either, to replicas whose primary is unreachable (`sourceLost`). Writes go to the writer (with `galeraWriters: 'all'`, to the least borrowed writer).
 * Pure: the borrowed counts and the turn come in as arguments.
 */
import type { NodeState } from './topology.js';

/** What a borrow asks for. */
export type Need = 'writer' | 'reader';

/** The nodes that may take a borrow of this kind now, in preference order groups. */
export function candidatesFor(need: Need, states: readonly NodeState[]): NodeState[] {
  const writers = states.filter((s) => s.role === 'writer');
  if (need === 'writer') return writers;
  const readers = states.filter((s) => s.role === 'reader');
  if (readers.length !== 0) return readers;
  if (writers.length !== 0) return writers;
  // The primary is gone and no replica is promoted yet: replicas that applied all they
  // received are the freshest data there is.
  return states.filter((s) => s.health === 'sourceLost');
}

/** The node to borrow from, or undefined when none may take it now. */
export function pickNode(need: Need, states: readonly NodeState[], borrowedOf: (name: string) => number, turn: number): string | undefined {
  return pickFrom(candidatesFor(need, states), borrowedOf, turn);
}

/**
 * The least borrowed of `candidates`, the `turn`-th (modulo) among equals; undefined when there
 * are none. Allocates nothing: it runs on every borrow.
 */
export function pickFrom(candidates: readonly NodeState[], borrowedOf: (name: string) => number, turn: number): string | undefined {
  if (candidates.length === 0) return undefined;
  if (candidates.length === 1) return candidates[0]!.name;
  let least = Infinity;
  let ties = 0;
  for (const node of candidates) {
    const borrowed = borrowedOf(node.name);
    if (borrowed < least) {
      least = borrowed;
      ties = 1;
    } else if (borrowed === least) ties++;
  }
  let skip = turn % ties;
  for (const node of candidates) {
    if (borrowedOf(node.name) !== least) continue;
    if (skip-- === 0) return node.name;
  }
  return undefined;
}
