#!/usr/bin/env node
// From a clone (src/ present, tsx installed as a dev dependency): the TypeScript sources through
// tsx, so there is no build step between an edit and a run. From the installed package: dist/.
import { existsSync } from 'node:fs';

const src = new URL('../src/cli/main.ts', import.meta.url);
let main;
if (existsSync(src)) {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import(src.href));
} else ({ main } = await import(new URL('../dist/cli/main.js', import.meta.url).href));
main(process.argv);
