// vfio-sim conform: run scenarios on a real Linux kernel in QEMU and on the model, and diff them
// step by step. One boot runs every scenario; each scenario gets the QEMU twins of its devices.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Scenario } from '../scenario/loader.ts';
import { runScenario, type RunResult } from '../scenario/report.ts';
import { stepAt, type StepOut } from '../scenario/runner.ts';
import { hex } from '../scenario/values.ts';
import type { ExpectedEntry } from '../diff/expected.ts';
import { compileScenario, ConformError } from './compile.ts';
import { compareStep, faultText, kernelPlaced, NORMALIZED, parseRaw, realStep, type ConformStep, type RawRun } from './compare.ts';
import { boot, buildInitramfs, CACHE, customKernel, debianKernel, GuestError, setup, type GuestKernel } from './guest.ts';
import { planSlots, twinOf, type Twin } from './twins.ts';

export interface ConformOptions {
  scenarios: Scenario[];
  /** the model's kernel to compare with (v7.1: the closest to 6.12 for BAR mmap) */
  modelKernel: string;
  /** run the model with a design variant (a model broken on purpose must disagree with the real kernel) */
  mutant?: string;
  kernelImage?: string;
  modules?: string;
  accel: 'tcg' | 'kvm';
  timeoutS: number;
  expected: ExpectedEntry[];
  log: (s: string) => void;
}

export interface ScenarioReport {
  scenario: string;
  file: string;
  devices: Array<{ name: string; twin: string; bdf: string }>;
  steps: ConformStep[];
  /** the model's failed expect: lines on the model kernel (the scenario's own claims) */
  modelProblems: string[];
  flagged: number;
  expected: number;
  /** the executor stopped inside this scenario */
  unfinished: boolean;
}

export interface ConformReport {
  kernel: { label: string; source: string; faultProbe: boolean };
  modelKernel: string;
  mutant?: string;
  bootMs: number;
  qemu: string[];
  normalized: typeof NORMALIZED;
  scenarios: ScenarioReport[];
  rules: Array<{ id: string; reason: string; spec: string; count: number }>;
  /** data-file entries that covered nothing in this run */
  unusedRules: string[];
  flagged: number;
  expected: number;
  exit: 0 | 1;
}

/** Which QEMU device backs each scenario device; a ConformError names the one that has none. */
export function twinsOf(scn: Scenario): Twin[] {
  return scn.devices.map((d) => {
    const t = twinOf(d);
    if (typeof t === 'string') throw new ConformError(`${scn.file}: device ${d.name}: no QEMU twin (${t})`);
    return t;
  });
}

/** What both sides run: the model's results (which fix the step order), the device plan, the program. */
export interface Prepared {
  models: Array<{ scn: Scenario; model: RunResult }>;
  plan: ReturnType<typeof planSlots>;
  program: string;
}

export function prepare(scenarios: Scenario[], modelKernel: string, mutant?: string): Prepared {
  const models = scenarios.map((scn) => ({ scn, twins: twinsOf(scn), model: runScenario(scn, { kernel: modelKernel, mutant }).result }));
  const ids = new Set<string>();
  for (const m of models) {
    if (ids.has(m.scn.name)) throw new ConformError(`two scenarios are named ${m.scn.name}: conform reports by name`);
    ids.add(m.scn.name);
  }
  const plan = planSlots(models.map((m) => ({ name: m.scn.name, twins: m.twins })));
  const program = models.map((m) => compileScenario(m.scn, m.model.steps, plan.assign.get(m.scn.name)!).text).join('');
  return { models, plan, program };
}

