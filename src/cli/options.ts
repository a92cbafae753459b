// Options several commands share.
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Option } from 'commander';

/** --devices DIR: the device files in DIR become profiles (main.ts loads them before the command runs). */
export const devicesOpt = () => new Option('--devices <dir>', 'a directory of device files (docs/devices.md): each becomes a profile scenarios can name');

/**
 * Write a file an option asked for (--html, --perfetto) and say so on stderr; a path that cannot be
 * written is the user's input problem: exit 2 with the reason, never a stack trace.
 */
export function writeOutput(flag: string, out: string, text: string, what: string, hint?: string): void {
  try {
    writeFileSync(out, text);
  } catch (e) {
    process.stderr.write(`vfio-sim: ${flag} ${out}: ${(e as Error).message}\n`);
    process.exit(2);
  }
  process.stderr.write(`${what} written to ${out}${hint ? ` (${hint})` : ''}\n`);
}

/** A named scenario file or directory that is not there, or a directory with none in it (exit 2). */
export class ScenarioFilesError extends Error {}

/** The scenario files named: files as given, directories searched (recursively) for *.yaml. */
export function scenarioFiles(args: string[]): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    if (statSync(p).isDirectory()) for (const e of readdirSync(p).sort()) walk(join(p, e));
    else if (p.endsWith('.yaml') || p.endsWith('.yml')) out.push(p);
  };
  for (const a of args) {
    if (!existsSync(a)) throw new ScenarioFilesError(`${a}: no such file or directory`);
    if (statSync(a).isDirectory()) walk(a);
    else out.push(a);
  }
  if (!out.length) throw new ScenarioFilesError(`no scenario files in ${args.join(' ')}`);
  return out;
}
