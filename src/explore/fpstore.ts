// The explorer's store of visited states (TLC's fp/ in miniature): a fingerprint maps to what the
// completed exploration below that state needs to be reused. One interface, an in-memory
// implementation; a disk-backed one can take its place for searches that outgrow memory.

export interface StateEntry {
  /** the threads asleep when the state was first explored: a revisit with fewer asleep explores again */
  sleep: number[];
  /** the events (task << 16 | event id) executed anywhere below the state, for race propagation */
  summary: Set<number>;
}

export interface FingerprintStore {
  get(fp: string): StateEntry | undefined;
  set(fp: string, e: StateEntry): void;
  readonly size: number;
  entries(): Iterable<[string, StateEntry]>;
}

export class MemFpStore implements FingerprintStore {
  private readonly map = new Map<string, StateEntry>();
  get(fp: string): StateEntry | undefined {
    return this.map.get(fp);
  }
  set(fp: string, e: StateEntry): void {
    this.map.set(fp, e);
  }
  get size(): number {
    return this.map.size;
  }
  entries(): Iterable<[string, StateEntry]> {
    return this.map.entries();
  }
}
