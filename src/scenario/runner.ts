// Run a scenario on the simulated kernel. The same ScenarioRun serves `run` (a fixed, sequential
// schedule) and the explorer (any schedule): it owns the kernel, the processes and the threads'
// programs; a driver decides which task takes the next step.
import { callText } from './call.ts';
import { IoptPages } from '../kernel/iommufd/io_pagetable.ts';
import { Kernel, type Violation } from '../kernel/kernel.ts';
import type { Process } from '../kernel/process.ts';
import type { PageTable } from '../kernel/mm/pgtable.ts';
import { Completion, lastInstall, pendingText, type FaultRecord, type KGen, type StepRecord, type Task } from '../kernel/sched/sched.ts';
import { checkInvariants, checkNoLeak } from '../kernel/invariants.ts';
import { VfioPciDmaBuf, STATUS_NAME } from '../kernel/vfio/pci/dmabuf.ts';
import { PAGE_SIZE } from '../uapi/mman.ts';
import * as R from '../uapi/pci_regs.ts';
import { VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX } from '../uapi/vfio.ts';
import { glob } from './glob.ts';
import { MAIN_PROC, type ExpectedFinding, type Scenario, type Step, type ThreadDef } from './loader.ts';
import { execOp, type OpEnv, type Result } from './ops.ts';
import { hex, parseExpr } from './values.ts';
import { cloneGraph, reaches, type ForkPlan } from './fork.ts';

export interface RunOptions {
  kernel?: string;
  mutant?: string | null;
  /** check invariants after every scheduler step (the explorer) rather than after every operation */
  checkEachStep?: boolean;
  /** keep the kernel's step trace (for counterexamples and `--trace`) */
  trace?: boolean;
  /** @internal called after every scheduler step, setup's included (the trace exporters follow the run with it) */
  onStep?: (rec: StepRecord, run: ScenarioRun) => void;
}

export interface FaultJson {
  va: string;
  order: number;
  /** u64, as vfio_pci_core's dev_dbg line prints it (a huge order aligned below vm_start wraps) */
  pgoff: string;
  pfn: string | null;
  outcome: string;
}
export interface StepOut {
  thread: string;
  index: number;
  op: string;
  /** the call in words, e.g. `config_write dev COMMAND = 0x0` (call.ts) */
  call: string;
  result: Result;
  faults?: FaultJson[];
  /** set when the step's expect: was not met */
  mismatch?: string;
  detail?: string;
  line: number;
}

interface ThreadState {
  def: ThreadDef;
  task: Task | null;
  opsDone: number;
}

export const SETUP = 'setup';

/** What a finished task's program becomes in a copy of the run: it is never resumed. */
const FINISHED: KGen = (function* () {})();
FINISHED.next();

export class ScenarioRun {
  readonly k: Kernel;
  readonly steps: StepOut[] = [];
  readonly procs = new Map<string, Process>();
  readonly bindings = new Map<string, { value: bigint; out?: Record<string, bigint> }>();
  /** @internal bumped when a binding is set (the explorer hashes the bindings once per change) */
  bindingsGen = 0;
  /** post/wait events, by name */
  readonly events = new Map<string, Completion>();
  readonly threads: ThreadState[] = [];
  /** the thread tasks, in the order they were spawned (the scheduler's thread ids) */
  readonly tasks: Task[] = [];
  private readonly stateOf = new Map<Task, ThreadState>();
  private inProgress = new Map<Task, { thread: string; index: number }>();
  /** while the invariants are checked after an operation: its index in `steps`, to blame */
  private justDone: number | undefined;

