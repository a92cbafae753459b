// A deep copy of a run's object graph, for ScenarioRun.fork: every object reachable from the roots
// is copied once (shared and cyclic references stay shared and cyclic in the copy), with its
// prototype, so class instances keep their methods. Functions are kept as they are: module-level
// code is shared, and whatever closed over the original (ops tables, callbacks, generators) is the
// caller's to bind again; forkPlan says what a copy must share and what it must not keep.

/**
 * Copy `root`; objects in `keep` (and frozen ones) are shared, not copied. `still`: the caller
 * copies the same unchanging graph, with the same `keep`, again and again (a booted run), so the
 * copy is compiled once into straight-line code (compileCopy) and only run after that.
 */
export function cloneGraph<T>(root: T, keep: ReadonlySet<object>, still = false): T {
  if (still && typeof root === 'object' && root !== null) {
    let c = COMPILED.get(root);
    if (c === undefined) COMPILED.set(root, (c = compileCopy(root, keep)));
    if (c) return c() as T;
  }
  const copies = new Map<object, object>();
  const buffers = new Map<ArrayBufferLike, ArrayBufferLike>();
  const dup = (v: unknown): unknown => {
    if (typeof v !== 'object' || v === null) return v;
    const seen = copies.get(v);
    if (seen) return seen;
    if (kept(v, keep)) return v;
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
    return copierOf(v)(v, dup, register);
  };
  const register = (o: object, c: object) => void copies.set(o, c);
  return dup(root) as T;
}

/** What a copy shares with the original: `keep`, frozen objects, and generators (the caller's to replace). */
const kept = (v: object, keep: ReadonlySet<object>) => keep.has(v) || Object.isFrozen(v) || Object.prototype.toString.call(v) === '[object Generator]';

type Copier = (o: object, dup: (v: unknown) => unknown, register: (o: object, c: object) => void) => object;
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
  const C = constructorOf(proto, keys);
  const q = keys.map((k) => JSON.stringify(k));
  const copy = C ? (new Function('C', `return (o, dup, register) => { const c = new C(); register(o, c); ${q.map((k) => `c[${k}] = dup(o[${k}]);`).join(' ')} return c; };`)(C) as Copier) : copyByKeys(proto);
  l.set(id, copy);
  return copy;
}

/** Constructors by prototype and key list; null where a generated one cannot do (a null prototype, a `__proto__` key). */
const CONSTRUCTORS = new Map<object | null, Map<string, (new () => object) | null>>();
/** A constructor of objects with prototype `proto` and fields `keys`, all undefined until filled. */
function constructorOf(proto: object | null, keys: string[]): (new () => object) | null {
  let l = CONSTRUCTORS.get(proto);
  if (!l) CONSTRUCTORS.set(proto, (l = new Map()));
  const id = keys.join('\u0000');
  let C = l.get(id);
  if (C === undefined) {
    // its prototype is the class's, so the copy is an instance of the class
    const body = `function Copy() { ${keys.map((k) => `this[${JSON.stringify(k)}] = undefined;`).join(' ')} } Copy.prototype = P; return Copy;`;
    C = keys.includes('__proto__') || proto === null ? null : (new Function('P', body)(proto) as new () => object);
    l.set(id, C);
  }
  return C;
}

/** Compiled copies of graphs copied again and again (null: not compilable, copied the slow way). */
const COMPILED = new WeakMap<object, (() => unknown) | null>();

/**
 * Compile the copy of an unchanging graph (the same objects, the same fields, each time): every
 * object it reaches is numbered in the order `cloneGraph` visits them, and one generated function
 * makes them all (typed-array buffers copied, class instances by their constructor) and then sets
 * every field, element and entry, from another copy or from a value shared with the original. No
 * lookups per object at copy time: a booted run of about 200 objects (fault-vs-revoke-2x2x4)
 * copies in about 15 us instead of 53. Null when an object's kind has no straight-line copy.
 */
function compileCopy(root: object, keep: ReadonlySet<object>): (() => unknown) | null {
  const index = new Map<object, number>();
  const values: unknown[] = [];
  const value = (v: unknown) => `V[${values.push(v) - 1}]`;
  const buffers = new Map<ArrayBufferLike, string>();
  const make: string[] = [], fill: string[] = [];
  const shared = (v: unknown) => typeof v !== 'object' || v === null || kept(v, keep);
  const ref = (v: unknown): string => {
    if (shared(v)) return value(v);
    const o = v as object;
    const known = index.get(o);
    if (known !== undefined) return `o${known}`;
    const i = index.size;
    index.set(o, i);
    if (ArrayBuffer.isView(o)) {
      let b = buffers.get(o.buffer);
      if (!b) {
        buffers.set(o.buffer, (b = `b${buffers.size}`));
        make.push(`const ${b} = ${value(o.buffer)}.slice(0);`);
      }
      const per = (o as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1;
      make.push(`const o${i} = new ${value(o.constructor)}(${b}, ${o.byteOffset}, ${o.byteLength / per});`);
    } else if (Array.isArray(o)) {
      make.push(`const o${i} = new Array(${o.length});`);
      for (let j = 0; j < o.length; j++) fill.push(`o${i}[${j}] = ${ref(o[j])};`);
    } else if (o instanceof Map) {
      make.push(`const o${i} = new Map();`);
      for (const [k, x] of o) fill.push(`o${i}.set(${ref(k)}, ${ref(x)});`);
    } else if (o instanceof Set) {
      make.push(`const o${i} = new Set();`);
      for (const x of o) fill.push(`o${i}.add(${ref(x)});`);
    } else {
      const proto = Object.getPrototypeOf(o) as object | null, keys = Object.keys(o), C = constructorOf(proto, keys);
      // without a prototype a `__proto__` key is a plain field; with one it would set the prototype
      if (!C && proto !== null) throw new NotCompilable();
      make.push(C ? `const o${i} = new ${value(C)}();` : `const o${i} = Object.create(null);`);
      for (const k of keys) fill.push(`o${i}[${JSON.stringify(k)}] = ${ref((o as Record<string, unknown>)[k])};`);
    }
    return `o${i}`;
  };
  let top: string;
  try {
    top = ref(root);
  } catch (e) {
    if (e instanceof NotCompilable) return null;
    throw e;
  }
  // every copy exists before any field is set; a Map or Set gets its entries in the original's order
  try {
    return new Function('V', `return () => { ${make.join('\n')}\n${fill.join('\n')}\nreturn ${top}; };`)(values) as () => unknown;
  } catch {
    return null; // a graph too large for one function: copied the slow way
  }
}
class NotCompilable extends Error {}

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
