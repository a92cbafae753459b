// Fingerprints of explorer states, for state caching.
//
// A state is the kernel (every object reachable from it) plus, for each thread, what its program
// remembers. A thread's program is a generator whose locals cannot be read, so a thread is
// fingerprinted by what determines them: the results of its finished operations, and, for the
// operation in progress, the sequence of what each of its steps read (observe): (a) the values
// its event names (page-table slots, memory and config bytes, counters, a buffer's state), and
// (b) for a lock it takes, the state that lock protects, which later steps read unnamed while the
// lock is held. What no table here knows reads the whole "unnamed" kernel (everything but page
// tables, memory, lock internals, tasks and reference counts, which only named events touch).
// What a call marked with `traced` read is forgotten when it returns (callCollapse). Two states
// with equal fingerprints have equal futures, up to 64-bit hash collisions (as Spin's and TLC's).
import { Completion, lastInstall, LOCK_ACQUIRE, LOCK_RELEASE, LOCK_TRYLOCK, LockBase, Lockdep, Sched, Task, type Ev, type FuncGraph, type Span } from '../kernel/sched/sched.ts';
import { PageTable } from '../kernel/mm/pgtable.ts';
import { SparseMemory } from '../kernel/pci/device.ts';
import { VfioDevice, VfioDeviceFile } from '../kernel/vfio/vfio_main.ts';
import { VfioPciCoreDevice } from '../kernel/vfio/pci/core.ts';
import { PciBus } from '../kernel/pci/device.ts';
import { DmaBuf } from '../kernel/dma-buf/dma-buf.ts';
import { MmStruct, Vma } from '../kernel/mm/vma.ts';
import { Process } from '../kernel/process.ts';
import { Kernel } from '../kernel/kernel.ts';
import { AddressSpace, File } from '../kernel/fs/file.ts';
import { VfioPciDmaBuf } from '../kernel/vfio/pci/dmabuf.ts';
import type { ScenarioRun } from '../scenario/runner.ts';

const STRINGS = new Map<string, number>();
/** A string's 32-bit hash; strings repeat (field names, object names), so each is hashed once. */
function strHash(s: string): number {
  let v = STRINGS.get(s);
  if (v === undefined) {
    v = 0x811c9dc5 ^ s.length;
    for (let i = 0; i < s.length; i++) v = Math.imul(v ^ s.charCodeAt(i), 0x01000193);
    if (STRINGS.size < 1 << 16) STRINGS.set(s, v);
  }
  return v;
}
const VIEWS = new WeakMap<ArrayBufferView, { copy: Uint8Array; a: number; b: number }>();

/**
 * Contents hashed lately, by a digest of their first 256 bytes: every execution builds its config
 * spaces anew, with one of a few contents (COMMAND on or off, a power state), so a new view is
 * mostly found here by one compare instead of hashed whole.
 */
const CONTENTS = new Map<number, Array<{ copy: Uint8Array; a: number; b: number }>>();
function contentHash(now: Uint8Array): { copy: Uint8Array; a: number; b: number } {
  const head = new Hasher().bytes(now.subarray(0, 256)).fp() + now.length;
  let l = CONTENTS.get(head);
  if (!l) {
    if (CONTENTS.size >= 4096) CONTENTS.clear();
    CONTENTS.set(head, (l = []));
  }
  for (const c of l) if (Buffer.compare(c.copy, now) === 0) return c;
  const sub = new Hasher().bytes(now);
  const c = { copy: now.slice(), a: sub.a, b: sub.b };
  if (l.length < 8) l.push(c);
  return c;
}

