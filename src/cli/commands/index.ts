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
    // other areas: one line each, e.g. load(require('./apply') as CommandModule),
  ];
}
