// The event vocabulary of scheduling points, and the dependence relation the explorer reads from it.
//
// A kernel path yields an event before each step another thread could race with. The event names
// what the step touches: objects by name (a lock, a buffer's private state, a file's count), and
// spans of an address-like space (page-table slots over a VA range, physical memory, a function's
// config space). Two steps of different threads are dependent when they touch a common object or
// overlapping span and at least one writes it; everything else commutes, which is what partial-order
// reduction relies on. A step must touch only what its event names, or what a lock it holds
// protects (the lock's own events then order it).

/**
 * Lock operations, by event op: acquisitions that may sleep (and the wake-up that completes one),
 * trylocks, and releases. The explorer's reductions treat them by kind.
 */
export const LOCK_ACQUIRE: ReadonlySet<string> = new Set(['down_read', 'down_write', 'mutex_lock', 'down_read:woken', 'down_write:woken', 'mutex_lock:woken']);
export const LOCK_TRYLOCK: ReadonlySet<string> = new Set(['down_read_trylock', 'down_write_trylock', 'mutex_trylock']);
export const LOCK_RELEASE: ReadonlySet<string> = new Set(['up_read', 'up_write', 'mutex_unlock']);

/** How a step touches an object: read-only steps on the same object commute. */
export type Acc = 'r' | 'w';

/**
 * A span [lo, hi) of an address-like space. `level` refines page-table spaces: a slot of level 0
 * (PTE), 1 (PMD) or 2 (PUD) is a different word from the slots above and below it, so an insert at
 * one level commutes with a read of another level's slot; a span without a level covers every
 * level (a walk reads all of them; a zap may clear a leaf at any level).
 */
export interface Span {
  space: string;
  lo: number;
  hi: number;
  acc: Acc;
  level?: number;
  /**
   * Page-table slots above the PTEs: a read of a slot that pointed to a table when the step was
   * announced (`table`), a write that only ever changes a slot that does not (`fill`: allocating a
   * table in an empty slot, installing a huge leaf in one, clearing a leaf). While a slot points to
   * a table no fill can change it (only freeing tables does, a write over every level), so the two
   * commute; the atomic-block classification relies on it (explore/movers.ts), the dependence
   * relation below does not (a read announced earlier may meet a table freed meanwhile).
   */
  table?: true;
  fill?: true;
  /**
   * A hardware walk (the MMU's, an EPT walk) of one address: what the step learns is only the
   * translation the walk ends in (none, or a leaf), not which tables it passed; state caching
   * fingerprints that (explore/state.ts observe).
   */
  walk?: true;
}

export interface Ev {
  /** what the step does, e.g. "down_read", "insert_pfn", "fput" */
  op: string;
  /** the object it touches, e.g. "gpu0.memory_lock" ('' for none) */
  obj: string;
  acc: Acc;
  /** further objects the same step touches */
  also?: ReadonlyArray<{ obj: string; acc: Acc }>;
  /** spans of address-like spaces the step touches */
  spans?: ReadonlyArray<Span>;
  /** the task goes to sleep here and runs again only when another task wakes it */
  block?: boolean;
}

export function ev(op: string, obj: string, acc: Acc = 'w', also?: Ev['also'], spans?: Ev['spans']): Ev {
  const e: Ev = { op, obj, acc };
  if (also?.length) e.also = also;
  if (spans?.length) e.spans = spans;
  return e;
}

/** A span of one page-table level, or of every level (level undefined). */
export function ptSpan(space: string, lo: number, hi: number, acc: Acc, level?: number): Span {
  return level === undefined ? { space, lo, hi, acc } : { space, lo, hi, acc, level };
}

/** A hardware walk of one address in a page-table space (Span.walk). */
export function walkSpan(space: string, va: number): Span {
  return { space, lo: va, hi: va + 1, acc: 'r', walk: true };
}

/** Whether two events conflict: a common object or overlapping span, and at least one writer. */
export function dependent(a: Ev, b: Ev): boolean {
  if (b.obj && touches(a, b.obj, b.acc)) return true;
  if (b.also) for (const x of b.also) if (touches(a, x.obj, x.acc)) return true;
  if (a.spans && b.spans) for (const s of a.spans) for (const t of b.spans) if (spansConflict(s, t)) return true;
  return false;
}
function touches(a: Ev, obj: string, acc: Acc): boolean {
  if (a.obj === obj && (a.acc === 'w' || acc === 'w')) return true;
  if (a.also) for (const x of a.also) if (x.obj === obj && (x.acc === 'w' || acc === 'w')) return true;
  return false;
}
export function spansConflict(s: Span, t: Span): boolean {
  return (
    s.space === t.space &&
    (s.acc === 'w' || t.acc === 'w') &&
    s.lo < t.hi &&
    t.lo < s.hi &&
    (s.level === undefined || t.level === undefined || s.level === t.level)
  );
}

/**
 * Announce a step whose target is read from shared state (the entry a walk finds, the translation
 * an IOMMU finds): yield the event for the target seen now; if another thread changed it before the
 * step runs, the step only re-reads it and announces the new target, until it holds still. Returns
 * the target the step then acts on, so the event always names what the step touches.
 */
export function* announceTarget<T>(target: () => T, evOf: (t: T) => Ev): Generator<Ev, T, void> {
  let seen = target();
  yield evOf(seen);
  for (let now = target(); now !== seen; now = target()) yield evOf((seen = now));
  return seen;
}

/** Every named object the event touches, with its access. */
export function objectsOf(e: Ev): Array<{ obj: string; acc: Acc }> {
  const out = e.obj ? [{ obj: e.obj, acc: e.acc }] : [];
  if (e.also) out.push(...e.also);
  return out;
}
