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
  if (e.also) for (const x of e.also) out.push(x.obj);
  if (e.spans) for (const s of e.spans) out.push(`\u0000${s.space}`);
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
    const seen = new Set<number>();
    for (const k of keys) {
      const l = this.byKey.get(k);
      if (l) for (const i of l) if (i < before) seen.add(i);
    }
    return [...seen].sort((a, b) => b - a);
  }
}