/** A 64-bit hash as two 32-bit lanes (FNV-1a style mixing), streamed. */
export class Hasher {
  a = 0x811c9dc5;
  b = 0x01000193 ^ 0x5bd1e995;
  num(n: number): this {
    // integers and doubles alike: the low and high words of the value
    const lo = n | 0, hi = Number.isInteger(n) ? Math.floor(n / 4294967296) | 0 : (n * 1e6) | 0;
    this.mix(lo);
    return this.mix(hi ^ 0x9e3779b9);
  }
  str(s: string): this {
    return this.mix(strHash(s));
  }
  bytes(u: ArrayBufferView): this {
    const n = u.byteLength;
    this.mix(n);
    // four bytes a word where the view allows it
    const words = u.byteOffset % 4 === 0 ? new Int32Array(u.buffer, u.byteOffset, n >> 2) : null;
    const b = new Uint8Array(u.buffer, u.byteOffset, n);
    let i = 0;
    if (words) for (; i < words.length; i++) this.mix(words[i]);
    for (i *= 4; i < n; i++) this.mix(b[i]);
    return this;
  }
  /**
   * `bytes` of a view that is hashed again and again while it rarely changes (a config space): its
   * hash is kept with a copy of its contents, and reused while a compare says they are the same.
   */
  bytesCached(u: ArrayBufferView): this {
    const now = u instanceof Uint8Array ? u : new Uint8Array(u.buffer, u.byteOffset, u.byteLength);
    let c = VIEWS.get(u);
    if (!c || Buffer.compare(c.copy, now) !== 0) VIEWS.set(u, (c = contentHash(now)));
    return this.mix(c.a).mix(c.b);
  }
  mix(x: number): this {
    this.a = Math.imul(this.a ^ x, 0x01000193);
    this.b = Math.imul(this.b ^ (x + 0x7f4a7c15), 0x5bd1e995);
    this.b ^= this.b >>> 13;
    return this;
  }
  key(): string {
    return `${(this.a >>> 0).toString(36)}.${(this.b >>> 0).toString(36)}`;
  }
  /** The two lanes (as `a` and `b` hold them) of a fingerprint written by `key`. */
  static lanes(key: string): [number, number] {
    const dot = key.indexOf('.');
    return [parseInt(key.slice(0, dot), 36) | 0, parseInt(key.slice(dot + 1), 36) | 0];
  }
  /** The hash as one number (53 bits, exact as a double): for fingerprints mixed into others. */
  fp(): number {
    return (this.a >>> 0) * 2097152 + (this.b >>> 11);
  }
}

/** Objects that belong to the named part of the state (only named events touch them). */
const NAMED_CLASSES: Function[] = [PageTable, SparseMemory, Task, Sched, Lockdep, LockBase, Completion];
/** Reference counts, read and written only by named counter events. */
const NAMED_FIELDS = new Map<Function, Set<string>>([
  [VfioDevice, new Set(['refcount'])],
  [File, new Set(['refs'])],
  [VfioPciDmaBuf, new Set(['kref'])],
]);
/**
 * Bookkeeping that is not state: traces, notes, step counters, generators, the violation dedup set,
 * and the fault records of an operation in progress (a report, dropped with the operation's other
 * records when it ends; kernelHash keeps the one thing an expectation reads from them).
 */
const NEVER = new Set(['faults', 'trace', 'notes', 'stepNo', 'current', 'gen', 'seen', 'blame', 'recordTrace', 'steps']);
/** Owners of state a region does not include: met inside a region, they hash by identity. */
const OWNERS: Function[] = [Kernel, PciBus, Process, MmStruct, Vma, File, VfioDevice, DmaBuf, VfioPciCoreDevice, VfioPciDmaBuf];

/**
 * What the walk does with the objects one constructor makes, worked out once per constructor: the
 * hash of its name, whether it is a generator, in the named part, or an owner, and, per field name,
 * the field's hash or null when the field is not hashed (with and without the named part).
 */
