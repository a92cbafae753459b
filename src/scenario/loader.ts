// Load a scenario: YAML with line positions, the zod schemas, then the checks no schema can say
// (BAR layouts, names used before they are bound). Every error names file, line and field.
import { glob } from './glob.ts';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { LineCounter, parseDocument, isAlias, isMap, visit, type Node } from 'yaml';
import { closest, distance } from 'fastest-levenshtein';
import { CONTAINER_IOCTLS, FEATURES, IOCTLS, VFIO_EXTENSIONS } from '../uapi/vfio.ts';
import { IOMMUFD_IOCTLS } from '../uapi/iommufd.ts';
import { KVM_IOCTLS } from '../uapi/kvm.ts';
import type { z } from 'zod';
import { OPS, device as deviceSchema, deviceFile as deviceFileSchema, scenario as scenarioSchema, LOCKDEP_DEP_RE, type Expect, type OpName } from './schema.ts';
import type { LockdepDep } from '../kernel/kernel.ts';
import { literal, parseExpr, refsOf, ValueError } from './values.ts';
import { addProfiles, allProfiles, profile, PROFILES, type Profile } from '../kernel/pci/profiles.ts';
import type { BarDesc, PciDevDesc } from '../kernel/pci/device.ts';
import { KconfigError, resolveKconfig, type KconfigInput } from '../kernel/kconfig.ts';
import { DEFAULT_KERNEL, KERNELS } from '../kernel/variants.ts';
import { INVARIANTS } from '../kernel/invariants.ts';

export interface Step {
  op: OpName;
  args: Record<string, unknown>;
  as?: string;
  expect?: Expect;
  line: number;
}
export interface ThreadDef {
  name: string;
  proc: string;
  steps: Step[];
}
export interface Scenario {
  file: string;
  name: string;
  description?: string;
  config: KconfigInput;
  devices: PciDevDesc[];
  setup: Step[];
  threads: ThreadDef[];
  expectViolations: Record<string, ExpectedFinding[]>;
  /** the kernels the scenario's expectations hold on (`kernels:`; every kernel when left out) */
  kernels: string[];
  /** `lockdep_history:` dependencies lockdep had recorded before the scenario starts */
  lockdepHistory: LockdepDep[];
}

export class ScenarioError extends Error {
  constructor(readonly file: string, readonly line: number | null, readonly field: string, readonly problem: string) {
    super(`${file}${line ? `:${line}` : ''}: ${field ? `${field}: ` : ''}${problem}`);
  }
}

/** The default process: threads without a "P/" prefix and the setup run in it. */
export const MAIN_PROC = 'main';

/**
 * A finding a scenario declares for a kernel (`expect_violations`): violations of `invariant` whose
 * message matches `message` (a glob; absent: any message) are expected, and at least one must occur.
 */
export interface ExpectedFinding {
  invariant: string;
  message?: string;
}

/** Whether a violation is one of the declared findings. */
export function isExpected(findings: readonly ExpectedFinding[], v: { invariant: string; message: string }): boolean {
  return findings.some((f) => f.invariant === v.invariant && (f.message === undefined || glob(f.message, v.message)));
}

/**
 * The kernel to run a scenario on: the one asked for; else the default, unless the scenario's
 * `kernels:` (the kernels its expectations describe) leaves it out, then the first it lists.
 */
export function kernelFor(scn: Scenario, asked?: string): string {
  if (asked !== undefined) return asked;
  return scn.kernels.includes(DEFAULT_KERNEL) ? DEFAULT_KERNEL : scn.kernels[0];
}

export function loadScenarioFile(file: string): Scenario {
  return parseScenario(readSource(file), file);
}

/**
 * A YAML document with what checking it needs: its value, and `fail`/`check` that name the file,
 * the line and the field of a problem. Aliases without an anchor, or so many that expanding them
 * would blow up (a "billion laughs"), are a problem at the first alias, not an exception.
 */
