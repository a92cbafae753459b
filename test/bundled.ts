// The bundled scenarios (scenarios/**/*.yaml), in a stable order, for the tests that go over all.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export function bundledScenarios(dir = 'scenarios'): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir).sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...bundledScenarios(p));
    else if (e.endsWith('.yaml')) out.push(p);
  }
  return out;
}
