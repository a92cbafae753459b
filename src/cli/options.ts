// Options several commands share.
import { Option } from 'commander';

/** --devices DIR: the device files in DIR become profiles (main.ts loads them before the command runs). */
export const devicesOpt = () => new Option('--devices <dir>', 'a directory of device files (docs/devices.md): each becomes a profile scenarios can name');