function yamlSource(src: string, file: string) {
  const lc = new LineCounter();
  const doc = parseDocument(src, { intAsBigInt: true, lineCounter: lc, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0];
    throw new ScenarioError(file, lc.linePos(e.pos[0]).line, '', `YAML: ${e.message.split('\n')[0]}`);
  }
  const lineOf = (path: ReadonlyArray<string | number>): number | null => {
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n), true) as Node | undefined;
      if (node && (node as Node).range) return lc.linePos((node as Node).range![0]).line;
    }
    return null;
  };
  const fail = (path: ReadonlyArray<string | number>, problem: string): never => {
    // a problem of the whole document (an empty file) is at its first line
    throw new ScenarioError(file, lineOf(path) ?? 1, path.join('.'), problem);
  };
  const check = <S extends z.ZodType>(schema: S, value: unknown, path: Array<string | number>): z.infer<S> => {
    const r = schema.safeParse(value);
    if (!r.success) {
      const iss = r.error.issues[0];
      const sub = iss.path.map((x) => (typeof x === 'symbol' ? String(x) : x));
      if (iss.code === 'unrecognized_keys') {
        const keys = (iss as { keys: string[] }).keys;
        fail([...path, ...sub, keys[0]], `unknown key${keys.length > 1 ? 's' : ''} ${keys.join(', ')}`);
      }
      fail([...path, ...sub], iss.message);
    }
    return r.data as z.infer<S>;
  };
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 1000 });
  } catch (e) {
    let line: number | null = null;
    visit(doc, { Alias: (_, n) => void (line ??= n.range ? lc.linePos(n.range[0]).line : null) });
    throw new ScenarioError(file, line, '', `YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  return { doc, raw, lineOf, fail, check };
}

function readSource(file: string, what = 'cannot read'): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new ScenarioError(file, null, '', `${what}: ${(e as Error).message}`);
  }
}

/** A device file as read: its profile name, title and source, and the device fields it gives. */
export interface DeviceFile {
  file: string;
  id: string;
  title?: string;
  source?: string;
  fields: Omit<z.infer<typeof deviceFileSchema>, 'id' | 'title' | 'source'>;
  /** the device it describes, resolved (named after its id) */
  desc: PciDevDesc;
}

/** Read and check a device file (docs/devices.md); problems name the file, line and field. */
export function loadDeviceFile(file: string): DeviceFile {
  const { doc, raw, fail, check } = yamlSource(readSource(file), file);
  if (!isMap(doc.contents)) fail([], 'a device file is a map of device fields (profile, bars, msix, ...)');
  const { id, title, source, ...fields } = check(deviceFileSchema, raw, []);
  const name = id ?? basename(file).replace(/\.ya?ml$/, '');
  const desc = resolveDevice({ name, ...fields }, 0, fail);
  return { file, id: name, title, source, fields, desc };
}

/**
 * Make every device file in `dir` a profile named by its id (`--devices DIR`), usable as
 * `profile: <id>` in scenarios; returns them. A name a built-in profile has is refused.
 */
export function loadDeviceProfiles(dir: string): Profile[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /\.ya?ml$/.test(n)).sort();
  } catch (e) {
    throw new ScenarioError(dir, null, '', `cannot read the device directory: ${(e as Error).message}`);
  }
  const out: Profile[] = [];
  for (const n of names) {
    const f = loadDeviceFile(join(dir, n));
    if (PROFILES.some((p) => p.id === f.id)) throw new ScenarioError(f.file, 1, 'id', `profile ${f.id} is a built-in profile's name; give the file another id`);
    if (out.some((p) => p.id === f.id)) throw new ScenarioError(f.file, 1, 'id', `profile ${f.id} is defined twice in ${dir}`);
    const { name: _, ...desc } = f.desc;
    out.push({ id: f.id, title: f.title ?? `${f.id} (from ${n})`, source: f.source ?? f.file, desc });
  }
  addProfiles(out);
  return out;
}

