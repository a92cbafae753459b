// Glob patterns for the data files and declarations: `*` matches any run of characters, `|`
// separates alternatives; everything else is literal.
const globCache = new Map<string, RegExp>();
export function glob(pattern: string, s: string): boolean {
  let re = globCache.get(pattern);
  if (!re) {
    const alt = (a: string) => a.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*');
    globCache.set(pattern, (re = new RegExp(`^(?:${pattern.split('|').map(alt).join('|')})$`, 's')));
  }
  return re.test(s);
}
