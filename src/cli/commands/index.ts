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

export function commands(): Command[] {
  const out: Command[] = [];
  for (const m of MODULES) {
    try {
      out.push((require(m) as CommandModule).command);
    } catch (e) {
      if (!isMissing(e, m)) throw e;
      if (process.env.STRATA_DEBUG) process.stderr.write(`snapctl: command module ${path.join(__dirname, m)} is missing; left out\n`);
    }
  }
  return out;
}
