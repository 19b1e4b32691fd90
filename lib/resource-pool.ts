/**
 * generic-pool 3.9 with the one operation it lacks: taking a specific idle resource out at
 * once (a connection the server closed while it sat idle). This is the only file that knows
 * generic-pool's internals; the version is pinned exactly in package.json, and the
 * constructor checks the internals it relies on so an upgrade fails loudly, not silently.
 */
import genericPool from 'generic-pool';
import type { Factory, Options, Pool } from 'generic-pool';

interface PooledResource<T> {
  obj: T;
}

interface InternalIterator<T> {
  next(): { done: boolean; value: PooledResource<T> };
  remove(): void;
}

interface PoolInternals<T> {
  _availableObjects: { iterator(): InternalIterator<T> };
  _resourceLoans: Map<T, unknown>;
  _waitingClientsQueue: { length: number; dequeue(): { reject(reason: unknown): void } | undefined };
  _destroy(resource: PooledResource<T>): void;
  _dispense(): void;
}

const internals = genericPool as unknown as {
  Pool: new <T>(evictor: unknown, deque: unknown, queue: unknown, factory: Factory<T>, options: Options) => Pool<T>;
  DefaultEvictor: unknown;
  Deque: unknown;
  PriorityQueue: unknown;
};

/** A generic-pool `Pool` that can also remove one idle resource by identity. */
export interface ResourcePool<T> extends Pool<T> {
  /**
   * Takes `resource` out of the idle set and destroys it through the factory. Returns false
   * (and does nothing) when it is not idle: lent out, being validated or already gone.
   */
  removeIdle(resource: T): boolean;
  /** The resources idle in the pool now, most recently returned first. */
  idleResources(): T[];
  /** The resources lent out now. */
  borrowedResources(): T[];
  /** Rejects every borrow still waiting with `reason` (shutdown after its timeout). */
  rejectWaiting(reason: unknown): void;
}

/** Builds the pool; throws if generic-pool's internals are not the ones this file expects. */
export function createResourcePool<T>(factory: Factory<T>, options: Options): ResourcePool<T> {
  const pool = new internals.Pool<T>(internals.DefaultEvictor, internals.Deque, internals.PriorityQueue, factory, options);
  const inner = pool as unknown as PoolInternals<T> & ResourcePool<T>;
  if (
    typeof inner._availableObjects?.iterator !== 'function' ||
    !(inner._resourceLoans instanceof Map) ||
    typeof inner._waitingClientsQueue?.dequeue !== 'function' ||
    typeof inner._destroy !== 'function' ||
    typeof inner._dispense !== 'function'
  ) {
    throw new Error('mysql-fresh-pool: unsupported generic-pool version (expected 3.9.x internals)');
  }
  inner.removeIdle = (resource: T): boolean => {
    const it = inner._availableObjects.iterator();
    for (let step = it.next(); !step.done; step = it.next()) {
      if (step.value.obj === resource) {
        it.remove();
        inner._destroy(step.value);
        inner._dispense();
        return true;
      }
    }
    return false;
  };
  inner.idleResources = (): T[] => {
    const found: T[] = [];
    const it = inner._availableObjects.iterator();
    for (let step = it.next(); !step.done; step = it.next()) found.push(step.value.obj);
    return found;
  };
  inner.borrowedResources = (): T[] => [...inner._resourceLoans.keys()];
  inner.rejectWaiting = (reason: unknown): void => {
    for (let request = inner._waitingClientsQueue.dequeue(); request !== undefined; request = inner._waitingClientsQueue.dequeue()) {
      request.reject(reason);
    }
  };
  return inner;
}