  constructor(readonly scn: Scenario, readonly opts: RunOptions = {}) {
    this.k = new Kernel({ devices: scn.devices, config: scn.config, kernel: opts.kernel, mutant: opts.mutant, lockdepHistory: scn.lockdepHistory });
    this.k.sched.recordTrace = opts.trace ?? false;
    this.k.blame = this.blamer();
    // processes: main first, then each process named by a thread, unless a fork makes it
    const forkTargets = new Set([...scn.setup, ...scn.threads.flatMap((t) => t.steps)].filter((s) => s.op === 'fork').map((s) => s.as!));
    this.proc(MAIN_PROC);
    for (const t of scn.threads) if (!forkTargets.has(t.proc)) this.proc(t.proc);
    for (const t of scn.threads) this.threads.push({ def: t, task: null, opsDone: 0 });
    // setup runs first, to completion, in the process of the first thread listed
    if (scn.setup.length) {
      const setupProc = this.proc(scn.threads[0].proc);
      const t = this.k.spawn(setupProc, SETUP, this.program({ name: SETUP, proc: setupProc.name, steps: scn.setup }, setupProc, null));
      while (!t.done && !t.blocked) {
        const rec = this.k.sched.step(t);
        if (this.opts.checkEachStep) checkInvariants(this.k);
        this.opts.onStep?.(rec, this);
      }
      if (!t.done) this.k.violation('no-deadlock', `setup blocked forever at ${t.pending.op} ${t.pending.obj}`);
    }
    for (const ts of this.threads) if (!forkTargets.has(ts.def.proc)) this.startThread(ts);
  }

  /** The kernel's blame hook: the operation in progress, or the one whose invariants are being checked. */
  private blamer(): () => number | undefined {
    return () => {
      const t = this.k.sched.current;
      const p = t ? this.inProgress.get(t) : undefined;
      return p ? this.steps.length : this.justDone;
    };
  }

  /**
   * A copy of this run, which no thread may have stepped yet: the explorer starts executions from
   * copies of one run instead of booting the kernel and running setup each time. The copy shares
   * what `plan` says another run shares with this one (the scenario, the options, module-level
   * tables); closures over this run (its threads' programs, the kernel's ops tables and hooks) are
   * made again for the copy. Null when a thread has run, or, with `check`, when the copy still
   * reaches one of the plan's closures (checked once per run by the caller).
   */
  fork(plan: ForkPlan, check = false): ScenarioRun | null {
    if (this.tasks.some((t) => t.steps > 0)) return null;
    // a run no thread has stepped does not change: the same graph is copied each time
    const c = cloneGraph(this, plan.shared, true);
    c.resolve = c.resolver();
    c.k.blame = c.blamer();
    c.k.rebindOps();
    for (const t of c.k.sched.tasks) if (t.done) (t as { gen: KGen }).gen = FINISHED;
    for (const ts of c.threads) if (ts.task) (ts.task as { gen: KGen }).gen = c.program(ts.def, c.proc(ts.def.proc), ts);
    return check && reaches(c, plan.closures) ? null : c;
  }

  private proc(name: string): Process {
    let p = this.procs.get(name);
    if (!p) this.procs.set(name, (p = this.k.newProcess(name)));
    return p;
  }

  private startThread(ts: ThreadState): void {
    const p = this.proc(ts.def.proc);
    ts.task = this.k.spawn(p, ts.def.name, this.program(ts.def, p, ts));
    this.tasks.push(ts.task);
    this.stateOf.set(ts.task, ts);
  }

  /** Resolve a scenario value: literals, names bound by `as:`, name.field, sums. */
  resolve = this.resolver();

  private resolver(): (v: unknown) => bigint {
    return (v) => this.resolveValue(v);
  }
  private resolveValue(v: unknown): bigint {
    let sum = 0n;
    for (const t of parseExpr(v)) {
      let x: bigint;
      if (t.lit !== undefined) x = t.lit;
      else {
        const b = this.bindings.get(t.ref!);
        // a name not bound yet (another thread has not got there): -1 as an fd, an address that faults
        if (!b) x = -1n;
        else if (t.field) x = b.out?.[t.field] ?? -1n;
        else x = b.value;
      }
      sum += t.sign * x;
    }
    return sum;
  }

