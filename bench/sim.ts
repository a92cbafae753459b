// Simulator-side helpers of the benchmark: a machine with one H100-profile device, first-touch
// fault loops, page-table censuses that check the orders really installed, heap measurement, and
// the revoke scenarios. Nothing here asserts a timing; what is checked (and fails loudly) is that
// the model did what the figure claims to measure: the entry orders and counts.
import { createKernel, decode, encode, mman, uapi, type SimKernel, type SimProcess } from '../src/index.ts';
import { PageTable } from '../src/kernel/mm/pgtable.ts';
import { KERNELS } from '../src/kernel/variants.ts';

/** Whether this tree models a kernel variant (others may add some while the bench exists). */
export const hasKernel = (name: string) => Object.hasOwn(KERNELS, name);

export const KiB = 2 ** 10, MiB = 2 ** 20, GiB = 2 ** 30;
export const PAGE = 4 * KiB;
export type Order = 0 | 9 | 18;
export const ORDER_SIZE: Record<Order, number> = { 0: PAGE, 9: 2 * MiB, 18: GiB };
export const ORDER_NAME: Record<Order, string> = { 0: '4 KiB PTE', 9: '2 MiB PMD', 18: '1 GiB PUD' };

const PCI_COMMAND = 4;
const PROT_RW = mman.PROT_READ | mman.PROT_WRITE;

export class BenchError extends Error {}