export function parseScenario(src: string, file = '<scenario>'): Scenario {
  const { doc, raw, lineOf, fail, check } = yamlSource(src, file);
  if (!isMap(doc.contents)) fail([], 'a scenario is a map with name, devices and threads');
  const top = check(scenarioSchema, raw, []);
  // the configuration is resolved when a kernel is made; refuse a bad one here, at its symbol
  try {
    resolveKconfig((top.config ?? {}) as KconfigInput);
  } catch (e) {
    if (!(e instanceof KconfigError)) throw e;
    const sym = /^config ([A-Za-z0-9_]+)/.exec(e.message)?.[1];
    const cfg = (top.config ?? {}) as Record<string, unknown>;
    fail(sym && Object.hasOwn(cfg, sym) ? ['config', sym] : ['config'], e.message.replace(/^config [A-Za-z0-9_]+(=\w)?: /, ''));
  }
  top.kernels?.forEach((kn, i) => {
    if (!(kn in KERNELS)) fail(['kernels', i], `unknown kernel ${kn}${didYouMean(kn, Object.keys(KERNELS))} (known: ${Object.keys(KERNELS).join(', ')})`);
  });

  const devices = top.devices.map((d, i) => {
    const entry = check(deviceSchema, d, ['devices', i]);
    if (entry.file === undefined) return resolveDevice(entry, i, (p, m) => fail(['devices', i, ...p], m));
    // a device file, relative to the scenario; the fields given here win over the file's
    if (file.startsWith('<')) fail(['devices', i, 'file'], 'a device file needs a scenario read from a file (its path is relative to it)');
    const { file: path, ...over } = entry;
    const df = loadDeviceFile(isAbsolute(path) ? path : join(dirname(file), path));
    return resolveDevice({ ...df.fields, ...over }, i, (p, m) => fail(['devices', i, ...p], `${m} (with ${path})`));
  });
  const names = new Set<string>();
  const bdfs = new Set<string>();
  devices.forEach((d, i) => {
    if (names.has(d.name)) fail(['devices', i, 'name'], `device ${d.name} is defined twice`);
    names.add(d.name);
    if (bdfs.has(d.bdf)) {
      if (top.devices[i].bdf) fail(['devices', i, 'bdf'], `PCI address ${d.bdf} is used twice`);
      // two devices from one profile: give the second the next free bus number
      for (let bus = 1; bdfs.has(d.bdf); bus++) d.bdf = `0000:${bus.toString(16).padStart(2, '0')}:00.0`;
    }
    bdfs.add(d.bdf);
  });

  const bound = new Set<string>();
  const parseSteps = (list: unknown[], path: Array<string | number>): Step[] =>
    list.map((s, i) => {
      const p = [...path, i];
      if (!s || typeof s !== 'object' || Array.isArray(s) || Object.keys(s).length !== 1) fail(p, `a step is a one-key map, e.g. "- mmap: { ... }" (operations: ${Object.keys(OPS).join(', ')})`);
      const [op, args] = Object.entries(s as object)[0];
      if (!Object.hasOwn(OPS, op)) fail(p, `unknown operation "${op}"${didYouMean(op, Object.keys(OPS))} (operations: ${Object.keys(OPS).join(', ')})`);
      const a = check(OPS[op as OpName] as z.ZodType, args ?? {}, [...p, op]) as Record<string, unknown>;
      if (a.as) bound.add(a.as as string);
      return { op: op as OpName, args: a, as: a.as as string | undefined, expect: a.expect as Expect | undefined, line: lineOf([...p, op]) ?? 0 };
    });

  const setup = parseSteps(top.setup ?? [], ['setup']);
  const threads: ThreadDef[] = Object.entries(top.threads).map(([tname, steps]) => {
    const slash = tname.indexOf('/');
    return { name: tname, proc: slash < 0 ? MAIN_PROC : tname.slice(0, slash), steps: parseSteps(steps, ['threads', tname]) };
  });

  // every name used must be bound somewhere (setup or any thread)
  const walk = (steps: Step[], path: Array<string | number>) =>
    steps.forEach((s, i) => {
      for (const [key, v] of Object.entries(s.args)) {
        if (key === 'as' || key === 'expect' || key === 'path' || key === 'device' || key === 'op' || key === 'feature' || key === 'reg' || key === 'memattr' || key === 'advice' || key === 'event' || key === 'name') continue;
        if (key === 'arg' && typeof v === 'string' && Object.hasOwn(VFIO_EXTENSIONS, v)) continue;
        const vals = key === 'ranges' ? (v as Array<Record<string, unknown>>).flatMap((r) => Object.values(r)) : key === 'data' ? (v as unknown[]) : Array.isArray(v) ? [] : [v];
        for (const x of vals)
          for (const r of refsOf(parseExpr(x)))
            if (!bound.has(r)) fail([...path, i, s.op, key], `"${r}" is not bound by any step's "as:"`);
      }
      // an ioctl or feature is a name the kernel knows, or a number (an expression of bound names)
      for (const [key, known] of [['op', { ...IOCTLS, ...CONTAINER_IOCTLS, ...IOMMUFD_IOCTLS, ...KVM_IOCTLS }], ['feature', FEATURES]] as const) {
        const v = s.args[key];
        if (s.op !== 'ioctl' || typeof v !== 'string' || Object.hasOwn(known, v)) continue;
        let refs: string[];
        try {
          refs = refsOf(parseExpr(v));
        } catch {
          refs = [v];
        }
        if (refs.some((r) => !bound.has(r))) fail([...path, i, s.op, key], `unknown ${key === 'op' ? 'ioctl' : 'device feature'} ${v}${didYouMean(v, Object.keys(known))}`);
      }
      if (s.op === 'unbind' && !names.has(s.args.device as string)) fail([...path, i, s.op, 'device'], `no device named ${s.args.device}`);
      if (s.op === 'config_read' || s.op === 'config_write') {
        if ((s.args.fd === undefined) === (s.args.device === undefined)) fail([...path, i, s.op], 'give exactly one of fd (through VFIO) or device (the hardware register, as setpci)');
        if (s.args.device !== undefined && !names.has(s.args.device as string)) fail([...path, i, s.op, 'device'], `no device named ${s.args.device}`);
      }
    });
  walk(setup, ['setup']);
  for (const t of threads) walk(t.steps, ['threads', t.name]);

  // fork makes a new process: not the caller's own, not one made already
  const forked = new Set<string>();
  for (const [steps, path, proc] of [[setup, ['setup'], MAIN_PROC], ...threads.map((t) => [t.steps, ['threads', t.name], t.proc])] as Array<[Step[], string[], string]>)
    steps.forEach((s, i) => {
      if (s.op !== 'fork') return;
      const child = s.args.as as string;
      if (child === proc || child === MAIN_PROC) fail([...path, i, 'fork', 'as'], `fork makes a new process; ${child} is ${child === proc ? 'the forking thread\'s own' : 'the main process'}`);
      if (forked.has(child)) fail([...path, i, 'fork', 'as'], `process ${child} is forked twice`);
      forked.add(child);
    });

  const expectViolations: Record<string, ExpectedFinding[]> = {};
  for (const [kn, invs] of Object.entries(top.expect_violations ?? {})) {
    if (kn !== '*' && !Object.hasOwn(KERNELS, kn)) fail(['expect_violations', kn], `unknown kernel ${kn}${didYouMean(kn, Object.keys(KERNELS))} (known: ${Object.keys(KERNELS).join(', ')}, or * for every kernel)`);
    expectViolations[kn] = invs.map((x, i) => {
      const f: ExpectedFinding = typeof x === 'string' ? { invariant: x } : x;
      if (!(INVARIANTS as readonly string[]).includes(f.invariant)) fail(['expect_violations', kn, i, ...(typeof x === 'string' ? [] : ['invariant'])], `unknown invariant ${f.invariant}${didYouMean(f.invariant, [...INVARIANTS])} (known: ${INVARIANTS.join(', ')})`);
      return f;
    });
  }

  return {
    file, name: top.name, description: top.description, config: (top.config ?? {}) as KconfigInput, devices, setup, threads,
    expectViolations,
    kernels: top.kernels ?? Object.keys(KERNELS),
    lockdepHistory: (top.lockdep_history ?? []).map((d) => {
      const m = LOCKDEP_DEP_RE.exec(d)!;
      return { from: m[1], dep: m[2] as LockdepDep['dep'], to: m[3] };
    }),
  };
}

