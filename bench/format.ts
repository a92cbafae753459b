// Plain-text tables and number formatting for the benchmark's report.

export const int = (n: number) => Math.round(n).toLocaleString('en-US');
export const fixed = (n: number, d = 2) => n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
export const mib = (bytes: number) => `${fixed(bytes / 2 ** 20, 1)} MiB`;
export const ms = (x: number) => (x < 10 ? `${fixed(x, 3)} ms` : `${fixed(x, 1)} ms`);
export const rate = (n: number, millis: number) => (millis > 0 ? (n * 1000) / millis : 0);

/** Columns right-aligned unless their header starts with '<'. */
export function table(headers: string[], rows: string[][]): string {
  const left = headers.map((h) => h.startsWith('<'));
  const hs = headers.map((h) => (h.startsWith('<') ? h.slice(1) : h));
  const w = hs.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const cell = (s: string, i: number) => (left[i] ? s.padEnd(w[i]) : s.padStart(w[i]));
  const line = (r: string[]) => `  ${r.map((s, i) => cell(s ?? '', i)).join('  ')}`.trimEnd();
  return [line(hs), `  ${w.map((n) => '-'.repeat(n)).join('  ')}`, ...rows.map(line)].join('\n');
}

export function heading(s: string): string {
  return `\n${s}\n${'='.repeat(s.length)}`;
}