/** Two full GCs (global.gc()), then a pause so background sweeping can finish. */
export function gc(): void {
  if (!globalThis.gc) return;
  globalThis.gc();
  globalThis.gc();
  settle(50);
}
/** Sleep the main thread so background GC work (concurrent sweeping) can finish. */
export function settle(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Heap in use plus ArrayBuffer backing stores (the page table's typed arrays live there). */
export interface Mem {
  heap: number;
  arrayBuffers: number;
}
export function mem(): Mem {
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, arrayBuffers: m.arrayBuffers };
}
export function memDelta(a: Mem, b: Mem): Mem & { total: number } {
  const heap = b.heap - a.heap, arrayBuffers = b.arrayBuffers - a.arrayBuffers;
  return { heap, arrayBuffers, total: heap + arrayBuffers };
}

export interface SchedState {
  tasks: number;
  trace: number;
}

export interface Region {
  offset: number;
  size: number;
}

/** One kernel, one process, the device open; region offsets and sizes from REGION_INFO. */
export class Rig {
  readonly k: SimKernel;
  readonly p: SimProcess;
  readonly fd: number;
  readonly regions = new Map<number, Region>();
  constructor(readonly kernel: string, trace: boolean) {
    this.k = createKernel({ devices: [{ name: 'gpu0', profile: 'h100' }], checkInvariants: false, kernel });
    // Sched.recordTrace defaults to false (the scenario runner turns it on only for traces); the
    // trace-on row of section 1 opts in to measure what keeping every step costs.
    this.k.k.sched.recordTrace = trace;
    this.p = this.k.spawn('bench');
    this.fd = this.p.open('/dev/vfio/devices/gpu0');
    for (const index of [0, 2, 4, 7]) {
      const b = encode(uapi.vfio_region_info, { argsz: uapi.vfio_region_info.size, index });
      this.p.ioctl(this.fd, uapi.IOCTLS.VFIO_DEVICE_GET_REGION_INFO, b);
      const r = decode(uapi.vfio_region_info, b);
      this.regions.set(index, { offset: Number(r.offset), size: Number(r.size) });
    }
  }
  region(index: number): Region {
    const r = this.regions.get(index);
    if (!r) throw new BenchError(`no region ${index}`);
    return r;
  }
  get pt(): PageTable {
    return this.p.proc.mm.pt;
  }
  get steps(): number {
    return this.k.k.sched.stepNo;
  }
  /** Tasks the scheduler still holds and step records it kept (SimKernel.run reaps each call's task). */
  get schedState(): SchedState {
    const s = this.k.k.sched;
    return { tasks: s.tasks.length, trace: s.trace.length };
  }
  /** mmap a BAR at a fixed VA; `barOffset` is the byte offset inside the BAR. */
  mapBar(bar: number, barOffset: number, len: number, va: number): number {
    const got = this.p.mmap(va, len, PROT_RW, mman.MAP_SHARED | mman.MAP_FIXED, this.fd, this.region(bar).offset + barOffset);
    if (got !== va) throw new BenchError(`MAP_FIXED at 0x${va.toString(16)} returned 0x${got.toString(16)}`);
    return got;
  }
  /** Clear PCI_COMMAND (MEMORY off): the revoke path. Wall time and scheduler steps it took. */
  clearCommandMemory(): { ms: number; steps: number } {
    const buf = new Uint8Array(2);
    const s0 = this.steps;
    const t0 = performance.now();
    this.p.pwrite(this.fd, buf, this.region(7).offset + PCI_COMMAND);
    return { ms: performance.now() - t0, steps: this.steps - s0 };
  }
  /** Set PCI_COMMAND.MEMORY again: un-revokes the DMABUFs (entries come back only by faulting). */
  setCommandMemory(): void {
    this.p.pwrite(this.fd, new Uint8Array([2, 0]), this.region(7).offset + PCI_COMMAND);
  }
  /** DMABUFs the device has (one per BAR mmap in series v4). */
  get dmabufs(): number {
    return this.k.k.vfio.get('gpu0')!.dmabufs.length;
  }
}

/** Leaves of [start, end) by order, and whether they are what a figure claims. */
export interface Census {
  total: number;
  byOrder: Record<Order, number>;
}
export function census(pt: PageTable, start = 0, end = Number.MAX_SAFE_INTEGER): Census {
  const byOrder: Record<Order, number> = { 0: 0, 9: 0, 18: 0 };
  let total = 0;
  for (const e of pt.entries(start, end)) {
    byOrder[e.order]++;
    total++;
  }
  return { total, byOrder };
}
export const censusString = (c: Census) => `${c.byOrder[0]} PTE + ${c.byOrder[9]} PMD + ${c.byOrder[18]} PUD`;

/**
 * Fail loudly unless [va, va + n * size) holds exactly n leaves, all of `order`, at consecutive
 * order-sized VAs, with PFNs advancing by the order's page count (one contiguous BAR slice).
 */
export function verifyOrder(pt: PageTable, va: number, n: number, order: Order, what: string): void {
  const size = ORDER_SIZE[order], step = 2 ** order;
  let i = 0, pfn0 = 0;
  for (const e of pt.entries(va, va + n * size)) {
    if (e.order !== order) throw new BenchError(`${what}: leaf ${i} at 0x${e.va.toString(16)} has order ${e.order}, expected ${order}`);
    if (e.va !== va + i * size) throw new BenchError(`${what}: leaf ${i} at 0x${e.va.toString(16)}, expected 0x${(va + i * size).toString(16)}`);
    if (i === 0) pfn0 = e.pfn;
    else if (e.pfn !== pfn0 + i * step) throw new BenchError(`${what}: leaf ${i} pfn 0x${e.pfn.toString(16)}, expected 0x${(pfn0 + i * step).toString(16)}`);
    if (pfn0 % step !== 0) throw new BenchError(`${what}: first pfn 0x${pfn0.toString(16)} not aligned to order ${order}`);
    i++;
  }
  if (i !== n) throw new BenchError(`${what}: ${i} leaves of order ${order} installed, expected ${n}`);
}

/** n first-touch (or repeat) loads, one per `stride`; returns elapsed ms. */
export function touch(p: SimProcess, va: number, n: number, stride: number): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) p.load(va + i * stride, 4);
  return performance.now() - t0;
}

// ---- 1. fault rate per order ----

