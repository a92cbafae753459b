// Numbers and references in scenarios: decimal, 0x-hex, size suffixes (B, KiB, MiB, GiB, TiB, or
// K/M/G/T), names bound by `as:` with an optional field (`r1.offset`), and sums of them
// (`r1.offset + 2MiB`). Everything is a bigint so u64 values survive.

const UNITS: Record<string, bigint> = {
  b: 1n, k: 1n << 10n, kib: 1n << 10n, m: 1n << 20n, mib: 1n << 20n, g: 1n << 30n, gib: 1n << 30n, t: 1n << 40n, tib: 1n << 40n,
};

export interface Term {
  sign: 1n | -1n;
  lit?: bigint;
  ref?: string;
  field?: string;
}
export type Expr = readonly Term[];

export class ValueError extends Error {}

/** Parse one literal: 12, 0x1000, 2MiB, 16 KiB, 1G. */
export function parseLiteral(s: string): bigint | null {
  const m = /^\s*(0x[0-9a-f_]+|0b[01_]+|0o[0-7_]+|[0-9][0-9_]*)\s*([a-z]*)\s*$/i.exec(s);
  if (!m) return null;
  const base = BigInt(m[1].replaceAll('_', ''));
  if (!m[2]) return base;
  const u = UNITS[m[2].toLowerCase()];
  return u === undefined ? null : base * u;
}

/** A number, a numeric string, or an expression with references. */
export function parseExpr(v: unknown): Expr {
  if (typeof v === 'bigint') return [{ sign: 1n, lit: v }];
  let out = PARSED.get(v as number | string);
  if (out) return out;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new ValueError(`${v} is not an integer`);
    out = [{ sign: 1n, lit: BigInt(v) }];
  } else if (typeof v === 'string') out = parseString(v);
  else throw new ValueError(`expected a number or a name, got ${JSON.stringify(v)}`);
  out = Object.freeze(out.map((t) => Object.freeze(t)));
  if (PARSED.size < 4096) PARSED.set(v, out);
  return out;
}

/** What numbers and strings parsed to: an operation resolves its arguments each time it runs (in a search, millions of times). */
const PARSED = new Map<number | string, Expr>();

function parseString(v: string): Expr {
  const out: Term[] = [];
  const parts = v.split(/\s*([+-])\s*/);
  let sign: 1n | -1n = 1n;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i].trim();
    if (i % 2 === 1) {
      sign = p === '-' ? -1n : 1n;
      continue;
    }
    if (p === '') {
      if (i === 0 && parts.length > 1) continue; // leading sign
      throw new ValueError(`"${v}": missing operand`);
    }
    const lit = parseLiteral(p);
    if (lit !== null) out.push({ sign, lit });
    else if (/^[A-Za-z_][\w-]*(\.[A-Za-z_]\w*)?$/.test(p)) {
      const [ref, field] = p.split('.');
      out.push({ sign, ref, field });
    } else throw new ValueError(`"${v}": "${p}" is neither a number (decimal, 0x-hex, size like 2MiB) nor a name`);
  }
  return out;
}

export function literal(v: unknown, what: string): bigint {
  const e = parseExpr(v);
  if (e.some((t) => t.ref !== undefined)) throw new ValueError(`${what}: a number is needed here, not a name`);
  return e.reduce((a, t) => a + t.sign * t.lit!, 0n);
}

export function refsOf(e: Expr): string[] {
  return e.filter((t) => t.ref !== undefined).map((t) => t.ref!);
}

/** Hex for u64-typed results, as the JSON output wants (README, "The command"). */
export const hex = (v: bigint | number) => `0x${BigInt.asUintN(64, BigInt(v)).toString(16)}`;