  private *program(def: ThreadDef, proc: Process, ts: ThreadState | null): KGen {
    const env: OpEnv = {
      k: this.k, proc, res: this.resolve,
      fork: (name) => this.proc(name),
      forked: (name) => {
        for (const other of this.threads) if (other.def.proc === name && !other.task) this.startThread(other);
      },
      maps: (p) => procMaps(p),
      event: (name) => {
        let c = this.events.get(name);
        if (!c) this.events.set(name, (c = new Completion(this.k.sched, `event.${name}`)));
        return c;
      },
    };
    for (let i = 0; i < def.steps.length; i++) {
      const s = def.steps[i];
      const task = this.k.sched.cur();
      task.faults = [];
      this.inProgress.set(task, { thread: def.name, index: i });
      const o = yield* execOp(env, s);
      this.inProgress.delete(task);
      if (o.bind && s.as) {
        this.bindings.set(s.as, o.bind);
        this.bindingsGen++;
      }
      const out: StepOut = { thread: def.name, index: i, op: s.op, call: callOf(s), result: o.result, line: s.line };
      if (task.faults.length) out.faults = task.faults.map(faultJson);
      if (o.detail) out.detail = o.detail;
      const mm = this.checkExpect(s, o.result, task.faults);
      if (mm) out.mismatch = mm;
      this.steps.push(out);
      if (!this.opts.checkEachStep) {
        this.justDone = this.steps.length - 1;
        checkInvariants(this.k);
        this.justDone = undefined;
      }
      if (ts) ts.opsDone++;
    }
  }

  private checkExpect(s: Step, r: Result, faults: FaultRecord[]): string | undefined {
    const e = s.expect;
    if (!e) return undefined;
    const got = describe(r);
    if (e.ok && !('ok' in r)) return `expected ok, got ${got}`;
    if (e.errno && !('errno' in r && r.errno === e.errno)) return `expected errno ${e.errno}, got ${got}`;
    if (e.signal && !('signal' in r && r.signal === e.signal)) return `expected ${e.signal}, got ${got}`;
    if (e.value !== undefined) {
      const want = this.resolve(e.value);
      if (!('ok' in r) || r.value === undefined) return `expected value ${hex(want)}, got ${got}`;
      if (BigInt.asUintN(64, BigInt(r.value)) !== BigInt.asUintN(64, want)) return `expected value ${hex(want)}, got ${hex(BigInt(r.value))}`;
    }
    if (e.line !== undefined) {
      const lines = 'ok' in r ? ((r.out as { lines?: string[] } | undefined)?.lines ?? []) : [];
      if (!lines.some((l) => glob(e.line!, l))) return `expected a maps line matching ${e.line}, got ${lines.length ? lines.join(' / ') : got}`;
    }
    if (e.order !== undefined) {
      const inst = lastInstall(faults);
      if (!inst) return `expected an order-${e.order} entry to be installed, but no fault installed one`;
      if (inst.order !== Number(e.order)) return `expected an order-${e.order} entry, got order ${inst.order}`;
    }
    return undefined;
  }

  /** The call of the operation `t` is in the middle of, if any (report pages show it). */
  inProgressCall(t: Task): string | undefined {
    const p = this.inProgress.get(t);
    const s = p && stepAt(this.scn, p.thread, p.index);
    return s ? callOf(s) : undefined;
  }

  /** Tasks that can take a step now. */
  enabled(): Task[] {
    return this.tasks.filter((t) => !t.done && !t.blocked);
  }
  allDone(): boolean {
    return this.threads.every((t) => t.task?.done);
  }
  opsDone(t: Task): number {
    return this.stateOf.get(t)?.opsDone ?? 0;
  }

  /** One step of `t`; `check` false skips the invariants (a replayed step whose state was checked). */
  step(t: Task, check = true): StepRecord {
    const rec = this.k.sched.step(t);
    if (check && this.opts.checkEachStep) checkInvariants(this.k);
    this.opts.onStep?.(rec, this);
    return rec;
  }

  /** After the last step: deadlock (threads left blocked) and leak checks. */
  finish(): void {
    const stuck = this.threads.filter((t) => t.task && !t.task.done);
    if (stuck.length && !this.enabled().length)
      this.k.violation('no-deadlock', `deadlock: ${stuck.map((t) => `${t.def.name} waits at ${pendingText(t.task!)}`).join('; ')}`);
    checkInvariants(this.k);
    if (!stuck.length) checkNoLeak(this.k);
  }

