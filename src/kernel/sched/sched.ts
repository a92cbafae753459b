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

export interface HeldLock {
  lock: LockBase;
  mode: 'r' | 'w';
  /** taken with a trylock: lockdep adds no dependency to it, and walks past it for those from it */
  trylock?: boolean;
  /** a recursive read (lockdep's read=2) */
  recursive?: boolean;
}

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
  /** lockdep_set_novalidate_class: lockdep ignores it (struct device's mutex) */
  novalidate = false;
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
    this.grant(this.sched.cur(), 'r', true);
    return true;
  }
  /** down_write_trylock: no sleeping; returns whether it got the lock. */
  *down_write_trylock(): KGen<boolean> {
    yield ev('down_write_trylock', this.name);
    if (this.writer || this.readers.size || this.waiters.length) return false;
    this.grant(this.sched.cur(), 'w', true);
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
    this.sched.lockdep.acquire(t, this, mode === 'w' ? 'W' : 'r');
    const free = mode === 'r' ? !this.writer && !this.waiters.some((w) => w.mode === 'w') : !this.writer && this.readers.size === 0 && this.waiters.length === 0;
    if (free) {
      this.grant(t, mode);
      return;
    }
    this.waiters.push({ t, mode });
    this.sched.note(`${t.name} sleeps on ${this.name} (${modeName(mode)})`);
    yield { op: mode === 'r' ? 'down_read:woken' : 'down_write:woken', obj: this.name, acc: mode, block: true };
  }

  private grant(t: Task, mode: 'r' | 'w', trylock = false): void {
    if (mode === 'r' && this.readers.has(t)) this.nested.push(t);
    else if (mode === 'r') this.readers.add(t);
    else this.writer = t;
    t.held.push(trylock ? { lock: this, mode, trylock } : { lock: this, mode });
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
    this.sched.lockdep.acquire(t, this, 'W');
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
  /** mutex_trylock: no sleeping; returns whether it got the mutex. */
  *trylock(): KGen<boolean> {
    yield ev('mutex_trylock', this.name);
    if (this.owner) return false;
    this.grant(this.sched.cur(), undefined, true);
    return true;
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
  private grant(t: Task, reads: Ev['also'], trylock = false): void {
    this.owner = t;
    this.ownerAcc = reads ? 'r' : 'w';
    t.held.push(trylock ? { lock: this, mode: 'w', trylock } : { lock: this, mode: 'w' });
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
 * How lockdep sees an acquisition (Documentation/locking/lockdep-design.rst, "Recursive read
 * locks"): W a writer (exclusive), r a non-recursive reader (down_read, percpu_down_read: read=1),
 * R a recursive reader (read_lock of an rwlock_t, rcu_read_lock: read=2).
 */
export type LockdepType = 'W' | 'r' | 'R';
/** One kind of dependency A -> B: A held as E (W) or S (r, R); B acquired as R or N (W, r). */
export type DepType = 'ER' | 'EN' | 'SR' | 'SN';

/**
 * Lockdep as kernel/locking/lockdep.c keys and checks it: dependencies between lock classes, each
 * with the kinds it was seen with (-(ER)->, -(EN)->, -(SR)->, -(SN)->); a new dependency is refused
 * (reported) when it closes a strong circle, one with no -(xR)-> edge followed by an -(Sx)-> edge
 * anywhere on it, the closing edge included (check_noncircular, __bfs with only_xr). So two
 * non-recursive readers (down_read) against each other are a deadlock, as a queued writer makes
 * them, and two recursive readers are not. Reported even when this interleaving did not deadlock.
 *
 * As lockdep: a trylock is not checked and gets no dependency to it, but locks taken under it get
 * one from it (check_prevs_add walks the held locks back to the first that was not a trylock);
 * re-taking a class held for read as a recursive reader adds nothing; a lock of a class set to
 * novalidate (struct device's mutex) is ignored. Unlike lockdep, two instances of one class held
 * together are not "possible recursive locking": the model's stand-in for the annotations that
 * allow it in the kernel (dma_resv's ww_acquire_ctx, mmap_lock's SINGLE_DEPTH_NESTING in fork).
 * After its first report lockdep turns itself off for the rest of the boot (debug_locks_off), so
 * a run reports at most one circle, the first one closed.
 */
export class Lockdep {
  /** from class -> to class -> the kinds seen and the first acquisition that made the dependency */
  readonly edges = new Map<string, Map<string, { types: Set<DepType>; why: string }>>();
  readonly inversions: string[] = [];

  acquire(t: Task, lock: LockBase, type: LockdepType, trylock = false): void {
    if (this.inversions.length || lock.novalidate || trylock) return;
    // check_deadlock: taking a lock the task holds; a recursive read on a read hold is allowed
    const again = t.held.find((h) => h.lock === lock);
    if (again) {
      if (type === 'R' && heldType(again) !== 'W') return;
      this.inversions.push(`possible recursive locking: ${t.name} takes ${lock.name} (${longName(type)}) while holding it (${longName(heldType(again))})`);
      return;
    }
    // check_prevs_add: from each held lock back to the first that was not a trylock
    for (let i = t.held.length - 1; i >= 0; i--) {
      const h = t.held[i];
      if (h.lock.novalidate) continue;
      if (h.lock.cls !== lock.cls) this.addDep(t, h, lock, type);
      if (!h.trylock) break;
    }
  }

  /** A dependency lockdep recorded from code the model does not run (a scenario's `lockdep_history`). */
  record(from: string, dep: DepType, to: string, why: string): void {
    if (this.inversions.length) return;
    this.addEdge(from, dep[0] === 'E' ? 'W' : 'r', to, dep[1] === 'R' ? 'R' : 'W', why);
  }

  private addDep(t: Task, h: HeldLock, lock: LockBase, type: LockdepType): void {
    this.addEdge(h.lock.cls, heldType(h), lock.cls, type, () => `${t.name}: ${h.lock.name} (${typeName(heldType(h))}) then ${lock.name} (${typeName(type)})`);
  }

  /** `why` is made only for a new dependency: most acquisitions repeat a known one. */
  private addEdge(from: string, fromType: LockdepType, to: string, toType: LockdepType, whyOf: string | (() => string)): void {
    const dep: DepType = `${fromType === 'W' ? 'E' : 'S'}${toType === 'R' ? 'R' : 'N'}`;
    let m = this.edges.get(from);
    if (!m) this.edges.set(from, (m = new Map()));
    const e = m.get(to);
    if (e?.types.has(dep)) return;
    const why = typeof whyOf === 'string' ? whyOf : whyOf();
    // check_noncircular: a strong path back from `to` to `from`, starting as the new edge ends
    // (only -(Ex)-> out of `to` if it is acquired as a recursive reader) and ending so that it
    // joins the new edge strongly (into `from` by -(xN)->, unless `from` is held as a writer)
    const back = this.strongPath(to, dep[1] === 'R', from, fromType === 'W');
    if (e) e.types.add(dep);
    else m.set(to, { types: new Set([dep]), why });
    // the cycle's edges in a fixed order: which of them was taken first is not part of the finding
    if (back) this.inversions.push(`lock order inversion: ${[why, ...back].sort().join('; ')}`);
  }

  /** __bfs_forwards over strong paths: each lock visited once, with the best way in (an -(xN)-> if any). */
  private strongPath(src: string, srcOnlyXr: boolean, target: string, targetExclusive: boolean): string[] | null {
    const seen = new Map<string, boolean>([[src, srcOnlyXr]]);
    const queue: Array<{ cls: string; onlyXr: boolean; path: string[] }> = [{ cls: src, onlyXr: srcOnlyXr, path: [] }];
    while (queue.length) {
      const cur = queue.shift()!;
      for (const [next, e] of this.edges.get(cur.cls) ?? []) {
        // after an -(xR)-> only an -(Ex)-> keeps the path strong
        const usable = [...e.types].filter((d) => !cur.onlyXr || d[0] === 'E');
        if (!usable.length) continue;
        const onlyXr = !usable.some((d) => d[1] === 'N');
        const path = [...cur.path, e.why];
        if (next === target && (targetExclusive || !onlyXr)) return path;
        // a lock reached with only_xr cleared needs no second visit; one reached only by -(xR)->
        // may still be reached better
        const was = seen.get(next);
        if (was === false || (was === true && onlyXr)) continue;
        seen.set(next, onlyXr);
        queue.push({ cls: next, onlyXr, path });
      }
    }
    return null;
  }
}

/** How the task holds it, as lockdep recorded the acquisition. */
function heldType(h: HeldLock): LockdepType {
  return h.mode === 'w' ? 'W' : h.recursive ? 'R' : 'r';
}
const typeName = (t: LockdepType) => (t === 'W' ? 'w' : t === 'r' ? 'r' : 'recursive r');
const longName = (t: LockdepType) => (t === 'W' ? 'write' : t === 'r' ? 'read' : 'recursive read');
