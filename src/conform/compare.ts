// The real kernel's raw facts (the executor's JSON lines) as `run --json` step results, and their
// comparison with the model's, step by step. A few things cannot be equal by construction and are
// normalized, each for the reason given at NORMALIZED; every other difference is either covered
// by an entry of the reviewed data file (data/conform-differences.yaml) or flagged.
import type { Scenario, Step } from '../scenario/loader.ts';
import { callOf, describe, outcomeOf, type FaultJson, type StepOut } from '../scenario/runner.ts';
import { asJson, buildIoctl, containerIoctlArgs, isContainerStep, le, mmapFlags, outFields, type Result } from '../scenario/ops.ts';
import { show } from '../scenario/report.ts';
import { hex, literal, parseExpr, refsOf } from '../scenario/values.ts';
import { errnoName } from '../uapi/errno.ts';
import * as M from '../uapi/mman.ts';
import { classify, type ExpectedEntry, type Kind } from '../diff/expected.ts';

/** One line the executor wrote for a step. */
export interface RawStep {
  thread: string;
  index: number;
  op: string;
  ret?: string;
  errno?: number;
  signal?: number;
  si_code?: number;
  si_addr?: string;
  buf?: string;
  faults?: Array<{ addr: string; start: string; order: number; ret: string | null }> | null;
  error?: string;
}

export interface RawRun {
  kernel: string;
  faultProbe: boolean;
  scenarios: Map<string, RawStep[]>;
  /** a scenario the executor did not finish */
  unfinished: string[];
  fatal?: string;
}

/** Split the executor's output into scenarios. */
export function parseRaw(text: string): RawRun {
  const run: RawRun = { kernel: '?', faultProbe: false, scenarios: new Map(), unfinished: [] };
  let cur: RawStep[] | null = null, name = '';
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line);
    } catch {
      continue; // a line cut by the guest powering off
    }
    if ('executor' in o) {
      run.kernel = String(o.kernel);
      run.faultProbe = o.fault_probe === true;
    } else if ('scenario' in o) {
      name = String(o.scenario);
      run.scenarios.set(name, (cur = []));
    } else if ('end' in o) cur = null;
    else if ('fatal' in o) run.fatal = String(o.fatal);
    else if ('thread' in o && cur) cur.push(o as unknown as RawStep);
  }
  if (cur) run.unfinished.push(name);
  return run;
}

const SIGNAL: Record<number, string> = { 7: 'SIGBUS', 11: 'SIGSEGV' };
const SI_CODE: Record<string, Record<number, string>> = { SIGBUS: { 1: 'BUS_ADRALN', 2: 'BUS_ADRERR', 3: 'BUS_OBJERR' }, SIGSEGV: { 1: 'SEGV_MAPERR', 2: 'SEGV_ACCERR' } };
const OUTCOME: Record<number, string> = { 0x100: 'NOPAGE', 0x800: 'FALLBACK', 0x2: 'SIGBUS' };

function errno(n: number): string {
  try {
    return errnoName(n);
  } catch {
    return `E${n}`;
  }
}

function bytes(h: string | undefined): Uint8Array {
  return Uint8Array.from(Buffer.from(h ?? '', 'hex'));
}

/** A fault of the kprobe as the model reports one: the order-aligned VA, pgoff from vm_start. */
export function realFault(f: { addr: string; start: string; order: number; ret: string | null }): FaultJson {
  const size = 1n << BigInt(12 + f.order);
  const va = BigInt(f.addr) & ~(size - 1n);
  const ret = f.ret === null ? null : Number(f.ret);
  return {
    va: hex(va), order: f.order, pgoff: hex(BigInt.asUintN(64, (va - BigInt(f.start)) >> 12n)), pfn: null,
    outcome: ret === null ? 'no return' : OUTCOME[ret] ?? `0x${ret.toString(16)}`,
  };
}

