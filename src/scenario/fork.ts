// A deep copy of a run's object graph, for ScenarioRun.fork: every object reachable from the roots
// is copied once (shared and cyclic references stay shared and cyclic in the copy), with its
// prototype, so class instances keep their methods. Functions are kept as they are: module-level
// code is shared, and whatever closed over the original (ops tables, callbacks, generators) is the
// caller's to bind again; forkPlan says what a copy must share and what it must not keep.

/**
 * Copy `root`; objects in `keep` (and frozen ones) are shared, not copied. `still`: the caller
 * copies the same unchanging graph again and again (a booted run), so how to copy each of its
 * objects is worked out once and kept with the object.
 */
export function cloneGraph<T>(root: T, keep: ReadonlySet<object>, still = false): T {
  const copies = new Map<object, object>();
  const buffers = new Map<ArrayBufferLike, ArrayBufferLike>();
  const dup = (v: unknown): unknown => {
    if (typeof v !== 'object' || v === null) return v;
    const seen = copies.get(v);
    if (seen) return seen;
    if (keep.has(v) || Object.isFrozen(v)) return v;
    if (ArrayBuffer.isView(v)) {
      // views of one buffer stay views of one (copied) buffer
      let b = buffers.get(v.buffer);
      if (!b) buffers.set(v.buffer, (b = v.buffer.slice(0)));
      const C = v.constructor as new (b: ArrayBufferLike, off: number, len: number) => ArrayBufferView;
      const per = (v as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1;
      const c = new C(b, v.byteOffset, v.byteLength / per);
      copies.set(v, c);
      return c;
    }
    if (Array.isArray(v)) {
      const c: unknown[] = new Array(v.length);
      copies.set(v, c);
      for (let i = 0; i < v.length; i++) c[i] = dup(v[i]);
      return c;
    }
    if (v instanceof Map) {
      const c = new Map();
      copies.set(v, c);
      for (const [k, x] of v) c.set(dup(k), dup(x));
      return c;
    }
    if (v instanceof Set) {
      const c = new Set();
      copies.set(v, c);
      for (const x of v) c.add(dup(x));
      return c;
    }
    if (Object.prototype.toString.call(v) === '[object Generator]') return v; // the caller's to replace
    let copy = still ? KNOWN.get(v) : undefined;
    if (!copy) {
      copy = copierOf(v);
      if (still) KNOWN.set(v, copy);
    }
    return copy(v, dup, register);
  };
  const register = (o: object, c: object) => void copies.set(o, c);
  return dup(root) as T;
}

type Copier = (o: object, dup: (v: unknown) => unknown, register: (o: object, c: object) => void) => object;
/** The copier of each object of a graph copied again and again (`still`). */
const KNOWN = new WeakMap<object, Copier>();
/** Copiers by prototype, then by key list. */
const COPIERS = new Map<object | null, Map<string, Copier>>();

/**
 * A copier for objects with `o`'s prototype and keys: a generated constructor that gives the copy
 * room for every field before it is filled (Object.create then property by property keeps most
 * fields out of line, and the kernel's code ran on such copies about 10% slower).
 */
function copierOf(o: object): Copier {
  const proto = Object.getPrototypeOf(o) as object | null, keys = Object.keys(o);
  let l = COPIERS.get(proto);
  if (!l) COPIERS.set(proto, (l = new Map()));
  const id = keys.join('\u0000');
  const known = l.get(id);
  if (known) return known;
  const q = keys.map((k) => JSON.stringify(k));
  // its prototype is the class's, so the copy is an instance of the class
  const body = `function Copy() { ${q.map((k) => `this[${k}] = undefined;`).join(' ')} } Copy.prototype = P; return (o, dup, register) => { const c = new Copy(); register(o, c); ${q.map((k) => `c[${k}] = dup(o[${k}]);`).join(' ')} return c; };`;
  const copy = keys.includes('__proto__') || proto === null ? copyByKeys(proto) : (new Function('P', body)(proto) as Copier);
  l.set(id, copy);
  return copy;
}
const copyByKeys = (proto: object | null): Copier => (o, dup, register) => {
  const c = Object.create(proto) as Record<string, unknown>;
  register(o, c);
  for (const k of Object.keys(o)) c[k] = dup((o as Record<string, unknown>)[k]);
  return c;
};

/** Every object and function reachable from `root`. */
function reachable(root: unknown): Set<unknown> {
  const out = new Set<unknown>();
  const go = (v: unknown) => {
    if (v === null || (typeof v !== 'object' && typeof v !== 'function') || out.has(v)) return;
    out.add(v);
    if (typeof v === 'function' || ArrayBuffer.isView(v)) return;
    if (v instanceof Map) for (const [k, x] of v) (go(k), go(x));
    else if (v instanceof Set) for (const x of v) go(x);
    else for (const key of Object.keys(v)) go((v as Record<string, unknown>)[key]);
  };
  go(root);
  return out;
}

/** What a copy of a run must share, and what it must not keep. */
export interface ForkPlan {
  /** objects a second run built the same way reaches too: module-level tables (file ops, ...) and the inputs, compared by identity */
  shared: Set<object>;
  /** functions and generators the second run does not have: closures over the first run's own objects */
  closures: Set<object>;
}

/** Compare two runs built the same way (`a` to be copied, `b` only for the comparison). */
export function forkPlan(a: unknown, b: unknown): ForkPlan {
  const ra = reachable(a), rb = reachable(b);
  const shared = new Set<object>(), closures = new Set<object>();
  for (const x of ra) {
    if (rb.has(x)) shared.add(x as object);
    else if (typeof x === 'function' || Object.prototype.toString.call(x) === '[object Generator]') closures.add(x as object);
  }
  return { shared, closures };
}

/** Whether any of `bad` is reachable from `root` (a function, a generator or a plain object). */
export function reaches(root: unknown, bad: ReadonlySet<object>): boolean {
  const r = reachable(root);
  for (const x of bad) if (r.has(x)) return true;
  return false;
}
