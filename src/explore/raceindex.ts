// Which steps of the current execution a new event can race with. Two events are dependent only
// if they name a common object or touch a common address space (events.ts `dependent`), so the
// steps worth testing are those filed under one of the event's keys: the race searches of DPOR
// look at those instead of walking the whole stack. Entries are kept per key in step order, and
// cut back with the stack when the search backtracks.
import type { Ev } from '../kernel/sched/sched.ts';

/** The keys an event is filed under: its objects, and its spans' spaces (apart from objects). */
export function keysOf(e: Ev): string[] {
  const out: string[] = [];
  if (e.obj) out.push(e.obj);
  if (e.also) for (const x of e.also) if (!out.includes(x.obj)) out.push(x.obj);
  // an insert names several levels of one table: one key
  if (e.spans) for (const s of e.spans) if (!out.includes(`\u0000${s.space}`)) out.push(`\u0000${s.space}`);
  return out;
}

export class RaceIndex {
  private readonly byKey = new Map<string, number[]>();
  /** the keys each filed step went under, to cut it out again */
  private readonly keysAt: string[][] = [];

  /** File step `i` (steps are filed in increasing order, after `truncate` below it). */
  add(i: number, e: Ev): void {
    const keys = keysOf(e);
    this.keysAt[i] = keys;
    for (const k of keys) {
      let l = this.byKey.get(k);
      if (!l) this.byKey.set(k, (l = []));
      if (l[l.length - 1] !== i) l.push(i);
    }
  }

  /** Forget steps `from` and later. */
  truncate(from: number): void {
    for (let i = this.keysAt.length - 1; i >= from; i--) {
      const keys = this.keysAt[i];
      if (keys)
        for (const k of keys) {
          const l = this.byKey.get(k)!;
          while (l.length && l[l.length - 1] >= from) l.pop();
        }
    }
    if (this.keysAt.length > from) this.keysAt.length = from;
  }

  /** The filed steps before `before` that share a key with `e`, latest first. */
  candidates(e: Ev, before: number): number[] {
    const keys = keysOf(e);
    if (keys.length === 1) {
      const l = this.byKey.get(keys[0]);
      if (!l) return [];
      const out: number[] = [];
      for (let j = l.length - 1; j >= 0; j--) if (l[j] < before) out.push(l[j]);
      return out;
    }
    // the lists are in step order: merge them from their ends, latest first, each step once
    const ls: number[][] = [], at: number[] = [];
    for (const k of keys) {
      const l = this.byKey.get(k);
      if (!l?.length) continue;
      let j = l.length - 1;
      while (j >= 0 && l[j] >= before) j--;
      if (j >= 0) (ls.push(l), at.push(j));
    }
    const out: number[] = [];
    for (;;) {
      let best = -1;
      for (let q = 0; q < ls.length; q++) if (at[q] >= 0 && (best < 0 || ls[q][at[q]] > ls[best][at[best]])) best = q;
      if (best < 0) return out;
      const i = ls[best][at[best]];
      if (out[out.length - 1] !== i) out.push(i);
      at[best]--;
    }
  }
}