interface Plan {
  name: number;
  generator: boolean;
  named: boolean;
  owner: boolean;
  lockdep: boolean;
  /** whether for-in can meet inherited keys (an enumerable property up the prototype chain) */
  inherits: boolean;
  fields: [Map<string, number | null>, Map<string, number | null>];
  /** the own keys of the object last walked, in order, with their field hashes (per `unnamedOnly`) */
  shape: [{ keys: string[]; hashes: Array<number | null> }, { keys: string[]; hashes: Array<number | null> }];
}
const PLANS = new Map<Function | undefined, Plan>();
function planOf(ctor: Function | undefined, o: object): Plan {
  let p = PLANS.get(ctor);
  if (!p) {
    p = {
      name: strHash(ctor?.name ?? ''),
      generator: Object.prototype.toString.call(o) === '[object Generator]',
      named: !!ctor && NAMED_CLASSES.some((c) => o instanceof c),
      owner: OWNERS.some((c) => o instanceof c),
      lockdep: o instanceof Lockdep,
      inherits: enumerableAbove(o),
      fields: [new Map(), new Map()],
      shape: [{ keys: [], hashes: [] }, { keys: [], hashes: [] }],
    };
    PLANS.set(ctor, p);
  }
  return p;
}
function enumerableAbove(o: object): boolean {
  for (let p = Object.getPrototypeOf(o); p; p = Object.getPrototypeOf(p)) if (Object.keys(p).length) return true;
  return false;
}
function fieldHash(ctor: Function | undefined, p: Plan, unnamedOnly: boolean, key: string): number | null {
  const m = p.fields[unnamedOnly ? 1 : 0];
  let v = m.get(key);
  if (v === undefined) {
    v = NEVER.has(key) || (unnamedOnly && ctor && NAMED_FIELDS.get(ctor)?.has(key)) ? null : strHash(key);
    m.set(key, v);
  }
  return v;
}

/** How a region walk treats an object: the region's own objects are walked, other owners named. */
type Stop = ((o: object, p: Plan) => boolean) | undefined;
const anyOwner: Stop = (_, p) => p.owner;
const ownerStop = (root: object): Stop => (o, p) => p.owner && o !== root;

/**
 * Deep hash of an object graph in a canonical walk order. `unnamedOnly` leaves out the named part
 * (NAMED_CLASSES, NAMED_FIELDS). Shared and cyclic references hash as the index of their first visit.
 */
function walk(h: Hasher, root: unknown, unnamedOnly: boolean, stop?: Stop): void {
  new Walk(h, unnamedOnly, stop).run(root);
}

/**
 * The walk's visit marks: a symbol-keyed property (no for-in, keys or JSON sees it) on each visited
 * object, holding the walk's number and the object's first-visit index. A Map of visited objects
 * was slower and made garbage at every state (kernelHash in a search: 34 us with it, 29 us with
 * marks). Walks never nest, so one running number tells this walk's marks from older ones.
 */
const MARK = Symbol('vfio-sim walk mark');
let walks = 0;
let walking = false;
const MARK_SPAN = 1 << 20;

/** One walk: its hasher, what it leaves out, and how many objects it has visited. */
class Walk {
  private visited = 0;
  private readonly base: number;
  constructor(
    private readonly h: Hasher,
    private readonly unnamedOnly: boolean,
    private readonly stop: Stop,
  ) {
    this.base = ++walks * MARK_SPAN;
  }

  run(root: unknown): void {
    if (walking) throw new Error('state walks do not nest');
    walking = true;
    try {
      this.go(root);
    } finally {
      walking = false;
    }
  }

  /** The object's first-visit index in this walk, or -1 after marking it visited now. */
  private mark(o: object): number {
    const m = (o as { [MARK]?: number })[MARK];
    if (m !== undefined && m >= this.base) return m - this.base;
    if (this.visited >= MARK_SPAN) throw new Error('state walk: too many objects');
    (o as { [MARK]?: number })[MARK] = this.base + this.visited++;
    return -1;
  }

  private entry(x: unknown, k: unknown): void {
    this.go(k);
    this.go(x);
  }
  private member(x: unknown): void {
    this.go(x);
  }