/** The step's result as the model would print it, built from what the real kernel returned. */
export function realStep(raw: RawStep, s0: Step): StepOut {
  const out: StepOut = { thread: raw.thread, index: raw.index, op: s0.op, call: callOf(s0), result: { ok: true }, line: s0.line };
  // container_map / container_unmap are the raw ioctls they stand for
  const s: Step = isContainerStep(s0.op) ? { ...s0, op: 'ioctl', args: containerIoctlArgs(s0.op, s0.args) } : s0;
  if (raw.faults?.length) out.faults = raw.faults.map(realFault);
  if (raw.error !== undefined) {
    out.result = { errno: 'EXECUTOR' };
    out.detail = raw.error;
    return out;
  }
  if (raw.signal !== undefined) {
    const sig = SIGNAL[raw.signal] ?? `signal ${raw.signal}`;
    out.result = { signal: sig };
    out.detail = `${SI_CODE[sig]?.[raw.si_code ?? 0] ?? `si_code ${raw.si_code}`} at ${raw.si_addr}`;
    return out;
  }
  if (raw.errno !== undefined) {
    out.result = { errno: errno(raw.errno) };
    return out;
  }
  const ret = BigInt(raw.ret ?? '0');
  const buf = bytes(raw.buf);
  const a = s.args;
  let r: Result;
  switch (s.op) {
    case 'mmap':
    case 'mremap':
      r = { ok: true, value: hex(ret) };
      break;
    case 'load':
      r = { ok: true, value: asJson(ret, Number(a.width ?? 4)) };
      break;
    case 'store':
    case 'post':
    case 'wait':
      r = { ok: true };
      break;
    case 'config_read':
      r = { ok: true, value: a.device !== undefined ? Number(ret) : Number(le(buf, buf.length)) };
      break;
    case 'config_write':
      r = a.device !== undefined ? { ok: true } : { ok: true, value: Number(ret) };
      break;
    case 'read': {
      const n = Number(ret);
      r = { ok: true, value: n, out: n <= 8 && a.buf === undefined ? { data: asJson(le(buf, n), n) } : {} };
      break;
    }
    case 'ioctl': {
      const { layout, name } = buildIoctl(a, () => 0n);
      r = layout ? { ok: true, value: Number(ret), out: outFields(layout, buf, ['pad']).out } : { ok: true, value: Number(ret) };
      out.detail = name;
      break;
    }
    default:
      r = { ok: true, value: Number(ret) };
  }
  out.result = r;
  return out;
}

// ---- comparison ----

/**
 * What is normalized before comparing, and why. These are not differences of behaviour: the
 * executor and the model cannot agree on them by construction.
 */
export const NORMALIZED = {
  fd: 'fd numbers (of open, dup and VFIO_GROUP_GET_DEVICE_FD): the executor also holds its pipes and, for devices opened by name, the VFIO container and group fds, so its fd numbers are higher',
  vaddr: 'a user address in an ioctl struct (VFIO_IOMMU_MAP_DMA\'s vaddr, written back) that names a mapping at a VA the kernel chose: not compared, as va says',
  pid: 'fork returns the child\'s pid, which the model numbers its own way',
  va: 'a VA the kernel chose (no MAP_FIXED): only its alignment class is compared (VA mod 2 MiB for 2 MiB or more, page alignment below), since the real address space also holds the executor\'s own mappings',
  neighbours: 'faults in a mapping at a VA the kernel chose: order-18 and order-9 FALLBACK calls are left out, since the core calls the huge fault handler only while the PUD or PMD entry above the address is empty, which depends on the mappings around it',
  faultVa: 'fault addresses: compared as the page offset from vm_start (what vfio_pci_core\'s dev_dbg line prints), order and outcome; the PFN is not visible to the probe',
  signalAddr: 'si_addr: compared as the signal code only, since the VA differs as above',
} as const;

export interface ConformDifference {
  where: string;
  op: string;
  line: number | null;
  kind: Kind;
  field: string;
  values: { model: string; real: string };
  class: 'expected' | 'flagged';
  rule?: string;
}

export interface ConformStep {
  where: string;
  op: string;
  line: number | null;
  model: StepOut | null;
  real: StepOut | null;
  differences: ConformDifference[];
}

export const faultText = (f: FaultJson) => `${f.order}@${f.pgoff}->${f.outcome}`;
const isFixed = (s: Step) => (mmapFlags(s.args) & (M.MAP_FIXED | M.MAP_FIXED_NOREPLACE)) !== 0;
const PMD_MASK = BigInt(M.PMD_SIZE) - 1n;

/** A number written in the scenario, or null when it names a run-time value. */
function literalOf(v: unknown): bigint | null {
  try {
    return literal(v, '');
  } catch {
    return null;
  }
}