export function runConform(o: ConformOptions): ConformReport {
  const log = o.log;
  const p = prepare(o.scenarios, o.modelKernel, o.mutant);
  setup(log);
  const k: GuestKernel = o.kernelImage ? customKernel(o.kernelImage, o.modules ?? '') : debianKernel(log);
  const work = join(CACHE, 'run');
  mkdirSync(work, { recursive: true });
  const initramfs = buildInitramfs(k, p.program, work);
  log(`boot: ${k.source}, ${p.plan.slots.length} device(s): ${p.plan.slots.map((s) => `${s.bdf} ${s.twin.title}`).join('; ')}`);
  const b = boot(k, initramfs, p.plan.qemu, work, { accel: o.accel, timeoutS: o.timeoutS });
  const raw = parseRaw(b.results);
  if (raw.fatal) throw new GuestError(`the guest stopped: ${raw.fatal}; its console ends:\n${b.console.trim().split('\n').slice(-15).join('\n')}`);
  if (raw.kernel === '?') throw new GuestError(`the executor wrote nothing; the guest console ends:\n${b.console.trim().split('\n').slice(-15).join('\n')}`);
  log(`ran ${raw.scenarios.size} scenario(s) on linux-${raw.kernel} in ${(b.ms / 1000).toFixed(1)} s (boot included)`);
  return { ...compareRun(p, raw, o), kernel: { label: `linux-${raw.kernel}`, source: k.source, faultProbe: raw.faultProbe }, bootMs: b.ms, qemu: b.command };
}

/** The comparison of what the executor reported (`raw`) with the model, scenario by scenario. */
export function compareRun(p: Prepared, raw: RawRun, o: Pick<ConformOptions, 'modelKernel' | 'mutant' | 'expected'>): ConformReport {
  const label = `linux-${raw.kernel}`;
  const used = new Map<string, number>();
  const reports: ScenarioReport[] = p.models.map(({ scn, model }) => {
    const rawSteps = raw.scenarios.get(scn.name) ?? [];
    const byKey = new Map(rawSteps.map((r) => [`${r.thread}[${r.index}]`, r]));
    const cx = { scenario: scn.name, modelKernel: o.modelKernel, realKernel: label, faultProbe: raw.faultProbe, placed: kernelPlaced(scn), expected: o.expected, used };
    const steps = model.steps.map((ms: StepOut) => {
      const key = `${ms.thread}[${ms.index}]`;
      const step = stepAt(scn, ms.thread, ms.index)!;
      const r = byKey.get(key);
      return compareStep(cx, key, step, ms, r ? realStep(r, step) : undefined);
    });
    const all = steps.flatMap((s) => s.differences);
    const flagged = all.filter((d) => d.class === 'flagged').length;
    const slots = p.plan.assign.get(scn.name)!;
    return {
      scenario: scn.name, file: scn.file,
      devices: scn.devices.map((d, i) => ({ name: d.name, twin: slots[i].twin.title, bdf: slots[i].bdf })),
      steps, modelProblems: model.problems, flagged, expected: all.length - flagged,
      unfinished: raw.unfinished.includes(scn.name) || !raw.scenarios.has(scn.name),
    };
  });
  const flagged = reports.reduce((a, r) => a + r.flagged + (r.unfinished ? 1 : 0), 0);
  return {
    kernel: { label, source: 'the executor\'s output', faultProbe: raw.faultProbe }, modelKernel: o.modelKernel, ...(o.mutant ? { mutant: o.mutant } : {}), bootMs: 0, qemu: [], normalized: NORMALIZED,
    scenarios: reports,
    rules: [...used].map(([id, count]) => {
      const e = o.expected.find((x) => x.id === id)!;
      return { id, reason: e.reason.trim(), spec: e.spec, count };
    }),
    unusedRules: o.expected.filter((e) => !used.has(e.id)).map((e) => e.id),
    flagged, expected: reports.reduce((a, r) => a + r.expected, 0), exit: flagged ? 1 : 0,
  };
}

// ---- text ----