export interface FaultRun {
  order: Order;
  n: number;
  trace: boolean;
  installed: Census;
  ms: number;
  stepsPerFault: number;
  hitMs: number;
  /** heap + ArrayBuffer bytes per fault still held after a full GC (page table, trace if on, anything else) */
  retainedBytes: number;
  /** what the scheduler holds after the N faults */
  sched: SchedState;
  note: string;
}

/** VAs: PUD runs at a 1 GiB-aligned VA; PMD runs 2 MiB past one (so PUD order always falls back). */
const VA_PUD = 0x7e0000000000, VA_PMD = 0x7e0000000000 + 2 * MiB, VA_PTE = 0x7f0000000000;

export function faultRun(order: Order, n: number, trace: boolean): FaultRun {
  const r = new Rig('series-v4', trace);
  const bar2 = r.region(2);
  const size = ORDER_SIZE[order];
  // Where each batch of faults happens: a process, a VA and a count. PTE and PMD runs are one
  // mapping; BAR2 holds only 128 PUDs, so a PUD run maps BAR2 whole in one process per 128 faults
  // (each with its own mm, device fd and DMABUF), all at the same 1 GiB-aligned VA.
  const batches: Array<{ p: SimProcess; va: number; n: number }> = [];
  let note: string;
  if (order === 0) {
    // BAR2 + 4 KiB at a 1 GiB-aligned VA: VA and PA disagree mod 2 MiB, so PMD (and PUD) order
    // falls back on every span and each first touch installs one PTE.
    if (n * PAGE > bar2.size - PAGE) throw new BenchError('too many PTE faults for BAR2');
    r.mapBar(2, PAGE, n * PAGE, VA_PTE);
    batches.push({ p: r.p, va: VA_PTE, n });
    note = `BAR2+4 KiB at VA 0x${VA_PTE.toString(16)}, one mmap`;
  } else if (order === 9) {
    // BAR2 + 0 at 2 MiB past a 1 GiB boundary: PUD order falls back, every PMD is aligned.
    if (n * 2 * MiB > bar2.size) throw new BenchError('too many PMD faults for BAR2');
    r.mapBar(2, 0, n * 2 * MiB, VA_PMD);
    batches.push({ p: r.p, va: VA_PMD, n });
    note = `BAR2+0 at VA 0x${VA_PMD.toString(16)} (1 GiB + 2 MiB), one mmap`;
  } else {
    const per = Math.floor(bar2.size / GiB);
    for (let left = n, i = 0; left > 0; i++) {
      const m = Math.min(per, left);
      const p = i === 0 ? r.p : r.k.spawn(`bench${i}`);
      const fd = i === 0 ? r.fd : p.open('/dev/vfio/devices/gpu0');
      const va = p.mmap(VA_PUD, m * GiB, PROT_RW, mman.MAP_SHARED | mman.MAP_FIXED, fd, bar2.offset);
      if (va !== VA_PUD) throw new BenchError('PUD mmap moved');
      batches.push({ p, va, n: m });
      left -= m;
    }
    note = `BAR2 whole at VA 0x${VA_PUD.toString(16)} in ${batches.length} processes (128 PUDs each)`;
  }
  const m0 = mem();
  const s0 = r.steps;
  let ms = 0;
  for (const b of batches) ms += touch(b.p, b.va, b.n, size);
  const steps = r.steps - s0;
  const m1 = mem();
  const sched = r.schedState;
  const installed: Census = { total: 0, byOrder: { 0: 0, 9: 0, 18: 0 } };
  batches.forEach((b, i) => {
    verifyOrder(b.p.proc.mm.pt, b.va, b.n, order, `${ORDER_NAME[order]} run, batch ${i}`);
    const c = census(b.p.proc.mm.pt, b.va, b.va + b.n * size);
    installed.total += c.total;
    for (const o of [0, 9, 18] as Order[]) installed.byOrder[o] += c.byOrder[o];
  });
  if (installed.total !== n || installed.byOrder[order] !== n) throw new BenchError(`order ${order}: installed ${censusString(installed)}, expected ${n} of order ${order}`);
  // the same loads again, entries present
  let hitMs = 0;
  for (const b of batches) hitMs += touch(b.p, b.va, b.n, size);
  return { order, n, trace, installed, ms, stepsPerFault: steps / n, hitMs, retainedBytes: memDelta(m0, m1).total / n, sched, note };
}

