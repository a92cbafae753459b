// The fingerprint store the jobs of one split search share, across worker threads (TLC's workers
// share one fingerprint set the same way). Two SharedArrayBuffers: an open-addressing table of
// 64-bit fingerprints, and an append-only arena of records, each written whole before the table
// points at it, so a reader sees a complete record or none.
//
// A job publishes its states only once its search has ended complete and valid (its atomic
// blocks' assumptions never contradicted): a state in the table stands for an exploration below
// it that is finished and sound. A reader that misses a state another thread is publishing just
// explores it again; a full table or arena only stops publishing. Both only cost time.
//
// With atomic blocks, a block's reduction holds while the thread's access log has seen every access
// the explored executions make (movers.ts), and below a state another thread explored only that
// thread's log has. So the logs share what they record through a journal here, and a thread takes
// in the others' entries before it reuses a state one of them published (the entries were written
// before the state was). A journal that overflowed stops reuse across threads.
//
// Records (Int32 words): an event [1, n, n UTF-16 code units of its key]; a summary [2, n, then n
// pairs of task and event offset]; a state [3, summary offset, publisher, k, k sleeping tasks]; a
// journal entry [4, n, n code units].
import type { Acc, Ev, Span } from '../kernel/sched/sched.ts';
import type { AccessJournal } from './movers.ts';

/** What crosses to a worker: the buffers. */
export interface SharedStoreBuffers {
  table: SharedArrayBuffer;
  arena: SharedArrayBuffer;
  /** the access journal's index: [entries reserved, then each entry's arena offset (-1: lost)] */
  journal: SharedArrayBuffer;
}

/** Slots: 4 Mi (48 MiB); arena: 16 Mi words (64 MiB); journal: 1 Mi entries. Untouched pages cost no memory. */
export function sharedStoreBuffers(slots = 1 << 22, arenaWords = 1 << 24, journalEntries = 1 << 20): SharedStoreBuffers {
  return { table: new SharedArrayBuffer(4 * (HEADER + 3 * slots)), arena: new SharedArrayBuffer(4 * arenaWords), journal: new SharedArrayBuffer(4 * (1 + journalEntries)) };
}

/** Table header: [published states, publishers so far, journal lost an entry]. */
const HEADER = 3;

/** An event as text that names it exactly (op, object, access, what else it touches), and back. */
export const eventKey = (e: Ev): string => JSON.stringify([e.op, e.obj, e.acc, e.also ?? null, e.spans ?? null]);
function eventOfKey(key: string): Ev {
  const [op, obj, acc, also, spans] = JSON.parse(key) as [string, string, Acc, Ev['also'] | null, Span[] | null];
  const e: Ev = { op, obj, acc };
  if (also) e.also = also;
  if (spans) e.spans = spans;
  return e;
}

export class SharedStates {
  /** [HEADER words, then per slot: fingerprint high word | 1, low word | 1, record offset] */
  private readonly table: Int32Array;
  /** [next free word, then records] */
  private readonly arena: Int32Array;
  private readonly mask: number;
  /** publishing stops at three quarters full, so that probes stay short */
  private readonly maxStates: number;
  /** this thread's number among those publishing to the store */
  readonly publisher: number;
  /** this thread's offsets of the events it wrote or read, by key, and back */
  private readonly eventAt = new Map<string, number>();
  private readonly eventOf = new Map<number, Ev>();

  private readonly index: Int32Array;

  constructor(readonly buffers: SharedStoreBuffers) {
    this.table = new Int32Array(buffers.table);
    this.arena = new Int32Array(buffers.arena);
    this.index = new Int32Array(buffers.journal);
    this.mask = (this.table.length - HEADER) / 3 - 1;
    if (this.mask & (this.mask + 1)) throw new Error('shared state table: slots must be a power of two');
    this.maxStates = Math.floor(((this.mask + 1) * 3) / 4);
    this.publisher = Atomics.add(this.table, 1, 1);
    Atomics.compareExchange(this.arena, 0, 0, 1);
  }

  /** States published by every thread so far. */
  get size(): number {
    return Atomics.load(this.table, 0);
  }

  /** The state record of fingerprint (a, b), or -1. */
  get(a: number, b: number): number {
    const ka = a | 1, kb = b | 1;
    for (let i = (b >>> 0) & this.mask, n = 0; n <= this.mask; i = (i + 1) & this.mask, n++) {
      const s = HEADER + 3 * i, x = Atomics.load(this.table, s);
      if (x === 0) return -1;
      if (x !== ka) continue;
      const y = Atomics.load(this.table, s + 1);
      if (y === 0) return -1; // being written: a miss, explored again
      if (y === kb) return Atomics.load(this.table, s + 2);
    }
    return -1;
  }

