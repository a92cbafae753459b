// Atomic blocks (Lipton's reduction, "Reduction: a method of proving properties of parallel
// programs", CACM 1975; as in Flanagan and Qadeer's atomizer): a thread's steps
//   R* N? L*      (with both-movers B anywhere)
// run as one block, with no other thread scheduled in between, where R is a lock acquisition (a
// right mover: no other thread's step right after it can touch the lock), L a release (a left
// mover), N any other step, and B a step that commutes with every step any other thread can take:
// whatever it touches, no other thread touches in a conflicting way, or only while holding a lock
// this thread holds too (exclusively on one side). Any interleaving is then equivalent to one in
// which each block runs without interruption, so the explorer need not schedule inside blocks.
//
// Whether a step is B depends on what every thread touches in every execution, which is learned
// as the search goes: the access log records every step taken and every step seen pending, with
// the locks its thread held. A step classified B under the log as it was is remembered; if a later
// record contradicts it, the search was built on a wrong assumption and starts again with the
// log it has (which only grows, so this ends). A search that ends with no contradiction has seen
// every access its reductions relied on.
import { LOCK_ACQUIRE, LOCK_RELEASE, LOCK_TRYLOCK, Mutex, type Acc, type Ev, type Span, type Task } from '../kernel/sched/sched.ts';

export type Mover = 'R' | 'L' | 'B' | 'N';

interface Hold {
  lock: string;
  /** held so that no other holder can be in at the same time (a mutex, or a rwsem for write) */
  excl: boolean;
  /** a rwsem held for read: excludes writers only */
  read: boolean;
}
interface Access {
  t: number;
  acc: Acc;
  holds: Hold[];
  span?: Span;
}

function holdsOf(t: Task): Hold[] {
  return t.held.map((h) => ({ lock: h.lock.name, excl: h.lock instanceof Mutex || h.mode === 'w', read: !(h.lock instanceof Mutex) && h.mode === 'r' }));
}
/** An access as a key: thread, object or space, read or write, span, the locks held (holdsKey). */
const accessId = (t: number, key: string, acc: Acc, span: Span | undefined, hk: string) => `${t}|${key}|${acc}|${span ? `${span.lo}-${span.hi}-${span.level}${span.table ? 't' : ''}${span.fill ? 'f' : ''}` : ''}|${hk}`;
const holdsKey = (hs: Hold[]) => hs.map((h) => `${h.lock}/${h.read ? 'r' : h.excl ? 'x' : 'w'}`).join(',');
/** Two accesses cannot overlap in time: some lock both hold, not both as readers of a rwsem. */
function excluded(a: Hold[], b: Hold[]): boolean {
  for (const x of a) for (const y of b) if (x.lock === y.lock && !(x.read && y.read)) return true;
  return false;
}
const overlaps = (s: Span, t: Span) => s.lo < t.hi && t.lo < s.hi && (s.level === undefined || t.level === undefined || s.level === t.level);

/**
 * Where logs of different threads meet (sharedstore.ts): every access one log records is appended,
 * and `since` gives what the others appended after a cursor.
 */
export interface AccessJournal {
  append(entry: string): void;
  since(cursor: number): { entries: string[]; cursor: number };
}

export class AccessLog {
  private readonly objs = new Map<string, Access[]>();
  private readonly spaces = new Map<string, Access[]>();
  private readonly seen = new Set<string>();
  /** accesses a B classification relied on */
  private readonly assumed: Array<{ key: string; a: Access }> = [];
  private readonly assumedKeys = new Set<string>();
  /** a record contradicted an assumption: the search must start again */
  invalid = false;
  /** how many searches were started again */
  restarts = 0;

  /** the journal this log writes its accesses to and reads other threads' from, if any */
  private journal: AccessJournal | null = null;
  private journalCursor = 0;

  /** `threadsBind`: some thread binds a name (`as:`) that an operation's start may read */
  constructor(private readonly threadsBind = true) {}

  /** Share this log's accesses from now on, and learn those other threads' logs share. */
  join(journal: AccessJournal): void {
    this.journal = journal;
  }
  get joined(): boolean {
    return this.journal !== null;
  }

  /**
   * Take in what other threads' logs recorded since last time (before this thread reuses a state
   * one of them explored: the accesses below it are among them). May invalidate the search.
   */
  absorb(): void {
    if (!this.journal) return;
    const { entries, cursor } = this.journal.since(this.journalCursor);
    this.journalCursor = cursor;
    for (const x of entries) {
      const [t, key, acc, span, holds] = JSON.parse(x) as [number, string, Acc, Span | null, Hold[]];
      this.add(t, key, acc, span ?? undefined, holds, holdsKey(holds), false);
    }
  }

  /** Start a search again: what it assumed goes, what it saw stays. */
  restart(): void {
    this.assumed.length = 0;
    this.assumedKeys.clear();
    this.invalid = false;
    this.restarts++;
  }