  go(v: unknown): void {
    const h = this.h;
    switch (typeof v) {
      case 'number': h.mix(1).num(v); return;
      case 'string': h.mix(2).str(v); return;
      case 'boolean': h.mix(v ? 3 : 4); return;
      case 'bigint': h.mix(5).str(v.toString(16)); return;
      case 'undefined': h.mix(6); return;
      case 'function': case 'symbol': return;
    }
    if (v === null) return void h.mix(7);
    const o = v as object;
    const id = this.mark(o);
    if (id >= 0) return void h.mix(8).num(id);
    if (Array.isArray(o)) {
      h.mix(10).num(o.length);
      for (let i = 0; i < o.length; i++) this.go(o[i]);
      return;
    }
    if (ArrayBuffer.isView(o)) return void h.mix(9).bytesCached(o);
    if (o instanceof Map) {
      h.mix(11).num(o.size);
      // forEach: no [key, value] pair allocated per entry
      o.forEach(this.entry, this);
      return;
    }
    if (o instanceof Set) {
      h.mix(12).num(o.size);
      // a set of tasks (a rwsem's readers) has no order: visit it by task id
      let tasks = o.size > 1;
      if (tasks) o.forEach((x) => void (tasks &&= x instanceof Task));
      if (tasks) for (const x of [...(o as Set<Task>)].sort((a, b) => a.id - b.id)) this.go(x);
      else o.forEach(this.member, this);
      return;
    }
    const ctor = (o as { constructor?: Function }).constructor;
    const plan = planOf(ctor, o);
    if (plan.generator) return;
    if (this.unnamedOnly && plan.named) return void h.mix(13);
    if (this.stop?.(o, plan)) return void h.mix(15).mix(plan.name).str(identity(o));
    // lockdep's graph: which class was taken inside which, not who first did it, nor in what order
    if (plan.lockdep) return void h.mix(16).num(lockdepHash(o as Lockdep));
    h.mix(14).mix(plan.name);
    const rec = o as Record<string, unknown>;
    // the keys of the last object of this class, with their hashes: most objects of a class have
    // the same keys in the same order, so a key is looked up only where the order differs
    const shape = plan.shape[this.unnamedOnly ? 1 : 0];
    let i = 0;
    for (const key in rec) {
      if (plan.inherits && !Object.hasOwn(rec, key)) continue;
      let kh: number | null;
      if (i < shape.keys.length && shape.keys[i] === key) kh = shape.hashes[i];
      else {
        kh = fieldHash(ctor, plan, this.unnamedOnly, key);
        shape.keys[i] = key;
        shape.hashes[i] = kh;
      }
      i++;
      if (kh === null) continue;
      h.mix(kh);
      this.go(rec[key]);
    }
  }
}

/**
 * The dependency graph's edges with their kinds, and the inversions count. A set of edges has no
 * order, so each edge is hashed on its own and the hashes are added up (in two lanes): no sorting,
 * and no strings built, which mattered since every execution's copy of the graph is hashed afresh.
 */
function lockdepHash(l: Lockdep): number {
  let a = 0, b = 0;
  for (const [from, m] of l.edges)
    for (const [to, d] of m)
      for (const t of d.types) {
        const e = new Hasher().str(from).str(to).str(t);
        a = (a + e.a) | 0;
        b = (b + e.b) | 0;
      }
  return new Hasher().num(l.inversions.length).mix(a).mix(b).fp();
}

/** Everything the scenario's programs read without naming it: the unnamed kernel and the run's bindings. */
export function unnamedHash(run: ScenarioRun): number {
  const h = new Hasher();
  walk(h, [run.k, run.bindings], true);
  return h.fp();
}

/** The whole state but the threads' programs: kernel, named part included, and the run's records. */
export function kernelHash(run: ScenarioRun): number {
  const h = new Hasher();
  walk(h, [run.k, run.bindings, run.events, run.k.violations], false);
  // `expect: { order }` reads the order of the operation's last installing fault
  for (const t of run.tasks) h.num(lastInstall(t.faults)?.order ?? -1);
  return h.fp();
}

function counterValue(k: Kernel, key: string, acc: string, h: Hasher): boolean {
  if (key.endsWith('.registration') || key.endsWith('.unregister')) {
    const d = k.vfio.get(key.slice(0, key.lastIndexOf('.')))?.vfio;
    // a read-announced registration operation cannot see the count reach zero: its outcome is fixed
    if (d) h.mix(acc === 'r' ? 1 : 2).num(acc === 'r' ? 0 : d.refcount).mix(d.unregistering ? 1 : 0).mix(d.freed ? 1 : 0);
    return !!d;
  } else if (key.endsWith('.kref') || key.endsWith('.comp')) {
    for (const b of k.dmabufs)
      if (b.priv instanceof VfioPciDmaBuf && (b.priv.krefKey === key || `dmabuf${b.id}.comp` === key)) {
        h.num(b.priv.kref);
        return true;
      }
    return false;
  } else if (/^file\d+$/.test(key)) {
    const f = fileByKey(k, key);
    // a count operation announced 'r' cannot see the count reach zero: its outcome is fixed
    if (f) h.num(acc === 'r' ? -1 : f.refs).mix(f.freed ? 1 : 0);
    return !!f;
  }
  return false;
}

