// The end state of one execution as a canonical string: what user space saw (every operation's
// result), the machine state the scenario can observe (page tables, buffers, devices, fds, config
// space, the bytes of device memory written), and the invariant findings. Two executions with the
// same fingerprint are indistinguishable to the scenario and to the checker; the soundness tests
// compare the sets of fingerprints a reduced exploration and naive enumeration reach.
import { finalState } from '../scenario/runner.ts';
import type { Execution } from './execution.ts';

export function finalFingerprint(ex: Execution): string {
  const run = ex.run, k = run.k;
  const results = run.steps.map((s) => `${s.thread}[${s.index}]=${JSON.stringify(s.result)}`).sort();
  const memory: string[] = [];
  for (const [pfn, page] of [...k.pci.mem.pages].sort((a, b) => a[0] - b[0])) {
    const bytes: string[] = [];
    page.forEach((b, i) => b && bytes.push(`${i.toString(16)}:${b.toString(16)}`));
    if (bytes.length) memory.push(`${pfn.toString(16)}{${bytes.join(',')}}`);
  }
  const cfg = k.pci.devs.map((d) => `${d.name}:${Buffer.from(d.cfg).toString('hex')}:${d.power}:${d.inReset}`);
  const violations = [...new Set(k.violations.map((v) => `${v.invariant}: ${v.message}`))].sort();
  return JSON.stringify({ results, final: finalState(run), memory, cfg, violations });
}

/** The invariants an execution broke (its failure first), for comparing verdicts across modes. */
export function violationsOf(ex: Execution): string[] {
  return [...new Set(ex.run.k.violations.map((v) => v.invariant))].sort();
}