/** What the kernel-chosen VA (addr 0) gives for a BAR offset that is not 2 MiB-aligned. */
export function kernelChosenVa(pages: number): { va: number; c: Census } {
  const r = new Rig('series-v4', false);
  const va = r.p.mmap(0, pages * PAGE, PROT_RW, mman.MAP_SHARED, r.fd, r.region(2).offset + PAGE);
  touch(r.p, va, pages, PAGE);
  return { va, c: census(r.pt, va, va + pages * PAGE) };
}

// ---- 2./3. a million PTEs: populate, memory, revoke ----

export interface RevokeRun {
  label: string;
  kernel: string;
  layout: string;
  pages: number;
  populateMs: number;
  before: Census;
  /** the revoke right after the fault-path population */
  revokeMs: number;
  /** further revokes of the same page-table state (see revokeSeries) */
  again: number[];
  revokeSteps: number;
  dmabufs: number;
  after: Census;
  probe: string;
  /** what the scheduler holds right after the population */
  sched: SchedState;
  mem?: { before: Mem; after: Mem; delta: Mem & { total: number }; tables: { pmdTables: number; pteTables: number } };
}

const VA_BIG = 0x7f0000000000, VA_PIECES = 0x7d0000000000;

/** Load once more after the revoke: a stale entry reaches the device; a zapped one faults. */
function probe(r: Rig, va: number): string {
  const v0 = r.k.violations.length;
  try {
    const v = r.p.load(va, 4);
    const vio = r.k.violations.slice(v0).map((x) => `${x.invariant}: ${x.message}`);
    return `load returned 0x${v.toString(16)} through a stale entry${vio.length ? `; invariant ${vio[0]}` : ''}`;
  } catch (e) {
    return `load faulted: ${(e as Error).message}`;
  }
}

/**
 * Revoke (COMMAND.MEMORY cleared) the populated page table, count the leaves before and after,
 * probe one address; then `reps` times: set MEMORY again (un-revoke), put the very same leaves
 * back with PageTable.insertPte (the state the fault path built, without a million more faults)
 * and revoke again. The first sample runs on a heap full of the population's garbage; the others
 * are the steadier figure.
 */
function revokeSeries(r: Rig, probeVa: number, reps: number) {
  const pt = r.pt;
  const before = census(pt);
  const n = before.total;
  const va = new Float64Array(n), pfn = new Float64Array(n), flags = new Uint8Array(n);
  let i = 0;
  for (const e of pt.entries()) {
    if (e.order !== 0) throw new BenchError(`revoke scenario: unexpected order-${e.order} leaf at 0x${e.va.toString(16)}`);
    va[i] = e.va;
    pfn[i] = e.pfn;
    flags[i++] = (e.write ? 1 : 0) | (e.cache === 'WC' ? 2 : 0);
  }
  const dmabufs = r.dmabufs;
  gc();
  settle(Math.min(1000, n / 1000)); // let sweeping of the big heap finish, or the pwrite pays for it
  const first = r.clearCommandMemory();
  const after = census(pt);
  const pr = probe(r, probeVa);
  const again: number[] = [];
  for (let k = 0; k < reps; k++) {
    r.setCommandMemory();
    for (let j = 0; j < n; j++) pt.insertPte(va[j], { pfn: pfn[j], write: !!(flags[j] & 1), cache: flags[j] & 2 ? 'WC' : 'UC' });
    const b = census(pt);
    if (b.total !== n) throw new BenchError(`re-populate: ${b.total} leaves, expected ${n}`);
    const rv = r.clearCommandMemory();
    const a = census(pt);
    if (a.total !== after.total) throw new BenchError(`revoke ${k + 2} left ${a.total} leaves, the first left ${after.total}`);
    again.push(rv.ms);
  }
  return { before, after, dmabufs, revokeMs: first.ms, revokeSteps: first.steps, again, probe: pr };
}