/** Validate and resolve one device description (the YAML shape, as a plain object). */
export function deviceFromSpec(spec: unknown, i = 0): PciDevDesc {
  const r = deviceSchema.safeParse(spec);
  if (!r.success) {
    const iss = r.error.issues[0];
    throw new ScenarioError('<api>', null, `devices.${i}.${iss.path.join('.')}`, iss.message);
  }
  return resolveDevice(r.data, i, (p, m) => {
    throw new ScenarioError('<api>', null, ['devices', i, ...p].join('.'), m);
  });
}

function resolveDevice(d: z.infer<typeof deviceSchema>, i: number, fail: (path: Array<string | number>, m: string) => never): PciDevDesc {
  const base = d.profile ? profile(d.profile) : undefined;
  if (d.profile && !base) fail(['profile'], `unknown profile ${d.profile}${didYouMean(String(d.profile), allProfiles().map((p) => p.id))} (known: ${allProfiles().map((p) => p.id).join(', ')})`);
  const num = (v: unknown, path: string) => {
    try {
      return Number(literal(v, path));
    } catch (e) {
      return fail([path], (e as ValueError).message);
    }
  };
  const bars: BarDesc[] = d.bars
    ? d.bars.map((b, j) => ({ index: Number(b.index), size: num(b.size, 'size'), prefetchable: b.prefetchable ?? false, bits: Number(b.bits ?? 32) as 32 | 64, io: b.io ?? false }))
    : base?.desc.bars ?? fail(['bars'], 'a device needs bars (or a profile)');
  const used = new Set<number>();
  bars.forEach((b, j) => {
    const f = (m: string) => fail(['bars', j], m);
    if (!Number.isInteger(b.index) || b.index < 0 || b.index > 5) f('index must be 0..5');
    if (!Number.isInteger(Math.log2(b.size))) f(`size ${b.size} is not a power of two`);
    if (b.size < (b.io ? 4 : 16)) f(`size ${b.size} is below the minimum BAR size (${b.io ? 4 : 16} bytes)`);
    if (b.bits === 32 && b.size > 2 ** 31) f('a BAR over 2 GiB needs bits: 64');
    // a 64-bit BAR's size is a power of two the size mask can express: at most 2^63
    if (b.size > 2 ** 63) f(`size ${b.size} does not fit a 64-bit BAR (at most 2^63 bytes)`);
    if (b.io && b.bits === 64) f('an I/O BAR cannot be 64-bit');
    if (b.bits === 64 && b.index === 5) f('a 64-bit BAR takes two slots, so it cannot start at index 5');
    for (const s of b.bits === 64 ? [b.index, b.index + 1] : [b.index]) {
      if (used.has(s)) f(`BAR slot ${s} is already taken${b.bits === 64 ? ' (a 64-bit BAR takes index and index+1)' : ''}`);
      used.add(s);
    }
  });
  const msix = d.msix === null ? undefined : d.msix ? { bar: Number(d.msix.bar), offset: num(d.msix.offset, 'offset'), entries: Number(d.msix.entries) } : base?.desc.msix;
  if (msix) {
    const b = bars.find((x) => x.index === msix.bar);
    if (!b) fail(['msix', 'bar'], `MSI-X table in BAR${msix.bar}, which the device does not have`);
    if (msix.entries < 1 || msix.entries > 2048) fail(['msix', 'entries'], 'MSI-X has 1..2048 entries');
    if (!Number.isInteger(msix.entries)) fail(['msix', 'entries'], 'MSI-X has a whole number of entries');
    if (msix.offset < 0 || msix.offset % 8 !== 0 || msix.offset + msix.entries * 16 > b!.size) fail(['msix', 'offset'], `the ${msix.entries}-entry table at 0x${msix.offset.toString(16)} does not fit in BAR${msix.bar} (${b!.size} bytes)`);
  }
  const caps = { pm: true, pcie: true, flr: true, ...(base?.desc.capabilities ?? {}), ...(d.capabilities ?? {}) };
  if (caps.flr && !caps.pcie) fail(['capabilities', 'flr'], 'FLR is a PCIe capability: it needs pcie: true');
  if (caps.ats && !caps.pcie) fail(['capabilities', 'ats'], 'ATS is a PCIe extended capability: it needs pcie: true');
  return {
    name: d.name,
    bdf: d.bdf ?? base?.desc.bdf ?? `0000:${(i + 1).toString(16).padStart(2, '0')}:00.0`,
    vendor: d.vendor !== undefined ? num(d.vendor, 'vendor') : base?.desc.vendor ?? 0x1b36,
    device: d.device !== undefined ? num(d.device, 'device') : base?.desc.device ?? 0x0010,
    bars, msix, capabilities: caps, bus: d.bus ?? base?.desc.bus ?? 'bridge', driver: d.driver ?? 'vfio-pci',
    // what only a profile says: capability layout, MSI, INTx pin, the firmware's COMMAND
    ...(base ? { capOffsets: base.desc.capOffsets, msi: base.desc.msi, intPin: base.desc.intPin, command: base.desc.command } : {}),
  };
}

/** ", did you mean X?" for the known name nearest a misspelt one, when it is near enough. */
export function didYouMean(name: string, known: string[]): string {
  const best = closest(name.toUpperCase(), known.map((k) => k.toUpperCase()));
  const i = known.findIndex((k) => k.toUpperCase() === best);
  const d = distance(name.toUpperCase(), best);
  return i >= 0 && (d <= Math.max(2, name.length / 3) || best.includes(name.toUpperCase())) ? `, did you mean ${known[i]}?` : '';
}