/** The files a step can name: those the processes hold open or map, and each buffer's own and device file. */
function* reachableFiles(k: Kernel): Generator<File> {
  for (const p of k.procs) {
    for (const [, e] of p.files.fds) yield e.file;
    for (const v of p.mm.vmas) if (v.vm_file) yield v.vm_file;
  }
  for (const b of k.dmabufs) {
    yield b.file;
    if (b.priv instanceof VfioPciDmaBuf && b.priv.vfile) yield b.priv.vfile;
  }
}

function fileByKey(k: Kernel, key: string): File | undefined {
  for (const f of reachableFiles(k)) if (f.key === key) return f;
  return undefined;
}

/** How an object a region walk stops at is named in the hash: by its key, id or name. */
function identity(o: object): string {
  const x = o as { key?: unknown; id?: unknown; name?: unknown };
  for (const v of [x.key, x.id, x.name]) if (typeof v === 'string' || typeof v === 'number') return String(v);
  return '';
}

/**
 * What a thread reads in one step, hashed into `h`: the values its event names (page-table slots,
 * memory bytes, config bytes, counters, a buffer's private state, a VMA list, an fd table), and for
 * a lock acquisition what the lock protects, which the thread may read, without naming it, for as
 * long as it holds the lock (no other thread can change it meanwhile). Anything named that this
 * table does not know, and any lock it has no region for, reads the whole unnamed kernel:
 * conservative, it only keeps states apart.
 */
export function observe(run: ScenarioRun, e: Ev, h: Hasher): void {
  const k = run.k;
  h.str(e.op).str(e.obj).str(e.acc);
  let whole = false;
  if (e.spans)
    for (const s of e.spans) {
      h.str(s.space).num(s.lo).num(s.hi).num(s.level ?? -1);
      if (s.space === 'pmem') {
        for (let a = s.lo; a < s.hi; a++) {
          const pg = k.pci.mem.pages.get(Math.floor(a / 4096));
          h.mix(pg ? pg[a % 4096] : 0);
        }
      } else if (s.space.endsWith('.pt') || s.space.endsWith('.leaves')) {
        const mm = k.procs.find((p) => p.mm.ptKey === s.space || p.mm.leavesKey === s.space)?.mm;
        if (mm) describe(mm.pt, s, h);
      } else if (s.space.endsWith('.ept')) {
        // a VM's second-stage table, by guest-physical address (kernel/kvm/)
        const kvm = [...k.kvms].find((x) => x.eptKey === s.space);
        if (kvm) describe(kvm.ept, s, h);
      } else if (s.space.endsWith('.vconfig')) {
        const v = k.vfio.get(s.space.slice(0, -'.vconfig'.length));
        if (v) h.bytes(v.vconfig.subarray(s.lo, s.hi));
        else whole = true;
      } else if (s.space.endsWith('.cfg')) {
        const d = k.pci.devs.find((x) => x.name === s.space.slice(0, -'.cfg'.length));
        if (d) h.bytes(d.cfg.subarray(s.lo, s.hi));
        else whole = true;
      } else whole = true;
    }
  // the event's own object is what its operation acts on (a lock it takes); the others it names
  // are plain reads or writes (what a read-only section reads)
  if (e.obj && !objectValue(k, e.op, e.obj, e.acc, h)) whole = true;
  if (e.also) for (const o of e.also) if (!objectValue(k, o.acc === 'r' ? 'read' : 'write', o.obj, o.acc, h)) whole = true;
  // scenario-level reads: names bound by earlier operations (`as:`)
  h.mix(bindingsHash(run));
  if (whole) h.num(unnamedHash(run));
}