/**
 * One 4 KiB-entry mapping of `pages` pages on BAR2 (offset 4 KiB, VA 1 GiB-aligned), populated by
 * first-touch loads, then COMMAND.MEMORY cleared. With `measureMem`, heap before/after populating.
 * With `reps` < 0, no revoke at all (populate-rate runs).
 */
export function bigMapping(kernel: string, pages: number, measureMem: boolean, reps: number): RevokeRun {
  const r = new Rig(kernel, false);
  r.mapBar(2, PAGE, pages * PAGE, VA_BIG);
  const m0 = measureMem ? mem() : null;
  const populateMs = touch(r.p, VA_BIG, pages, PAGE);
  const m1 = measureMem ? mem() : null;
  const sched = r.schedState;
  verifyOrder(r.pt, VA_BIG, pages, 0, `${kernel} ${pages}-PTE mapping`);
  const tables = r.pt.tableCount();
  const label = `${kernel === 'series-v4' ? 'series v4' : kernel}, one BAR2 mapping`;
  const layout = `1 mmap of BAR2+4 KiB, ${pages * PAGE / MiB} MiB`;
  const s = reps < 0
    ? { before: census(r.pt), after: census(r.pt), dmabufs: r.dmabufs, revokeMs: NaN, revokeSteps: 0, again: [], probe: '' }
    : revokeSeries(r, VA_BIG + PAGE * 12345, reps);
  const memOut: RevokeRun['mem'] = m0 && m1 ? { before: m0, after: m1, delta: memDelta(m0, m1), tables } : undefined;
  return { label, kernel, layout, pages, populateMs, ...s, sched, mem: memOut };
}

/** v4 with BAR0-sized pieces: each mmap of BAR0 at offset 0 is its own DMABUF, zapped whole. */
export function bar0Pieces(pages: number, reps: number): RevokeRun {
  const r = new Rig('series-v4', false);
  const bar0 = r.region(0);
  const per = bar0.size / PAGE;
  const pieces = Math.ceil(pages / per);
  const slot = bar0.size * 2;
  // VA = 4 KiB past a 2 MiB boundary while BAR0 is naturally aligned: PTEs only
  for (let i = 0; i < pieces; i++) r.mapBar(0, 0, bar0.size, VA_PIECES + i * slot + PAGE);
  let populateMs = 0;
  for (let i = 0; i < pieces; i++) populateMs += touch(r.p, VA_PIECES + i * slot + PAGE, per, PAGE);
  const sched = r.schedState;
  for (let i = 0; i < pieces; i++) verifyOrder(r.pt, VA_PIECES + i * slot + PAGE, per, 0, `BAR0 piece ${i}`);
  const s = revokeSeries(r, VA_PIECES + PAGE + PAGE * 7, reps);
  return { label: 'series v4, BAR0-sized pieces', kernel: 'series-v4', layout: `${pieces} mmaps of BAR0 (16 MiB each)`, pages: pieces * per, populateMs, ...s, sched };
}

/** The page-table structure alone: `pages` PTEs inserted directly, no fault path, no kernel. */
export function pageTableOnly(pages: number): { delta: Mem & { total: number }; tables: { pmdTables: number; pteTables: number } } {
  const m0 = mem();
  const pt = new PageTable();
  for (let i = 0; i < pages; i++) pt.insertPte(VA_BIG + i * PAGE, { pfn: 0x1000001 + i, write: true, cache: 'UC' });
  const m1 = mem();
  const tables = pt.tableCount();
  if (census(pt).byOrder[0] !== pages) throw new BenchError('direct insert lost entries');
  return { delta: memDelta(m0, m1), tables };
}