  /** Publish fingerprint (a, b) with its state record; false when the table is full. */
  put(a: number, b: number, rec: number): boolean {
    if (Atomics.load(this.table, 0) >= this.maxStates) return false;
    const ka = a | 1, kb = b | 1;
    for (let i = (b >>> 0) & this.mask, n = 0; n <= this.mask; i = (i + 1) & this.mask, n++) {
      const s = HEADER + 3 * i;
      let x = Atomics.load(this.table, s);
      if (x === 0) {
        x = Atomics.compareExchange(this.table, s, 0, ka);
        if (x === 0) {
          // the slot is ours: its record, then the low word that makes it visible
          Atomics.store(this.table, s + 2, rec);
          Atomics.store(this.table, s + 1, kb);
          Atomics.add(this.table, 0, 1);
          return true;
        }
      }
      if (x !== ka) continue;
      // the same high word: wait for its low word (a writer stores it right after claiming)
      let y = Atomics.load(this.table, s + 1);
      while (y === 0) y = Atomics.load(this.table, s + 1);
      if (y === kb) {
        Atomics.store(this.table, s + 2, rec); // explored again: the later record stands (as in MemFpStore)
        return true;
      }
    }
    return false;
  }

  /** The access journal the threads' logs share (movers.ts AccessJournal). */
  readonly journal: AccessJournal = {
    append: (entry) => {
      const slot = Atomics.add(this.index, 0, 1);
      const at = slot + 1 < this.index.length ? this.text(4, entry) : -1;
      if (at < 0) Atomics.store(this.table, 2, 1);
      if (slot + 1 < this.index.length) Atomics.store(this.index, slot + 1, at);
    },
    since: (cursor) => {
      const n = Math.min(Atomics.load(this.index, 0), this.index.length - 1), entries: string[] = [];
      for (let i = cursor; i < n; i++) {
        // a slot is written right after it is reserved: wait for it rather than skip it
        let at = Atomics.load(this.index, i + 1);
        while (at === 0) at = Atomics.load(this.index, i + 1);
        if (at >= 0) entries.push(this.readText(at)); // else lost (the journal broke: no reuse across threads any more)
      }
      return { entries, cursor: Math.max(cursor, n) };
    },
  };

  /** Whether the journal lost an entry (full): the threads' logs can no longer vouch for each other's states. */
  get journalBroken(): boolean {
    return Atomics.load(this.table, 2) !== 0 || Atomics.load(this.index, 0) >= this.index.length - 1;
  }

  /** Room for `n` words in the arena, or -1 when it is full. */
  private alloc(n: number): number {
    for (;;) {
      const at = Atomics.load(this.arena, 0);
      if (at + n > this.arena.length) return -1;
      if (Atomics.compareExchange(this.arena, 0, at, at + n) === at) return at;
    }
  }

  /** Write a text record [kind, n, n UTF-16 code units]; its offset, or -1 when the arena is full. */
  private text(kind: number, x: string): number {
    const at = this.alloc(2 + x.length);
    if (at < 0) return -1;
    this.arena[at] = kind;
    this.arena[at + 1] = x.length;
    for (let i = 0; i < x.length; i++) this.arena[at + 2 + i] = x.charCodeAt(i);
    return at;
  }
  private readText(at: number): string {
    const n = this.arena[at + 1];
    let x = '';
    for (let i = 0; i < n; i++) x += String.fromCharCode(this.arena[at + 2 + i]);
    return x;
  }

  /** The offset of an event's record, written now if this thread has not met it (-1: arena full). */
  event(e: Ev): number {
    const key = eventKey(e);
    let at = this.eventAt.get(key);
    if (at !== undefined) return at;
    at = this.text(1, key);
    if (at < 0) return -1;
    this.eventAt.set(key, at);
    this.eventOf.set(at, e);
    return at;
  }

  private eventAtOffset(at: number): Ev {
    let e = this.eventOf.get(at);
    if (!e) {
      const key = this.readText(at);
      e = eventOfKey(key);
      this.eventOf.set(at, e);
      this.eventAt.set(key, at);
    }
    return e;
  }

  /** Write a summary: (task, event) pairs. Returns its offset, or -1 when the arena is full. */
  summary(pairs: Array<[number, Ev]>): number {
    const evs = pairs.map(([, e]) => this.event(e));
    if (evs.includes(-1)) return -1;
    const at = this.alloc(2 + 2 * pairs.length);
    if (at < 0) return -1;
    this.arena[at] = 2;
    this.arena[at + 1] = pairs.length;
    for (let i = 0; i < pairs.length; i++) {
      this.arena[at + 2 + 2 * i] = pairs[i][0];
      this.arena[at + 3 + 2 * i] = evs[i];
    }
    return at;
  }

  readSummary(at: number): Array<[number, Ev]> {
    const n = this.arena[at + 1], out: Array<[number, Ev]> = [];
    for (let i = 0; i < n; i++) out.push([this.arena[at + 2 + 2 * i], this.eventAtOffset(this.arena[at + 3 + 2 * i])]);
    return out;
  }

  /** Write a state record: its summary's offset, this publisher, its sleep set; -1 when the arena is full. */
  state(summary: number, sleep: number[]): number {
    const at = this.alloc(4 + sleep.length);
    if (at < 0) return -1;
    this.arena[at] = 3;
    this.arena[at + 1] = summary;
    this.arena[at + 2] = this.publisher;
    this.arena[at + 3] = sleep.length;
    for (let i = 0; i < sleep.length; i++) this.arena[at + 4 + i] = sleep[i];
    return at;
  }

  readState(at: number): { summary: number; publisher: number; sleep: number[] } {
    const k = this.arena[at + 3], sleep: number[] = [];
    for (let i = 0; i < k; i++) sleep.push(this.arena[at + 4 + i]);
    return { summary: this.arena[at + 1], publisher: this.arena[at + 2], sleep };
  }
}