/** What a span of a page table reads: a walk (one address) only the translation it ends in, others their slots. */
function describe(pt: PageTable, s: Span, h: Hasher): void {
  if (s.walk) pt.describeWalk(s.lo, h);
  else pt.describe(s.lo, s.hi, h, s.level);
}

const BINDINGS = new WeakMap<ScenarioRun, { gen: number; hash: number }>();
/** The run's bindings hashed once per change (they change only when an operation with `as:` ends). */
function bindingsHash(run: ScenarioRun): number {
  const c = BINDINGS.get(run);
  if (c && c.gen === run.bindingsGen) return c.hash;
  const h = new Hasher();
  walk(h, run.bindings, false);
  const hash = h.fp();
  BINDINGS.set(run, { gen: run.bindingsGen, hash });
  return hash;
}

const WAIT = new Set(['wait_for_completion', 'wait_for_completion:woken']);

/** Hash the value of named object `key` as step `op` sees it; false when the table does not know it. */
function objectValue(k: Kernel, op: string, key: string, acc: string, h: Hasher): boolean {
  h.str(key);
  if (LOCK_RELEASE.has(op) || WAIT.has(op)) return true; // a release reads nothing; a wait shows as blocked or not (taskAfter)
  if (LOCK_ACQUIRE.has(op) || LOCK_TRYLOCK.has(op)) return lockRegion(k, key, h);
  if (counterValue(k, key, acc, h)) return true;
  if (key.endsWith('.decode')) {
    const d = k.pci.devs.find((x) => x.decodeKey === key);
    if (!d) return false;
    h.bytesCached(d.cfg).num(d.power).mix(d.inReset ? 1 : 0);
    return true;
  }
  if (key.endsWith('.file') && key.startsWith('dmabuf')) {
    // dma_buf_get_file_active's read of dmabuf->file: the pointer (annulled or not), and whether
    // the file behind it was freed
    const b = dmabufByKey(k, key.slice(0, -'.file'.length));
    if (!b) return false;
    h.mix(b.fileAnnulled ? 1 : 0).str(b.file.key).mix(b.file.freed ? 1 : 0);
    return true;
  }
  if (key.endsWith('.i_mmap')) {
    // unmap_mapping_range's walk: the VMAs mapping the file and where each maps it
    const m = mappingByName(k, key.slice(0, -'.i_mmap'.length));
    if (!m) return false;
    h.num(m.i_mmap.size);
    for (const v of m.i_mmap) h.num(v.mm.id).num(v.vm_start).num(v.vm_end).num(v.vm_pgoff);
    return true;
  }
  if (/\.df\d+$/.test(key)) {
    // vfio_df_access_granted: the flag, read without a lock (smp_load_acquire)
    const df = dfByKey(k, key);
    if (!df) return false;
    h.mix(df.access_granted ? 1 : 0);
    return true;
  }
  if (key.endsWith('.priv')) {
    const priv = privByKey(k, key);
    if (!priv) return false;
    walk(h, priv, true, ownerStop(priv));
    return true;
  }
  if (key.endsWith('.vmas')) {
    const mm = k.procs.find((p) => p.mm.vmasKey === key)?.mm;
    if (!mm) return false;
    walk(h, mm.vmas, true, ownerStop(mm.vmas));
    return true;
  }
  if (key.endsWith('.files')) {
    const p = k.procs.find((x) => x.files.key === key);
    if (!p) return false;
    walk(h, p.files, true, ownerStop(p.files));
    return true;
  }
  return false;
}

/** A device's locks that protect its whole state (kernel/vfio/pci/core.ts). */
const DEVICE_LOCKS = ['.memory_lock', '.dmabuf_lock'];

/**
 * What a lock protects, for a thread that has just taken it: memory_lock the device's state (its
 * virtual and hardware config, power, the buffers on its list), and so does dmabuf_lock (v6 on:
 * the list and the shadow bars_revoked, a part of that state); a buffer's resv its private state;
 * mmap_lock and a VMA lock the VMA list. Other locks: unknown (false).
 */
