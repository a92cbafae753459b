// Options several commands share.
import { writeFileSync } from 'node:fs';
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
