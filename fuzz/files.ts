// Scenario-file fuzzing: bundled scenarios mutated (fields deleted, duplicated or retyped, huge and
// negative numbers, deep nesting, unknown operations, anchors and aliases, truncation, random bytes)
// and run through the loader and the runner. Properties: a file is either refused with a
// ScenarioError (file, line, field: what the CLI prints with exit 2) or runs to a result; nothing
// else is thrown; no file takes more than a few seconds.
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { bundledScenarios } from '../test/bundled.ts';
import { parseScenario, ScenarioError } from '../src/scenario/loader.ts';
import { runScenario } from '../src/scenario/report.ts';

type Mutation =
  | { k: 'delete' | 'retype' | 'duplicate'; path: number; value: unknown }
  | { k: 'nest'; path: number; depth: number }
  | { k: 'op'; path: number; name: string }
  | { k: 'truncate'; at: number }
  | { k: 'bytes'; at: number; bytes: string }
  | { k: 'alias'; at: number };

const weird = fc.oneof(
  fc.constantFrom(-1, 0, 2 ** 31, 2 ** 53, 1e300, -1e300, Number.NaN, '0x' + 'f'.repeat(40), '1e9', '', 'dev-2', '__proto__', 'constructor', null, true, [], {}),
  fc.integer(),
  fc.string({ maxLength: 12 }),
);
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ k: fc.constantFrom('delete' as const, 'retype' as const, 'duplicate' as const), path: fc.nat(), value: weird }),
  fc.record({ k: fc.constant('nest' as const), path: fc.nat(), depth: fc.integer({ min: 1, max: 2000 }) }),
  fc.record({ k: fc.constant('op' as const), path: fc.nat(), name: fc.constantFrom('__proto__', 'toString', 'hasOwnProperty', 'mmapp', 'x y', '') }),
  fc.record({ k: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ k: fc.constant('bytes' as const), at: fc.nat(), bytes: fc.string({ minLength: 1, maxLength: 8 }) }),
  fc.record({ k: fc.constant('alias' as const), at: fc.nat() }),
);

/** Every container (object or array) in a parsed document, with how to reach it. */
function containers(root: unknown): Array<Record<string, unknown> | unknown[]> {
  const out: Array<Record<string, unknown> | unknown[]> = [];
  const go = (v: unknown) => {
    if (v && typeof v === 'object') {
      out.push(v as Record<string, unknown>);
      for (const x of Object.values(v)) go(x);
    }
  };
  go(root);
  return out;
}

export function mutate(text: string, ms: Mutation[]): string {
  let doc: unknown;
  try {
    doc = parse(text, { intAsBigInt: true });
  } catch {
    return text;
  }
  let out = text;
  for (const m of ms) {
    if (m.k === 'truncate') {
      out = out.slice(0, m.at % (out.length + 1));
      continue;
    }
    if (m.k === 'bytes') {
      const i = m.at % (out.length + 1);
      out = out.slice(0, i) + m.bytes + out.slice(i);
      continue;
    }
    if (m.k === 'alias') {
      // an alias with no anchor, or an alias bomb
      out += m.at % 2 ? '\nextra: *nowhere\n' : `\nbomb0: &b0 [x, x, x, x, x, x, x, x]\n${[1, 2, 3, 4, 5, 6].map((i) => `bomb${i}: &b${i} [${Array(8).fill(`*b${i - 1}`).join(', ')}]`).join('\n')}\n`;
      continue;
    }
    const cs = containers(doc);
    if (!cs.length) continue;
    const c = cs[m.path % cs.length];
    const keys = Object.keys(c);
    if (m.k === 'op' && Array.isArray(c) && c.length && c[0] && typeof c[0] === 'object') {
      const step = c[m.path % c.length] as Record<string, unknown>;
      const [k] = Object.keys(step);
      if (k !== undefined) {
        const v = step[k];
        delete step[k];
        step[m.name] = v;
      }
      continue;
    }
    if (!keys.length) continue;
    const key = keys[m.path % keys.length];
    const rec = c as Record<string, unknown>;
    if (m.k === 'delete') {
      if (Array.isArray(c)) c.splice(Number(key), 1);
      else delete rec[key];
    } else if (m.k === 'retype') rec[key] = m.value;
    else if (m.k === 'duplicate') {
      if (Array.isArray(c)) c.push(structuredClone(c[Number(key)]));
      else rec[`${key}`] = structuredClone(rec[key]);
    } else if (m.k === 'nest') {
      let v: unknown = rec[key];
      for (let i = 0; i < m.depth; i++) v = [v];
      rec[key] = v;
    }
    try {
      out = stringify(doc, { aliasDuplicateObjects: false });
    } catch {
      // unstringifiable (NaN in a key, ...): keep the text as it was
    }
  }
  return out;
}

export function fuzzFiles(o: { files: number; seed: number; out: (s: string) => void }): { files: number; invalid: number; ran: number; slowestMs: number; ms: number } {
  const sources = bundledScenarios().map((f) => ({ f, text: readFileSync(f, 'utf8') }));
  let files = 0, invalid = 0, ran = 0, slowestMs = 0;
  const t0 = performance.now();
  fc.assert(
    fc.property(fc.nat(sources.length - 1), fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (i, ms) => {
      const text = mutate(sources[i].text, ms);
      const t = performance.now();
      try {
        const scn = parseScenario(text, `fuzzed-${sources[i].f}`);
        runScenario(scn, {});
        ran++;
      } catch (e) {
        if (!(e instanceof ScenarioError)) throw new Error(`${sources[i].f} mutated by ${JSON.stringify(ms)}: ${(e as Error).stack?.split('\n').slice(0, 3).join(' / ')}`);
        if (!e.file || e.line === null) throw new Error(`${sources[i].f} mutated by ${JSON.stringify(ms)}: an error without a file or line: ${e.message}`);
        invalid++;
      }
      const dt = performance.now() - t;
      slowestMs = Math.max(slowestMs, dt);
      if (dt > 5000) throw new Error(`${sources[i].f} mutated by ${JSON.stringify(ms)} took ${(dt / 1000).toFixed(1)} s`);
      files++;
    }),
    { numRuns: o.files, seed: o.seed, endOnFailure: false },
  );
  return { files, invalid, ran, slowestMs, ms: performance.now() - t0 };
}
