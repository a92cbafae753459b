// One JSON shape for every --json document: keys in snake_case (the uAPI's own case), 64-bit values
// as 0x-hex strings (the producers write u64s that way; a bigint left anywhere prints as hex too).
// Objects keyed by data rather than by field name are left as they are.

/** Fields whose object value is keyed by data: uAPI field names, kernels, processes, Kconfig symbols. */
const DATA_KEYED = new Set(['out', 'per', 'values', 'maps', 'expectations', 'config']);
const CAMEL = /^[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+$/;

const toSnake = (k: string) => (CAMEL.test(k) ? k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) : k);
const toCamel = (k: string) => k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function rekey(v: unknown, f: (k: string) => string, dataKeyed = false): unknown {
  if (typeof v === 'bigint') return `0x${BigInt.asUintN(64, v).toString(16)}`;
  if (Array.isArray(v)) return v.map((x) => rekey(x, f));
  if (!v || typeof v !== 'object' || v instanceof Uint8Array) return v;
  // toJSON first (Maps and class instances print what they choose)
  const o = typeof (v as { toJSON?: unknown }).toJSON === 'function' ? (v as { toJSON(): unknown }).toJSON() : v;
  if (!o || typeof o !== 'object' || Array.isArray(o)) return rekey(o, f);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o)) {
    if (x === undefined || typeof x === 'function') continue;
    out[dataKeyed ? k : f(k)] = rekey(x, f, !dataKeyed && DATA_KEYED.has(k));
  }
  return out;
}

/** A document as --json prints it. */
export const snakeKeys = (doc: unknown): unknown => rekey(doc, toSnake);
/** Back from what --json printed to the model's own names (merge reading shard documents). */
export const camelKeys = <T>(doc: unknown): T => rekey(doc, toCamel) as T;

export function printJson(doc: unknown): void {
  process.stdout.write(JSON.stringify(snakeKeys(doc), null, 2) + '\n');
}
