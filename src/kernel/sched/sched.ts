// Simulated threads and scheduling points.
//
// Kernel paths are generator functions. A path `yield`s an event *before* it does something another
// thread could observe or race with (take/drop a lock, wait, touch a lockless field, write a page
// table or a device register); the scheduler decides when the thread goes on. One "step" of a task
// performs its pending event and runs plain code up to the next yield. Everything between two
// yields is atomic, so any state not protected by a modelled lock must be touched right after a
// yield that names it: that is what makes the events a sound dependence relation for DPOR.

import { ev, type Acc, type Ev } from './events.ts';
export { announceTarget, ev, dependent, LOCK_ACQUIRE, LOCK_RELEASE, LOCK_TRYLOCK, type Acc, type Ev, type Span } from './events.ts';

export type KGen<T = void> = Generator<Ev, T, void>;

export interface FaultRecord {
  va: number;
  order: number;
  /** page offset of the order-aligned address from the VMA start, as the dev_dbg line prints it */
  pgoff: number;
  pfn: number | null;
  outcome: 'NOPAGE' | 'FALLBACK' | 'SIGBUS';
}
/** The last of an operation's fault-handler calls that installed an entry (what `expect: { order }` checks). */
export const lastInstall = (faults: readonly FaultRecord[]) => faults.filter((f) => f.outcome === 'NOPAGE').at(-1);

export interface HeldLock { lock: LockBase; mode: 'r' | 'w' }

/** How traces and reports name things: a hold ("gpu0.memory_lock (read)"), what a task does or waits to do next. */
export const modeName = (mode: 'r' | 'w') => (mode === 'r' ? 'read' : 'write');
export const holdText = (h: HeldLock) => `${h.lock.name} (${modeName(h.mode)})`;
/** The event a task will perform (a sleeper: what it waits to take), without the wake-up marker. */
export const pendingText = (t: Task) => `${t.pending.op.replace(':woken', '')} ${t.pending.obj}`.trim();
/** A step's event as a trace line shows it: "down_read gpu0.memory_lock", "mutex_lock x (woken)". */
export const eventText = (e: Pick<Ev, 'op' | 'obj'>) => (e.op === 'start' ? 'start' : `${e.op.replace(':woken', ' (woken)')} ${e.obj}`.trim());

export class Task {
  pending: Ev = { op: 'start', obj: '', acc: 'r' };
  blocked = false;
  done = false;
  /** locks held, in acquisition order (for lockdep and for counterexample traces) */
  held: HeldLock[] = [];
  /** work deferred to the return to user space (fput's task_work) */
  taskWork: Array<() => KGen> = [];
  /** fault-handler calls of the operation in progress (what vfio_pci_core's dev_dbg line prints) */
  faults: FaultRecord[] = [];
  /** steps this task has run */
  steps = 0;
  constructor(
    readonly id: number,
    readonly name: string,
    readonly gen: KGen,
    readonly owner: unknown,
  ) {}
}

export interface StepRecord {
  step: number;
  task: number;
  ev: Ev;
  notes: string[];
}

/** Raised when the scheduled task cannot run; never seen by scenario code. */
export class SchedError extends Error {}

export class Sched {
  readonly tasks: Task[] = [];
  current: Task | null = null;
  readonly lockdep = new Lockdep();
  /** the step being run (index into the trace) */
  stepNo = 0;
  /** notes emitted by kernel code during the current step (what was installed, zapped, …) */
  notes: string[] = [];
  readonly trace: StepRecord[] = [];
  /** keep every step (counterexamples, replay); off by default: it costs kilobytes per fault */
  recordTrace = false;
  private nextTaskId = 0;
  /** function-graph hooks (see `traced`); null unless a tool attached them */
  graph: FuncGraph | null = null;

  spawn(name: string, gen: KGen, owner: unknown): Task {
    const t = new Task(this.nextTaskId++, name, gen, owner);
    this.tasks.push(t);
    return t;
  }

  cur(): Task {
    if (!this.current) throw new SchedError('kernel code ran outside a task');
    return this.current;
  }