/** The result as compared: what NORMALIZED says is not comparable is replaced by its class. */
function comparable(s: StepOut, step: Step): string {
  const r = s.result;
  if (!('ok' in r)) return describe(r);
  if (step.op === 'open' || step.op === 'dup' || (step.op === 'ioctl' && step.args.op === 'VFIO_GROUP_GET_DEVICE_FD')) return 'ok <fd>';
  if (step.op === 'fork') return 'ok <pid>';
  if (step.op === 'mmap' && !isFixed(step) && typeof r.value === 'string') {
    const len = literalOf(step.args.length);
    if (len !== null && len < BigInt(M.PMD_SIZE)) return `ok VA ${BigInt(r.value) % 4096n ? 'not ' : ''}page-aligned`;
    return `ok VA ≡ 0x${(BigInt(r.value) & PMD_MASK).toString(16)} mod 2 MiB`;
  }
  return show(s);
}

/** The names bound by an mmap at a VA the kernel chose. */
export function kernelPlaced(scn: Scenario): Set<string> {
  return new Set([...scn.setup, ...scn.threads.flatMap((t) => t.steps)].filter((s) => s.op === 'mmap' && s.as && !isFixed(s)).map((s) => s.as!));
}

function faultsCompared(s: StepOut, placed: boolean): string {
  return (s.faults ?? []).filter((f) => !(placed && f.outcome === 'FALLBACK' && f.order > 0)).map(faultText).join(' ');
}

export interface CompareContext {
  scenario: string;
  modelKernel: string;
  realKernel: string;
  faultProbe: boolean;
  /** names of mappings at a VA the kernel chose (kernelPlaced) */
  placed: Set<string>;
  expected: ExpectedEntry[];
  used: Map<string, number>;
}

export function compareStep(cx: CompareContext, where: string, step: Step, m: StepOut | undefined, r: StepOut | undefined): ConformStep {
  const diffs: Array<Omit<ConformDifference, 'class' | 'rule'>> = [];
  const line = step.line ?? null;
  const d = (kind: Kind, field: string, model: string, real: string) => diffs.push({ where, op: step.op, line, kind, field, values: { model, real } });
  if (!m || !r) d('result', 'outcome', m ? show(m) : 'did not run', r ? show(r) : 'did not run');
  else {
    if (outcomeOf(m.result) !== outcomeOf(r.result)) d('result', 'outcome', show(m), `${show(r)}${r.detail && r.result && 'errno' in r.result && r.result.errno === 'EXECUTOR' ? ` (${r.detail})` : ''}`);
    else if ('ok' in m.result && 'ok' in r.result) {
      const cm = comparable(m, step), cr = comparable(r, step);
      if (cm !== cr) d('result', 'value', cm, cr);
      const om = (m.result.out ?? {}) as Record<string, unknown>, or = (r.result.out ?? {}) as Record<string, unknown>;
      for (const f of new Set([...Object.keys(om), ...Object.keys(or)]))
        if (JSON.stringify(om[f]) !== JSON.stringify(or[f]) && !(f === 'vaddr' && (isContainerStep(step.op) || (step.op === 'ioctl' && literalOf(step.args.vaddr) === null)))) d('result', `out.${f}`, JSON.stringify(om[f] ?? null), JSON.stringify(or[f] ?? null));
    } else if ('signal' in m.result) {
      const code = (s: StepOut) => (s.detail ?? '').split(' ')[0];
      if (code(m) !== code(r)) d('result', 'siginfo', code(m), code(r));
    }
    // without the fault probe (a kernel lacking kprobe events) there is nothing to compare
    if (cx.faultProbe) {
      const at = refsOf(parseExpr(step.args.addr ?? step.args.buf ?? 0))[0];
      const placed = at !== undefined && cx.placed.has(at);
      const fm = faultsCompared(m, placed), fr = faultsCompared(r, placed);
      if (fm !== fr) d('faults', 'sequence', fm || 'none', fr || 'none');
    }
  }
  const classified = diffs.map((x): ConformDifference => {
    const rule = classify(cx.expected, { op: x.op, kind: x.kind, field: x.field, args: step.args, scenario: cx.scenario, values: { [cx.modelKernel]: x.values.model, [cx.realKernel]: x.values.real } }, cx.modelKernel, cx.realKernel);
    if (!rule) return { ...x, class: 'flagged' };
    cx.used.set(rule.id, (cx.used.get(rule.id) ?? 0) + 1);
    return { ...x, class: 'expected', rule: rule.id };
  });
  return { where, op: step.op, line, model: m ?? null, real: r ?? null, differences: classified };
}
