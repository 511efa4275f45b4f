/** snapctl mounts KEY: the mounts containerd would perform, as a table and as mount(8) commands. */
import type { Mount } from '../../core/types';
import type { Command } from '../command';
import { json, shellQuote, table, wantsJson } from '../format';
import { parse, withClients } from './common';

/**
 * mount(8) command lines that do what containerd does with these mounts. A bind mount has no filesystem type
 * for mount(8) (`-t bind` is not one), so its type is left out and "bind"/"rbind" stays in the options.
 */
export function shellCommands(mounts: readonly Mount[], target: string): string {
  return mounts
    .map((m) => {
      const words = ['mount'];
      if (m.type !== 'bind' && m.type !== 'rbind') words.push('-t', m.type);
      const opts = m.type === 'bind' && !m.options.some((o) => o === 'bind' || o === 'rbind') ? ['bind', ...m.options] : m.options;
      if (opts.length) words.push('-o', opts.join(','));
      words.push(m.source, target);
      return words.map(shellQuote).join(' ') + '\n';
    })
    .join('');
}

export function mountsTable(mounts: readonly Mount[]): string {
  return table(['TYPE', 'SOURCE', 'OPTIONS'], mounts.map((m) => [m.type, m.source, m.options.join(',')]));
}

export const command: Command = {
  name: ['mounts'],
  summary: 'show the mounts of an active or view snapshot (also as mount(8) commands)',
  usage: `snapctl mounts KEY [--shell] [--target DIR] [--json]
  --shell prints only the mount(8) commands, with DIR (default /mnt) as the target.`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { shell: { type: 'boolean' }, target: { type: 'string', short: 't' } }, { min: 1, max: 1 });
    const mounts = await withClients(io, (c) => c.snapshots.mounts(positionals[0]!));
    const shell = shellCommands(mounts, values.target ?? '/mnt');
    if (wantsJson(io)) io.stdout.write(json(mounts));
    else if (values.shell) io.stdout.write(shell);
    else io.stdout.write(`${mountsTable(mounts)}\n# to mount it by hand:\n${shell}`);
    return 0;
  },
};
