/**
 * generic-pool 3.9 with what it lacks: taking a specific idle resource out at once (a
 * connection the server closed while it sat idle), listing idle and lent resources, failing
 * the waiting borrows, a borrow and return with no queue, promise or timer when a resource is
 * idle and nobody waits (the hot path), and a lean wait for a returned resource when every
 * resource is lent (the busy path: one promise, no timer per borrow). This is the only file that knows
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
  _started: boolean;
  _factoryCreateOperations: Set<unknown>;
  readonly spareResourceCapacity: number;
  drain(): Promise<void>;
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
   * A borrow that must wait. With every resource lent and no borrow waiting for a new one, it
   * waits in this file's own queue for the next resource given back: one promise, and one
   * timer for the whole queue, not one per borrow as generic-pool's `acquire()` makes. Else it
   * is generic-pool's `acquire()`. Rejects with an error named `TimeoutError` after
   * `timeoutMs`.
   */
  acquireWaiting(timeoutMs: number): Promise<T>;
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
    typeof inner._draining !== 'boolean' ||
    typeof inner._started !== 'boolean' ||
    !(inner._factoryCreateOperations instanceof Set) ||
    typeof inner.drain !== 'function'
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
    waiting.rejectAll(reason);
    for (let request = inner._waitingClientsQueue.dequeue(); request !== undefined; request = inner._waitingClientsQueue.dequeue()) {
      request.reject(reason);
    }
  };
  const waiting = new WaitQueue<T>((resource) => inner.giveBack(resource));
  inner.takeIdle = (): T | undefined => {
    if (inner._availableObjects.length === 0 || inner._waitingClientsQueue.length !== 0 || waiting.pending !== 0 || inner._draining) return undefined;
    const pooled = inner._availableObjects.shift();
    pooled.allocate();
    inner._resourceLoans.set(pooled.obj, new Loan(pooled));
    return pooled.obj;
  };
  inner.acquireWaiting = (timeoutMs: number): Promise<T> => {
    // Every resource made and lent: only a return can serve this borrow. While one is being
    // made, generic-pool's queue is where it would be dispatched.
    const atCapacity = inner._started && inner.spareResourceCapacity === 0 && inner._factoryCreateOperations.size === 0 && inner._availableObjects.length === 0;
    if (!atCapacity || inner._waitingClientsQueue.length !== 0 || inner._draining) return inner.acquire();
    return waiting.add(timeoutMs);
  };
  inner.giveBack = (resource: T): boolean => {
    const loan = inner._resourceLoans.get(resource);
    if (loan === undefined) return false;
    loan.resolve();
    const pooled = loan.pooledResource;
    const waiter = waiting.next();
    if (waiter !== undefined) {
      inner._resourceLoans.set(resource, new Loan(pooled));
      pooled.allocate();
      waiter.resolve(resource);
      return true;
    }
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
  // A resource destroyed frees a slot: the borrows waiting here for a return move to
  // generic-pool's queue, which makes a new resource for them (their deadlines stay).
  const destroy = inner._destroy.bind(inner);
  inner._destroy = (pooledResource: PooledResource<T>): void => {
    destroy(pooledResource);
    waiting.moveAll((waiter) => inner.acquire().then(waiter.resolve, waiter.reject));
  };
  Object.defineProperty(inner, 'pending', { get: () => inner._waitingClientsQueue.length + waiting.pending });
  // end(): the borrows waiting here are served (or time out) before generic-pool's drain looks
  // at its own queue and the loans.
  const drain = inner.drain.bind(inner);
  inner.drain = async (): Promise<void> => {
    inner._draining = true;
    await waiting.settled();
    return drain();
  };
  return inner;
}

class TimeoutError extends Error {
  override name = 'TimeoutError';
}

interface Waiter<T> {
  readonly deadlineMs: number;
  done: boolean;
  resolve(resource: T): void;
  reject(reason: unknown): void;
}

/**
 * Borrows waiting for a resource to be given back, first come first served, with one timer
 * armed for the oldest deadline (every waiter gets the same timeout, so deadlines come in
 * order). A waiter keeps its deadline when it is moved to generic-pool's queue; a resource
 * that reaches it after that deadline is given back.
 */