  /** Which violations a faithful model is expected to report for this kernel. */
  expectedViolations(): ExpectedFinding[] {
    const e = this.scn.expectViolations;
    return e[this.k.variant.name] ?? e['*'] ?? [];
  }
}

/**
 * The round-robin schedule `run` uses: each thread runs one whole operation, then the next thread
 * (in the order listed) runs one, and so on; a thread that blocks yields to the others.
 */
export function runSequential(run: ScenarioRun): void {
  let cur = 0;
  for (let guard = 0; guard < 50_000_000; guard++) {
    const en = run.enabled();
    if (!en.length) break;
    const tasks = run.tasks;
    let t = tasks[cur % tasks.length];
    if (!en.includes(t)) {
      for (let i = 1; i <= tasks.length; i++) {
        const c = tasks[(cur + i) % tasks.length];
        if (en.includes(c)) {
          cur = (cur + i) % tasks.length;
          t = c;
          break;
        }
      }
    }
    const before = run.opsDone(t);
    run.step(t);
    if (run.opsDone(t) !== before || t.done) cur = (tasks.indexOf(t) + 1) % tasks.length;
  }
  run.finish();
}

function faultJson(f: FaultRecord): FaultJson {
  return { va: hex(f.va), order: f.order, pgoff: hex(BigInt(f.pgoff)), pfn: f.pfn === null ? null : hex(f.pfn), outcome: f.outcome };
}

/** A result's class without its value: ok, errno NAME, or the signal. */
export const outcomeOf = (r: Result) => ('ok' in r ? 'ok' : 'errno' in r ? `errno ${r.errno}` : r.signal);

/** The scenario step a result belongs to: setup[index] or thread[index]. */
export function stepAt(scn: Scenario, thread: string, index: number): Step | undefined {
  if (thread === SETUP) return scn.setup[index];
  return scn.threads.find((t) => t.name === thread)?.steps[index];
}

export function describe(r: Result): string {
  if ('errno' in r) return `errno ${r.errno}`;
  if ('signal' in r) return r.signal;
  return r.value !== undefined ? `ok ${typeof r.value === 'number' ? r.value : r.value}` : 'ok';
}

/** /proc/PID/maps, formatted as show_map_vma does (name at column 73). */
export function procMaps(p: Process): string[] {
  return p.mm.vmas.map((v) => {
    const head = `${v.vm_start.toString(16).padStart(8, '0')}-${v.vm_end.toString(16).padStart(8, '0')} ${v.protString()} ${(v.vm_pgoff * PAGE_SIZE).toString(16).padStart(8, '0')} 00:00 ${v.vm_file ? v.vm_file.id + 1 : 0} `;
    return v.vm_file ? head.padEnd(73) + v.vm_file.path : head;
  });
}

/** The end state: page tables (runs of consecutive entries), DMABUFs, devices, fds. */
const CALLS = new WeakMap<Step, string>();
/** A step's call in words, worked out once per scenario step. */
export function callOf(s: Step): string {
  let c = CALLS.get(s);
  if (c === undefined) CALLS.set(s, (c = callText(s)));
  return c;
}

