/**
 * The snapctl command registry. Every subcommand is one file in this folder exporting `command: Command`;
 * snapctl dispatches on the longest matching name, so `volume create` and `volume` can both exist.
 *
 * To add a command: one line in MODULES below, './<file>'. Modules are required by name so that one command
 * whose file is missing from a build (several areas land commands independently) cannot take the whole CLI
 * down: it is left out, and STRATA_DEBUG=1 says so. Any other load error is a bug and propagates.
 */
import * as path from 'node:path';
import type { Command } from '../command';

interface CommandModule {
  command: Command;
}

const MODULES: readonly string[] = [
  // core (snapctl owner)
  './ls',
  './tree',
  './info',
  './mounts',
  './usage',
  './prepare',
  './view',
  './commit',
  './rm',
  './label',
  './cleanup',
  './mount',
  './umount',
  './status',
  // other areas: one line each
  './apply',
  './unpack',
  './import',
  './diff',
  './volume-create',
  './volume-ls',
  './volume-inspect',
  './volume-path',
  './volume-snapshot',
  './volume-clone',
  './volume-rm',
  './volume-usage',
];

function isMissing(e: unknown, file: string): boolean {
  const err = e as { code?: unknown; message?: unknown };
  return err.code === 'MODULE_NOT_FOUND' && typeof err.message === 'string' && err.message.includes(`'${file}'`);
}

function load(m: string): Command | undefined {
  try {
    return (require(m) as CommandModule).command;
  } catch (e) {
    if (!isMissing(e, m)) throw e;
    if (process.env.STRATA_DEBUG) process.stderr.write(`snapctl: command module ${path.join(__dirname, m)} is missing; left out\n`);
    return undefined;
  }
}

export function commands(): Command[] {
  return MODULES.map(load).filter((c): c is Command => c !== undefined);
}

/**
 * The command the words start with, loading only its module: a module is named after its command's words
 * joined by '-', longest first as in the full lookup. Undefined when none matches (help, unknown words: the
 * caller loads them all). One module instead of all keeps `snapctl apply` from loading gRPC it never uses.
 */
export function commandFor(words: readonly string[]): Command | undefined {
  for (let n = words.length; n > 0; n--) {
    const m = `./${words.slice(0, n).join('-')}`;
    if (!MODULES.includes(m)) continue;
    const c = load(m);
    if (c && c.name.length === n && c.name.every((w, i) => words[i] === w)) return c;
  }
  return undefined;
}