function lockRegion(k: Kernel, lock: string, h: Hasher): boolean {
  for (const dev of DEVICE_LOCKS) {
    if (!lock.endsWith(dev)) continue;
    const v = k.vfio.get(lock.slice(0, -dev.length));
    if (!v) return false;
    walk(h, [v, v.pdev], true, ownerStop(v));
    return true;
  }
  if (lock.endsWith('.resv')) {
    for (const b of k.dmabufs)
      if (b.resv.name === lock) {
        walk(h, b, true, ownerStop(b));
        return true;
      }
    return false;
  }
  const m = /^(mm\d+)\.(mmap_lock|vma\d+\.vm_lock)$/.exec(lock);
  if (m) return objectValue(k, 'read', `${m[1]}.vmas`, 'r', h);
  return false;
}

function dmabufByKey(k: Kernel, name: string): DmaBuf | undefined {
  for (const b of k.dmabufs) if (`dmabuf${b.id}` === name) return b;
  return undefined;
}

/** A file's address_space by name: a buffer's, or that of a file some VMA maps. */
function mappingByName(k: Kernel, name: string): AddressSpace | undefined {
  for (const b of k.dmabufs) if (b.file.f_mapping.name === name) return b.file.f_mapping;
  for (const p of k.procs) for (const v of p.mm.vmas) if (v.vm_file?.f_mapping.name === name) return v.vm_file.f_mapping;
  return undefined;
}

/** A vfio_device_file by its key, behind one of the files a step can name. */
function dfByKey(k: Kernel, key: string): VfioDeviceFile | undefined {
  for (const f of reachableFiles(k)) if (f.private_data instanceof VfioDeviceFile && f.private_data.key === key) return f.private_data;
  return undefined;
}

function privByKey(k: Kernel, key: string): VfioPciDmaBuf | undefined {
  for (const b of k.dmabufs) if (b.priv instanceof VfioPciDmaBuf && b.priv.key === key) return b.priv;
  return undefined;
}

/** What a task itself shows after a step: blocked or not, the locks it holds. */
export function taskAfter(t: Task, h: Hasher): void {
  h.mix(t.blocked ? 1 : 0).mix(t.done ? 1 : 0);
  for (const l of t.held) h.str(l.lock.name).str(l.mode);
}

/**
 * A thread's fingerprint: `cur` stands for what it has read in the operation in progress; `frames`
 * for the calls it is inside (marked with `traced`), each with the fingerprint it had on entry.
 */
export interface ThreadFp {
  cur: number;
  frames: Array<{ base: number; held: string[] }>;
}
/** A thread's fingerprint before its first step. */
export const threadStart = (name: string): ThreadFp => ({ cur: new Hasher().str('thread').str(name).fp(), frames: [] });
export const cloneThread = (t: ThreadFp): ThreadFp => ({ cur: t.cur, frames: t.frames.map((f) => ({ ...f })) });

const heldNames = (t: Task) => t.held.map((x) => `${x.lock.name}/${x.mode}`);

/**
 * Function-graph hooks for state caching: when a marked call returns, its caller's fingerprint
 * becomes its fingerprint at the call plus the return value, the call's arguments as they are now,
 * and what the current step read; what the callee read in between is forgotten, as its locals are.
 * Not when the callee returns holding a lock it took: what it read under that lock stays relevant.
 */
export function callCollapse(active: () => { ts: ThreadFp; obs: number } | null): FuncGraph {
  return {
    entry(t) {
      const a = active();
      if (a) a.ts.frames.push({ base: a.ts.cur, held: heldNames(t) });
    },
    ret(t, fn, value, args) {
      const a = active();
      const f = a?.ts.frames.pop();
      if (!a || !f) return;
      const entry = new Set(f.held);
      const keep = heldNames(t).some((x) => !entry.has(x));
      const h = new Hasher().num(keep ? a.ts.cur : f.base).str('ret').str(fn).num(a.obs);
      walk(h, [value, args], false, anyOwner);
      a.ts.cur = h.fp();
    },
  };
}
