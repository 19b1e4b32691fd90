/**
 * generic-pool 3.9 with what it lacks: taking a specific idle resource out at once (a
 * connection the server closed while it sat idle), listing idle and lent resources, failing
 * the waiting borrows, and a borrow and return with no queue, promise or timer when a
 * resource is idle and nobody waits (the hot path). This is the only file that knows
 * generic-pool's internals; the version is pinned exactly in package.json, and the
 * constructor checks the internals it relies on so an upgrade fails loudly, not silently.
 */
import genericPool from 'generic-pool';
import type { Factory, Options, Pool } from 'generic-pool';

interface PooledResource<T> {
  obj: T;
  allocate(): void;
  deallocate(): void;
}

/**
 * What generic-pool keeps per loan: `release`/`destroy` call `resolve()` and read
 * `pooledResource`; `drain()` awaits `promise`. Its own loan makes a promise per borrow that
 * only `drain()` ever reads; this one makes it only when asked.
 */
class Loan<T> {
  readonly pooledResource: PooledResource<T>;
  #promise: Promise<void> | undefined;
  #resolve: (() => void) | undefined;
  #resolved = false;

  constructor(pooledResource: PooledResource<T>) {
    this.pooledResource = pooledResource;
  }

  get promise(): Promise<void> {
    this.#promise ??= this.#resolved ? Promise.resolve() : new Promise<void>((resolve) => (this.#resolve = resolve));
    return this.#promise;
  }

  resolve(): void {
    this.#resolved = true;
    this.#resolve?.();
  }

  reject(): void {
    // generic-pool's loans are only ever resolved
  }
}

/** generic-pool's `ResourceRequest`: a deferred borrow with its own acquire timer. */
interface WaitingRequest<T> {
  readonly state: string;
  resolve(resource: T): void;
  reject(reason: unknown): void;
}

// generic-pool's Deferred.PENDING
const PENDING = 'PENDING';

interface InternalIterator<T> {
  next(): { done: boolean; value: PooledResource<T> };
  remove(): void;
}

interface PoolInternals<T> {
  _availableObjects: { iterator(): InternalIterator<T>; shift(): PooledResource<T>; unshift(resource: PooledResource<T>): void; length: number };
  _resourceLoans: Map<T, Loan<T>>;
  _draining: boolean;
  _addPooledResourceToAvailableObjects(resource: PooledResource<T>): void;
  _waitingClientsQueue: { length: number; dequeue(): WaitingRequest<T> | undefined };
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
  /**
   * The borrow with no queue: the most recently returned idle resource, lent at once, or
   * `undefined` when none is idle, someone is already waiting (who goes first) or the pool is
   * draining. No promise and no timer, unlike `acquire()`.
   */
  takeIdle(): T | undefined;
  /**
   * `release()` without the promise it returns; false when `resource` was not on loan. With
   * a borrow waiting, the resource goes straight to the oldest one, still lent: not through
   * the idle list and generic-pool's dispatch, which would make a loan promise per hand-off.
   */
  giveBack(resource: T): boolean;
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
    typeof inner._dispense !== 'function' ||
    typeof inner._availableObjects?.shift !== 'function' ||
    typeof inner._addPooledResourceToAvailableObjects !== 'function' ||
    typeof inner._draining !== 'boolean'
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
  inner.takeIdle = (): T | undefined => {
    if (inner._availableObjects.length === 0 || inner._waitingClientsQueue.length !== 0 || inner._draining) return undefined;
    const pooled = inner._availableObjects.shift();
    pooled.allocate();
    inner._resourceLoans.set(pooled.obj, new Loan(pooled));
    return pooled.obj;
  };
  inner.giveBack = (resource: T): boolean => {
    const loan = inner._resourceLoans.get(resource);
    if (loan === undefined) return false;
    loan.resolve();
    const pooled = loan.pooledResource;
    for (let request = inner._waitingClientsQueue.dequeue(); request !== undefined; request = inner._waitingClientsQueue.dequeue()) {
      // A request that timed out has rejected already (generic-pool drops it from the queue
      // then, but only a microtask later).
      if (request.state !== PENDING) continue;
      inner._resourceLoans.set(resource, new Loan(pooled));
      pooled.allocate();
      request.resolve(resource);
      return true;
    }
    inner._resourceLoans.delete(resource);
    pooled.deallocate();
    inner._addPooledResourceToAvailableObjects(pooled);
    return true;
  };
  return inner;
}