  /** Record step `e` of thread `t` (taken, or pending with the locks `task` holds now). */
  record(t: number, task: Task, e: Ev): void {
    const mine = holdsOf(task), mineKey = holdsKey(mine);
    // what a read-only section declares it reads is read inside it, holding the mutex (as kind
    // takes it): a write elsewhere under the same mutex does not conflict with it
    const inside = LOCK_ACQUIRE.has(e.op) ? [...mine, { lock: e.obj, excl: true, read: false }] : null;
    const insideKey = inside && holdsKey(inside);
    for (const { key, acc, span } of accessesOf(e)) {
      const [holds, hk] = inside && key !== e.obj ? [inside, insideKey!] : [mine, mineKey];
      this.add(t, key, acc, span, holds, hk, true);
    }
  }

  private add(t: number, key: string, acc: Acc, span: Span | undefined, holds: Hold[], hk: string, share: boolean): void {
    const id = accessId(t, key, acc, span, hk);
    if (this.seen.has(id)) return;
    this.seen.add(id);
    const a: Access = span ? { t, acc, holds, span } : { t, acc, holds };
    const map = span ? this.spaces : this.objs;
    let l = map.get(key);
    if (!l) map.set(key, (l = []));
    l.push(a);
    if (!this.invalid) for (const x of this.assumed) if (x.key === key && this.conflicts(x.a, a)) this.invalid = true;
    if (share && this.journal) this.journal.append(JSON.stringify([t, key, acc, span ?? null, holds]));
  }

  private conflicts(a: Access, b: Access): boolean {
    if (a.t === b.t || (a.acc === 'r' && b.acc === 'r')) return false;
    if (a.span && b.span) {
      if (!overlaps(a.span, b.span)) return false;
      // a slot that points to a table stays one under fills (events.ts): no order between them
      // matters; a table freed meanwhile is a write over every level, which conflicts
      if ((a.span.table && b.span.fill) || (a.span.fill && b.span.table)) return false;
    }
    return !excluded(a.holds, b.holds);
  }

  /**
   * How step `e` of thread `t` moves, `task` holding what it holds now. A step classified B is
   * remembered, so that a later record that contradicts it invalidates the search.
   */
  kind(t: number, task: Task, e: Ev): Mover {
    if (e.block) return 'R';
    if (LOCK_ACQUIRE.has(e.op)) {
      // what a read-only section declares it reads must commute once the lock is held
      if (!e.also?.length) return 'R';
      const holds = [...holdsOf(task), { lock: e.obj, excl: true, read: false }];
      return this.commutes(t, holds, accessesOf(e).filter((x) => x.key !== e.obj)) ? 'R' : 'N';
    }
    if (LOCK_RELEASE.has(e.op)) return 'L';
    // a trylock is an acquisition when no other thread takes the lock in a conflicting mode
    if (LOCK_TRYLOCK.has(e.op)) return this.commutes(t, holdsOf(task), accessesOf(e)) ? 'R' : 'N';
    // an operation's start reads the names earlier operations bound: constant unless threads bind
    if (e.op === 'start') return this.threadsBind ? 'N' : 'B';
    // a wait (on a completion no other thread touches), like any other step, by what it touches
    return this.commutes(t, holdsOf(task), accessesOf(e)) ? 'B' : 'N';
  }

  private commutes(t: number, holds: Hold[], xs: Array<{ key: string; acc: Acc; span?: Span }>): boolean {
    const mine = xs.map((x) => ({ key: x.key, a: (x.span ? { t, acc: x.acc, holds, span: x.span } : { t, acc: x.acc, holds }) as Access }));
    for (const m of mine) for (const o of (m.a.span ? this.spaces : this.objs).get(m.key) ?? []) if (this.conflicts(m.a, o)) return false;
    const hk = holdsKey(holds);
    for (const m of mine) {
      const id = accessId(t, m.key, m.a.acc, m.a.span, hk);
      if (this.assumedKeys.has(id)) continue;
      this.assumedKeys.add(id);
      this.assumed.push(m);
    }
    return true;
  }
}

/** The accesses an event names: objects by key, spans by space. */
function accessesOf(e: Ev): Array<{ key: string; acc: Acc; span?: Span }> {
  const out: Array<{ key: string; acc: Acc; span?: Span }> = [];
  if (e.obj) out.push({ key: e.obj, acc: e.acc });
  if (e.also) for (const x of e.also) out.push({ key: x.obj, acc: x.acc });
  if (e.spans) for (const s of e.spans) out.push({ key: s.space, acc: s.acc, span: s });
  return out;
}

/**
 * Where a thread is in its block: before its commit step (R and B may follow), or after it (only
 * L and B). Returns the phase after `m`, or null when `m` cannot extend the block.
 */
export function extend(phase: 0 | 1, m: Mover): 0 | 1 | null {
  if (m === 'B') return phase;
  if (phase === 0) return m === 'R' ? 0 : 1;
  return m === 'L' ? 1 : null;
}