  /** Forget a finished task (the syscall API runs one task per call). */
  reap(t: Task): void {
    const i = this.tasks.indexOf(t);
    if (t.done && i >= 0) this.tasks.splice(i, 1);
  }

  enabled(): Task[] {
    return this.tasks.filter((t) => !t.done && !t.blocked);
  }

  /** Run one step of `t`: perform its pending event and run to its next scheduling point. */
  step(t: Task): StepRecord {
    if (t.done || t.blocked) throw new SchedError(`task ${t.name} is not runnable`);
    const evDone = t.pending;
    this.current = t;
    this.notes = [];
    let r: IteratorResult<Ev, void>;
    try {
      r = t.gen.next();
    } finally {
      this.current = null;
    }
    t.steps++;
    if (r.done) {
      t.done = true;
      t.pending = { op: 'exit', obj: '', acc: 'r' };
    } else {
      t.pending = r.value;
      if (r.value.block) t.blocked = true;
    }
    const rec: StepRecord = { step: this.stepNo++, task: t.id, ev: evDone, notes: this.notes };
    if (this.recordTrace) this.trace.push(rec);
    return rec;
  }

  note(s: string): void {
    this.notes.push(s);
  }

  wake(t: Task): void {
    t.blocked = false;
  }
}

/**
 * Function-graph hooks, as ftrace's function_graph tracer has them: entry and return of a call a
 * caller marks with `traced`. A marked call affects its caller only through its return value, the
 * objects in `args`, and shared state; so a tool that fingerprints a thread by what it has read
 * (the explorer's state caching) may forget what the callee read once it returns.
 */
export interface FuncGraph {
  entry(t: Task, fn: string): void;
  ret(t: Task, fn: string, value: unknown, args: readonly unknown[]): void;
}

/** Run `body` as the call `fn(args)`, reporting its entry and return to the attached hooks. */
export function* traced<T>(sched: Sched, fn: string, args: readonly unknown[], body: KGen<T>): KGen<T> {
  if (!sched.graph) return yield* body;
  sched.graph.entry(sched.cur(), fn);
  const r = yield* body;
  sched.graph?.ret(sched.cur(), fn, r, args);
  return r;
}

/** Lock bookkeeping shared by mutexes, rwsems and dma_resv. */
export abstract class LockBase {
  constructor(
    readonly sched: Sched,
    /** instance name, e.g. "gpu0.memory_lock" */
    readonly name: string,
    /** lockdep class, e.g. "memory_lock": one per init site, as lockdep keys locks */
    readonly cls: string,
  ) {}
}

/**
 * A reader-writer semaphore with the kernel's writer preference: once a writer waits, new readers
 * queue behind it (the property behind the v5 mmap_lock/memory_lock deadlock). Release hands the
 * lock to the head of the queue: a writer, or, if a reader heads it, every queued reader
 * (rwsem_mark_wake wakes readers past waiting writers).
 */
export class RwSem extends LockBase {
  readers = new Set<Task>();
  /** further read holds of a reader that took the semaphore again (each up_read drops one) */
  nested: Task[] = [];
  writer: Task | null = null;
  waiters: Array<{ t: Task; mode: 'r' | 'w' }> = [];

  // Read-side operations commute with each other (with writer preference, whether a reader gets in
  // depends only on writers), so they are 'r' events on the semaphore; write-side ones are 'w'.
  *down_read(): KGen {
    yield ev('down_read', this.name, 'r');
    yield* this.acquire('r');
  }
  *down_write(): KGen {
    yield ev('down_write', this.name);
    yield* this.acquire('w');
  }
  /** down_read_trylock: no sleeping; fails while a writer holds or waits. */
  *down_read_trylock(): KGen<boolean> {
    yield ev('down_read_trylock', this.name, 'r');
    if (this.writer || this.waiters.some((w) => w.mode === 'w')) return false;
    this.grant(this.sched.cur(), 'r');
    return true;
  }
  /** down_write_trylock: no sleeping; returns whether it got the lock. */
  *down_write_trylock(): KGen<boolean> {
    yield ev('down_write_trylock', this.name);
    if (this.writer || this.readers.size || this.waiters.length) return false;
    this.grant(this.sched.cur(), 'w');
    return true;
  }
  *up_read(): KGen {
    yield ev('up_read', this.name, 'r');
    this.release(this.sched.cur(), 'r');
  }
  *up_write(): KGen {
    yield ev('up_write', this.name);
    this.release(this.sched.cur(), 'w');
  }