function resultText(s: StepOut | null): string {
  if (!s) return 'did not run';
  const r = s.result;
  let t = 'ok' in r ? (r.value !== undefined ? `ok ${s.op === 'load' && typeof r.value === 'number' ? hex(r.value) : r.value}` : 'ok') : 'errno' in r ? r.errno : r.signal;
  if ('signal' in r && s.detail) t += ` ${s.detail.split(' ')[0]}`;
  if ('errno' in r && r.errno === 'EXECUTOR') t = `executor: ${s.detail}`;
  if ('ok' in r && r.out && Object.keys(r.out).length) t += ` ${JSON.stringify(r.out)}`;
  if (s.faults?.length) t += `  faults ${s.faults.map(faultText).join(' ')}`;
  return t;
}

export function formatConform(r: ConformReport): string {
  const L: string[] = [];
  L.push(`vfio-sim conform: ${r.kernel.label} (${r.kernel.source}) vs the model's ${r.modelKernel}${r.mutant ? ` with mutant ${r.mutant}` : ''}`);
  L.push(`${r.scenarios.length} scenario(s) in one boot, ${(r.bootMs / 1000).toFixed(1)} s; fault probe: ${r.kernel.faultProbe ? 'kprobe on vfio_pci_mmap_huge_fault' : 'NONE (faults not compared)'}`);
  L.push('legend: "=" the same on both (the real result; the model\'s beside it where they are equal only once normalized), "~" only listed differences, "!" a flagged difference; faults are order@pgoff->outcome');
  for (const s of r.scenarios) {
    const mark = s.unfinished || s.flagged ? 'DIFFERS' : s.expected ? 'agrees (listed differences only)' : 'agrees';
    L.push('', `${s.scenario} (${s.file}): ${mark}`);
    L.push(`  devices: ${s.devices.map((d) => `${d.name} = ${d.twin} at ${d.bdf}`).join('; ')}`);
    if (s.unfinished) L.push('  ! the executor did not finish this scenario');
    const w = Math.max(...s.steps.map((x) => x.where.length), 5);
    for (const st of s.steps) {
      const m = st.differences.some((d) => d.class === 'flagged') ? '!' : st.differences.length ? '~' : '=';
      const head = `  ${m} ${st.where.padEnd(w)}  ${st.op.padEnd(12)}`;
      if (m === '=') {
        // equal once normalized (an fd number, a kernel-chosen VA): show the model's value too
        const rt = resultText(st.real), mt = resultText(st.model);
        L.push(`${head} ${rt}${rt !== mt ? `   (model: ${mt})` : ''}`);
        continue;
      }
      L.push(`${head} model ${resultText(st.model)}`);
      L.push(`${' '.repeat(head.length)} real  ${resultText(st.real)}`);
      for (const d of st.differences) L.push(`${' '.repeat(head.length)} ${d.class === 'flagged' ? '! FLAGGED' : '~ listed '} ${d.kind} ${d.field}: model ${d.values.model} | real ${d.values.real}${d.rule ? `  [${d.rule}]` : ''}`);
    }
    if (s.modelProblems.length) L.push(`  note: on ${r.modelKernel} the model did not meet ${s.modelProblems.length} expect: line(s): ${s.modelProblems.join('; ')}`);
  }
  L.push('', 'normalized (not differences; see src/conform/compare.ts):');
  for (const [k, v] of Object.entries(r.normalized)) L.push(`  ${k}: ${v}`);
  if (r.rules.length) {
    L.push('', 'listed differences (data/conform-differences.yaml):');
    for (const u of r.rules) L.push(`  ${u.id} (${u.count}): ${u.reason} [${u.spec}]`);
  }
  if (r.unusedRules.length) L.push('', `listed differences not seen in this run: ${r.unusedRules.join(', ')}`);
  const agree = r.scenarios.filter((s) => !s.flagged && !s.unfinished).length;
  L.push('', `${agree} of ${r.scenarios.length} scenario(s) agree; ${r.flagged} flagged difference(s), ${r.expected} listed`);
  return L.join('\n');
}