class WaitQueue<T> {
  #queue: Array<Waiter<T> | undefined> = [];
  #head = 0;
  // Every waiter not yet past its deadline check, in or out of the queue, oldest first.
  #timed: Array<Waiter<T> | undefined> = [];
  #timedHead = 0;
  #timer: NodeJS.Timeout | undefined;
  #pending = 0;
  // Waiters not settled yet, here or moved: the timer runs only while there are some.
  #live = 0;
  #onSettled: Array<() => void> = [];
  readonly #giveBack: (resource: T) => void;

  constructor(giveBack: (resource: T) => void) {
    this.#giveBack = giveBack;
  }

  /** Waiters in this queue (not those moved to generic-pool's). */
  get pending(): number {
    return this.#pending;
  }

  add(timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter<T> = {
        deadlineMs: Date.now() + timeoutMs,
        done: false,
        resolve: (resource) => {
          if (waiter.done) return this.#giveBack(resource);
          waiter.done = true;
          this.#settle();
          resolve(resource);
        },
        reject: (reason) => {
          if (waiter.done) return;
          waiter.done = true;
          this.#settle();
          reject(reason);
        },
      };
      this.#queue.push(waiter);
      this.#pending++;
      this.#live++;
      this.#timed.push(waiter);
      if (this.#timer === undefined) this.#arm(timeoutMs);
    });
  }

  /** The oldest waiter still waiting here, taken out of the queue; undefined when none. */
  next(): Waiter<T> | undefined {
    while (this.#head < this.#queue.length) {
      const waiter = this.#queue[this.#head];
      this.#queue[this.#head++] = undefined;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      if (waiter === undefined || waiter.done) continue;
      this.#pending--;
      this.#settledCheck();
      return waiter;
    }
    return undefined;
  }

  /** Hands every waiter still here to `move`, oldest first, and empties the queue. */
  moveAll(move: (waiter: Waiter<T>) => void): void {
    for (let waiter = this.next(); waiter !== undefined; waiter = this.next()) move(waiter);
  }

  rejectAll(reason: unknown): void {
    for (let waiter = this.next(); waiter !== undefined; waiter = this.next()) waiter.reject(reason);
  }

  /** Resolves once no waiter is left in this queue. */
  settled(): Promise<void> {
    if (this.#pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#onSettled.push(resolve));
  }

  #settledCheck(): void {
    if (this.#pending !== 0 || this.#onSettled.length === 0) return;
    const callbacks = this.#onSettled;
    this.#onSettled = [];
    for (const callback of callbacks) callback();
  }

  // A waiter settled: with none left, no timer may outlive them (end() checks for none).
  #settle(): void {
    if (--this.#live !== 0) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timed = [];
    this.#timedHead = 0;
  }

  #arm(delayMs: number): void {
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, delayMs));
  }

  // Rejects every waiter past its deadline, then re-arms for the oldest one left.
  #expire(): void {
    this.#timer = undefined;
    const nowMs = Date.now();
    let rejected = false;
    while (this.#timedHead < this.#timed.length) {
      const waiter = this.#timed[this.#timedHead]!;
      if (!waiter.done && waiter.deadlineMs > nowMs) break;
      this.#timed[this.#timedHead++] = undefined;
      if (waiter.done) continue;
      waiter.reject(new TimeoutError('ResourceRequest timed out'));
      rejected = true;
    }
    if (this.#timedHead > 1024 && this.#timedHead * 2 > this.#timed.length) {
      this.#timed = this.#timed.slice(this.#timedHead);
      this.#timedHead = 0;
    }
    if (rejected) this.#recount();
    if (this.#timedHead < this.#timed.length) this.#arm(this.#timed[this.#timedHead]!.deadlineMs - nowMs);
  }

  // Rejected waiters stay in the queue until next() skips them; the count must not include them.
  #recount(): void {
    let pending = 0;
    for (let i = this.#head; i < this.#queue.length; i++) if (this.#queue[i]?.done === false) pending++;
    this.#pending = pending;
    this.#settledCheck();
  }
}
