// The bundled scenarios (scenarios/**/*.yaml), in a stable order, for the tests that go over all.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository, and its command line. */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BIN = join(ROOT, 'bin', 'vfio-sim.js');
/** Run the command line from the repository, as a user would: its exit status and output. */
export const cli = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8' });

export function bundledScenarios(dir = 'scenarios'): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir).sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...bundledScenarios(p));
    else if (e.endsWith('.yaml')) out.push(p);
  }
  return out;
}

/**
 * Run a scenario given as the steps of one thread `main` on one h100 `gpu0` (or a whole document
 * when it starts with "name:"), with run's round-robin: its problems and violations.
 */
export async function runSteps(steps: string, head = 'name: t\ndevices:\n  - { name: gpu0, profile: h100 }\nthreads:\n  main:\n') {
  const { parseScenario } = await import('../src/scenario/loader.ts');
  const { runScenario } = await import('../src/scenario/report.ts');
  return runScenario(parseScenario(steps.startsWith('name:') ? steps : head + steps, 'inline.yaml'), {}).result;
}

/**
 * A race on one h100 `gpu0` opened as `dev`, with `length` of BAR0 mapped at `m` (`at`: a fixed
 * address), then `setup` steps and the `threads` (YAML lines at thread-name indent), parsed.
 */
export async function mappedRace(length: string, setup: string[], threads: string[], at?: string) {
  const { parseScenario } = await import('../src/scenario/loader.ts');
  const fixed = at ? ` addr: ${at}, flags: [shared, fixed],` : '';
  const lines = ['name: race', 'devices:', '  - { name: gpu0, profile: h100 }', 'setup:', '  - open: { path: /dev/vfio/devices/gpu0, as: dev }', `  - mmap: { fd: dev, offset: 0, length: ${length},${fixed} as: m }`, ...setup.map((s) => `  - ${s}`), 'threads:', ...threads.map((t) => `  ${t}`)];
  return parseScenario(lines.join('\n') + '\n', 'race.yaml');
}
