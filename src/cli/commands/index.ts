/**
 * The snapctl command registry. Every subcommand is one file in this folder exporting `command: Command`;
 * snapctl dispatches on the longest matching name, so `volume create` and `volume` can both exist.
 *
 * To add a command: one line in COMMANDS below, `require('./<file>').command`. The require is lazy-looking but
 * runs at startup; it keeps each addition to a single line so eight people editing this file do not collide.
 */
import type { Command } from '../command';

interface CommandModule {
  command: Command;
}

const load = (m: CommandModule): Command => m.command;

export function commands(): Command[] {
  return [
    // core (snapctl owner)
    load(require('./ls') as CommandModule),
    load(require('./tree') as CommandModule),
    load(require('./info') as CommandModule),
    load(require('./mounts') as CommandModule),
    load(require('./usage') as CommandModule),
    load(require('./prepare') as CommandModule),
    load(require('./view') as CommandModule),
    load(require('./commit') as CommandModule),
    load(require('./rm') as CommandModule),
    load(require('./label') as CommandModule),
    load(require('./cleanup') as CommandModule),
    load(require('./mount') as CommandModule),
    load(require('./umount') as CommandModule),
    load(require('./status') as CommandModule),
    load(require('./volume-create') as CommandModule),
    load(require('./volume-ls') as CommandModule),
    load(require('./volume-inspect') as CommandModule),
    load(require('./volume-path') as CommandModule),
    load(require('./volume-snapshot') as CommandModule),
    load(require('./volume-clone') as CommandModule),
    load(require('./volume-rm') as CommandModule),
    load(require('./volume-usage') as CommandModule),
    // other areas: one line each, e.g. load(require('./apply') as CommandModule),
  ];
}
