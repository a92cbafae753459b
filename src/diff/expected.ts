// The reviewed list of expected differences between kernels (data/expected-differences.yaml): each
// entry matches differences by op, kind, field (and optionally step arguments and each kernel's
// value) for a pair of kernels, and gives the reason with a reference. A difference no entry
// matches is flagged.
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, type Node } from 'yaml';
import { z } from 'zod';
import { glob } from '../scenario/glob.ts';

export { glob };

/** What a difference is about; `field` says which part of it. */
export const KINDS = ['result', 'installed', 'maps', 'verdict', 'check', 'faults'] as const;
export type Kind = (typeof KINDS)[number];

/** One or more glob patterns (`*` matches any run of characters, `|` separates alternatives). */
const patterns = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

const entry = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9.-]*$/, 'an id: lower-case letters, digits, . and -'),
    match: z
      .object({
        /** the scenario's name (vfio-sim conform runs many in one report) */
        scenario: patterns.optional(),
        op: patterns.optional(),
        kind: z.union([z.enum(KINDS), z.array(z.enum(KINDS)).min(1)]),
        field: patterns.optional(),
        /**
         * what the step's fd or address refers to, traced through the scenario's `as:` names:
         * device-fd, dmabuf-fd (exported by the DMA_BUF feature), device-mapping, dmabuf-mapping
         */
        target: patterns.optional(),
        /** step arguments as written in the scenario (e.g. feature: DMA_BUF_REVOKE), compared as text */
        args: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
        /** per kernel pattern (one of `kernels`): the value that kernel shows, as glob patterns */
        values: z.record(z.string(), patterns).optional(),
      })
      .strict(),
    /** the two kernels (glob patterns) the entry is about; it applies to a diff of them in either order */
    kernels: z.tuple([z.string().min(1), z.string().min(1)]),
    reason: z.string().min(10),
    /** where it is documented: a docs/ page, a patch with its thread's Message-ID, or a lab commit */
    spec: z.string().regex(/(spec\/(series|mainline)\.md|DESIGN\.md|notes\/[\w.-]+\.md) §|docs\/[\w.-]+\.md|Message-ID \S+@\S+|opsound\/linux [0-9a-f]{8}/, 'a reference such as "docs/kernels.md", "Message-ID <id>" or "opsound/linux <commit>"'),
  })
  .strict()
  .superRefine((e, ctx) => {
    for (const k of Object.keys(e.match.values ?? {}))
      if (!e.kernels.includes(k)) ctx.addIssue({ code: 'custom', path: ['match', 'values', k], message: `"${k}" is not one of this entry's kernels (${e.kernels.join(', ')})` });
  });

const file = z.object({ differences: z.array(entry) }).strict();

export type ExpectedEntry = z.infer<typeof entry>;

export class ExpectedDataError extends Error {}

/** Load and validate the data file; every error names the file, line and field. */
export function loadExpected(path: string): ExpectedEntry[] {
  let src: string;
  try {
    src = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ExpectedDataError(`${path}: cannot read: ${(e as Error).message}`);
  }
  return parseExpected(src, path);
}

export function parseExpected(src: string, path = '<expected-differences>'): ExpectedEntry[] {
  const lc = new LineCounter();
  const doc = parseDocument(src, { lineCounter: lc, uniqueKeys: true });
  if (doc.errors.length) throw new ExpectedDataError(`${path}:${lc.linePos(doc.errors[0].pos[0]).line}: YAML: ${doc.errors[0].message.split('\n')[0]}`);
  const r = file.safeParse(doc.toJS());
  if (!r.success) {
    const iss = r.error.issues[0];
    const where = iss.path.map((x) => (typeof x === 'symbol' ? String(x) : x));
    let line: number | null = null;
    for (let n = where.length; n >= 0 && line === null; n--) {
      const node = doc.getIn(where.slice(0, n), true) as Node | undefined;
      if (node?.range) line = lc.linePos(node.range[0]).line;
    }
    throw new ExpectedDataError(`${path}${line ? `:${line}` : ''}: ${where.join('.')}: ${iss.message}`);
  }
  const ids = new Set<string>();
  for (const e of r.data.differences) {
    if (ids.has(e.id)) throw new ExpectedDataError(`${path}: entry id ${e.id} is used twice`);
    ids.add(e.id);
  }
  return r.data.differences;
}

const anyOf = (p: string | string[] | undefined, s: string) => p === undefined || (Array.isArray(p) ? p : [p]).some((x) => glob(x, s));

/** The facts about one difference that an entry can match. */
export interface Matchable {
  scenario?: string;
  op: string;
  kind: Kind;
  field: string;
  args: Record<string, unknown>;
  target?: string;
  /** kernel name -> the value it shows */
  values: Record<string, string>;
}

/**
 * Does the entry cover this difference between kernels a and b? The entry's two kernel patterns
 * are assigned to a and b in either order; `values` then constrains what each kernel shows.
 */
export function matches(e: ExpectedEntry, d: Matchable, a: string, b: string): boolean {
  const m = e.match;
  if (m.scenario !== undefined && (d.scenario === undefined || !anyOf(m.scenario, d.scenario))) return false;
  if (!anyOf(m.op, d.op) || !(Array.isArray(m.kind) ? m.kind : [m.kind]).includes(d.kind) || !anyOf(m.field, d.field)) return false;
  if (m.target !== undefined && (d.target === undefined || !anyOf(m.target, d.target))) return false;
  for (const [k, v] of Object.entries(m.args ?? {})) if (d.args[k] === undefined || String(d.args[k]) !== String(v)) return false;
  const [p, q] = e.kernels;
  const fits = (pk: string, kn: string) => glob(pk, kn) && anyOf(m.values?.[pk], d.values[kn] ?? '');
  return (fits(p, a) && fits(q, b)) || (fits(p, b) && fits(q, a));
}

export function classify(entries: ExpectedEntry[], d: Matchable, a: string, b: string): ExpectedEntry | null {
  return entries.find((e) => matches(e, d, a, b)) ?? null;
}
