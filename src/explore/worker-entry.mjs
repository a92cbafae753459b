// A worker thread's entry. Built (dist/): the compiled worker beside this file. From the sources
// (a clone, tests): worker threads do not inherit the TypeScript loader, so register tsx first.
import { existsSync } from 'node:fs';

const built = new URL('./worker.js', import.meta.url);
if (existsSync(built)) await import(built.href);
else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./worker.ts');
}