export function finalState(run: ScenarioRun) {
  const k = run.k;
  return {
    processes: k.procs.map((p) => ({
      pid: p.pid,
      name: p.name,
      fds: [...p.files.fds].map(([fd, e]) => ({ fd, file: e.file.path })),
      vmas: p.mm.vmas.map((v) => ({ start: hex(v.vm_start), end: hex(v.vm_end), pgoff: hex(v.vm_pgoff), prot: v.protString(), file: v.vm_file?.path ?? null, cache: v.cache })),
      page_table: entryRuns(p.mm.pt),
    })),
    dmabufs: [...k.dmabufs].map((d) => {
      const priv = d.priv instanceof VfioPciDmaBuf ? d.priv : null;
      return {
        id: d.id, name: d.name, size: hex(d.size), file_refs: d.file.refs, mappings: d.file.f_mapping.i_mmap.size,
        ...(priv && {
          kind: priv.kind, status: STATUS_NAME[priv.status], kref: priv.kref, device: priv.vdev?.name ?? null, owns_device_file: !!priv.vfile,
          memattr: priv.memattr ? 'WC' : 'NC', ranges: priv.phys_vec.map((r) => ({ paddr: hex(r.paddr), len: hex(r.len) })),
        }),
        // the importers attached, and for iommufd the IOVA ranges that map the buffer
        importers: d.attachments.filter((a) => !a.detached).map((a) => ({
          importer: a.importer, peer2peer: a.peer2peer,
          ...(a.importer_priv instanceof IoptPages ? { revoked: a.importer_priv.revoked, iovas: [...a.importer_priv.areas].map((x) => ({ ioas: x.ioas.id, iova: hex(x.iova), length: hex(x.length), mapped: x.filled })) } : {}),
        })),
      };
    }),
    devices: [...k.vfio.values()].map((v) => ({
      name: v.name, bdf: v.pdev.desc.bdf, registration: v.vfio.refcount, open_count: v.vfio.open_count, memory_enabled: v.memoryEnabled(),
      command: v.vconfig[R.PCI_COMMAND] | (v.vconfig[R.PCI_COMMAND + 1] << 8), hw_command: v.pdev.command(), power: `D${v.pdev.power === 3 ? '3hot' : v.pdev.power}`,
      dmabufs: v.dmabufs.length, bars: v.pdev.bars.map((b) => ({ index: b.index, start: hex(b.start), size: hex(b.size) })),
      // the device cdev's iommufd binding, and what VFIO_DEVICE_SET_IRQS has set up
      iommufd: v.vfio.iommufd_device ? { context: v.vfio.iommufd_device.ctx.id, dev_id: v.vfio.iommufd_device.id, ioas: v.vfio.iommufd_device.ioas?.id ?? null } : null,
      irqs: {
        type: IRQ_TYPE[v.irqs.irq_type] ?? 'none', vectors: [...v.irqs.allocated].sort((a, b) => a - b),
        triggers: [...v.irqs.trigger].sort((a, b) => a[0] - b[0]).map(([vector, e]) => ({ vector, eventfd: e.id, count: Number(e.count) })),
      },
    })),
    vms: vmsState(k),
  };
}


/** The VMs (kernel/kvm/): their memory slots and second-stage table, as runs of entries by gpa. */
function vmsState(k: ScenarioRun['k']) {
  return [...k.kvms].map((kvm) => ({
    id: kvm.id, pid: k.procs.find((p) => p.mm === kvm.mm)?.pid ?? null,
    memslots: kvm.memslots.map((m) => ({ slot: m.slot, flags: m.flags, guest_phys_addr: hex(m.base_gfn * PAGE_SIZE), memory_size: hex(m.npages * PAGE_SIZE), userspace_addr: hex(m.userspace_addr) })),
    ept: entryRuns(kvm.ept).map(({ va, ...r }) => ({ gpa: va, ...r })),
  }));
}

const IRQ_TYPE: Record<number, string> = { [VFIO_PCI_MSI_IRQ_INDEX]: 'MSI', [VFIO_PCI_MSIX_IRQ_INDEX]: 'MSI-X' };

function entryRuns(pt: PageTable) {
  const out: Array<{ va: string; order: number; pfn: string; count: number; write: boolean; cache: string }> = [];
  let last: { va: number; pfn: number; order: number; count: number; write: boolean; cache: string } | null = null;
  const flush = () => last && out.push({ va: hex(last.va), order: last.order, pfn: hex(last.pfn), count: last.count, write: last.write, cache: last.cache });
  for (const e of pt.entries()) {
    const step = 2 ** e.order;
    if (last && e.order === last.order && e.write === last.write && e.cache === last.cache && e.va === last.va + last.count * step * PAGE_SIZE && e.pfn === last.pfn + last.count * step) last.count++;
    else {
      flush();
      last = { va: e.va, pfn: e.pfn, order: e.order, count: 1, write: e.write, cache: e.cache };
    }
  }
  flush();
  return out;
}

export type { Violation };