  private *acquire(mode: 'r' | 'w'): KGen {
    const t = this.sched.cur();
    this.sched.lockdep.acquire(t, this, mode);
    const free = mode === 'r' ? !this.writer && !this.waiters.some((w) => w.mode === 'w') : !this.writer && this.readers.size === 0 && this.waiters.length === 0;
    if (free) {
      this.grant(t, mode);
      return;
    }
    this.waiters.push({ t, mode });
    this.sched.note(`${t.name} sleeps on ${this.name} (${modeName(mode)})`);
    yield { op: mode === 'r' ? 'down_read:woken' : 'down_write:woken', obj: this.name, acc: mode, block: true };
  }

  private grant(t: Task, mode: 'r' | 'w'): void {
    if (mode === 'r' && this.readers.has(t)) this.nested.push(t);
    else if (mode === 'r') this.readers.add(t);
    else this.writer = t;
    t.held.push({ lock: this, mode });
  }

  private release(t: Task, mode: 'r' | 'w'): void {
    const n = mode === 'r' ? this.nested.indexOf(t) : -1;
    if (n >= 0) {
      // an inner read hold goes; the reader still holds the semaphore
      this.nested.splice(n, 1);
      for (let i = t.held.length - 1; i >= 0; i--)
        if (t.held[i].lock === this) {
          t.held.splice(i, 1);
          break;
        }
      return;
    }
    if (mode === 'r' ? !this.readers.delete(t) : this.writer !== t) throw new Error(`${t.name} releases ${this.name} it does not hold`);
    if (mode === 'w') this.writer = null;
    const i = t.held.findIndex((h) => h.lock === this);
    t.held.splice(i, 1);
    if (this.writer || this.readers.size) return;
    // hand off to the head of the queue
    const head = this.waiters[0];
    if (!head) return;
    if (head.mode === 'w') {
      this.waiters.shift();
      this.grant(head.t, 'w');
      this.sched.wake(head.t);
      return;
    }
    for (const w of this.waiters.filter((x) => x.mode === 'r')) {
      this.grant(w.t, 'r');
      this.sched.wake(w.t);
    }
    this.waiters = this.waiters.filter((x) => x.mode === 'w');
  }

  heldBy(t: Task, mode?: 'r' | 'w'): boolean {
    if (mode === 'w') return this.writer === t;
    if (mode === 'r') return this.readers.has(t);
    return this.writer === t || this.readers.has(t);
  }
}

/**
 * A sleeping mutex (also used for dma_resv, which the model takes without a ww acquire context).
 *
 * A caller whose critical section only reads what the mutex protects passes `reads`, the objects
 * it reads there (in the step that acquires the lock). Such sections of different threads touch
 * nothing in common, so whichever order they take the lock in ends in the same state: their lock
 * and unlock events are reads of the mutex and commute with each other, while a section that
 * writes (no `reads`) still conflicts with every other. Mutual exclusion is still real; the
 * explorer moves a race found inside a read-only section back to its acquisition (lock-aware
 * reduction, after Kokologiannakis, Raad and Vafeiadis, OOPSLA 2019).
 */
export class Mutex extends LockBase {
  owner: Task | null = null;
  waiters: Task[] = [];
  /** how the owner's critical section touches the protected data */
  private ownerAcc: Acc = 'w';
  private readonly waiterReads = new Map<Task, Ev['also']>();

  *lock(reads?: Ev['also']): KGen {
    const acc: Acc = reads ? 'r' : 'w';
    yield ev('mutex_lock', this.name, acc, reads);
    const t = this.sched.cur();
    this.sched.lockdep.acquire(t, this, 'w');
    if (!this.owner) {
      this.grant(t, reads);
      return;
    }
    this.waiters.push(t);
    this.waiterReads.set(t, reads);
    this.sched.note(`${t.name} sleeps on ${this.name}`);
    const woken: Ev = { op: 'mutex_lock:woken', obj: this.name, acc, block: true };
    if (reads) woken.also = reads;
    yield woken;
  }
  *unlock(): KGen {
    yield ev('mutex_unlock', this.name, this.ownerAcc);
    const t = this.sched.cur();
    if (this.owner !== t) throw new Error(`${t.name} unlocks ${this.name} it does not hold`);
    t.held.splice(t.held.findIndex((h) => h.lock === this), 1);
    this.owner = null;
    this.ownerAcc = 'w';
    const next = this.waiters.shift();
    if (next) {
      this.grant(next, this.waiterReads.get(next));
      this.waiterReads.delete(next);
      this.sched.wake(next);
    }
  }
  private grant(t: Task, reads: Ev['also']): void {
    this.owner = t;
    this.ownerAcc = reads ? 'r' : 'w';
    t.held.push({ lock: this, mode: 'w' });
  }
  isLocked(): boolean {
    return this.owner !== null;
  }
}

/** struct completion: each complete() lets one waiter (present or future) through; reinit resets. */
export class Completion {
  done = 0;
  waiters: Task[] = [];
  constructor(readonly sched: Sched, readonly name: string) {}

  *wait_for_completion(): KGen {
    yield ev('wait_for_completion', this.name);
    if (this.done > 0) {
      this.done--;
      return;
    }
    const t = this.sched.cur();
    this.waiters.push(t);
    this.sched.note(`${t.name} waits for ${this.name}`);
    yield { op: 'wait_for_completion:woken', obj: this.name, acc: 'w', block: true };
  }
  /** Called from a step that already yielded an event naming this completion's owner. */
  complete(): void {
    const t = this.waiters.shift();
    if (t) this.sched.wake(t);
    else this.done++;
  }
  reinit(): void {
    this.done = 0;
  }
}

/**
 * Lockdep, reduced to what the invariants need: the order in which lock classes are taken while
 * others are held. A new edge that closes a cycle is a lock-order inversion, reported even when this
 * interleaving did not deadlock (as lockdep does). Read-after-read on an rwsem is not an ordering
 * hazard by itself and makes no edge back.
 */
export class Lockdep {
  readonly edges = new Map<string, Map<string, string>>();
  readonly inversions: string[] = [];

  acquire(t: Task, lock: LockBase, mode: 'r' | 'w'): void {
    // taking a lock the task holds: a mutex deadlocks on itself; an rwsem read inside a read is
    // not a recursive-read lock in lockdep's sense (down_read is read=1), so lockdep warns, and a
    // writer queued in between deadlocks it
    const again = t.held.find((h) => h.lock === lock);
    if (again) this.inversions.push(`possible recursive locking: ${t.name} takes ${lock.name} (${modeName(mode)}) while holding it (${modeName(again.mode)})`);
    for (const h of t.held) {
      if (h.lock.cls === lock.cls) continue;
      const from = h.lock.cls, to = lock.cls;
      let m = this.edges.get(from);
      if (!m) this.edges.set(from, (m = new Map()));
      if (m.has(to)) continue;
      m.set(to, `${t.name}: ${h.lock.name} (${h.mode}) then ${lock.name} (${mode})`);
      const back = this.path(to, from);
      // the cycle's edges in a fixed order: which of them was taken first is not part of the finding
      if (back) this.inversions.push(`lock order inversion: ${[m.get(to)!, ...back].sort().join('; ')}`);
    }
  }

  private path(from: string, to: string, seen = new Set<string>()): string[] | null {
    const m = this.edges.get(from);
    if (!m) return null;
    for (const [next, why] of m) {
      if (next === to) return [why];
      if (seen.has(next)) continue;
      seen.add(next);
      const p = this.path(next, to, seen);
      if (p) return [why, ...p];
    }
    return null;
  }
}
