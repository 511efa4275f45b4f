/**
 * snapctl mount KEY DIR / umount DIR: perform a snapshot's mounts here, as root, the way containerd would
 * (src/core/mount.ts is containerd's mount.All), for debugging what a container would see.
 */
import * as fs from 'node:fs';
import { mountAll, unmountAll } from '../../core/mount';
import type { Command } from '../command';
import { json, wantsJson } from '../format';
import { parse, withClients } from './common';

export const command: Command = {
  name: ['mount'],
  summary: 'mount an active or view snapshot on a directory (as root, like containerd would)',
  usage: `snapctl mount KEY DIR [--json]
  DIR must exist. Undo with 'snapctl umount DIR'.`,
  async run(argv, io) {
    const { positionals } = parse(argv, {}, { min: 2, max: 2 });
    const [key, dir] = positionals as [string, string];
    if (!fs.statSync(dir).isDirectory()) throw new Error(`${dir} is not a directory`);
    const mounts = await withClients(io, (c) => c.snapshots.mounts(key));
    await mountAll(mounts, dir);
    io.stdout.write(wantsJson(io) ? json({ key, target: dir, mounts }) : `${key} mounted on ${dir}\n`);
    return 0;
  },
};

export const umountCommand: Command = {
  name: ['umount'],
  summary: 'unmount everything snapctl mount stacked on a directory',
  usage: 'snapctl umount DIR [--json]',
  async run(argv, io) {
    const { positionals } = parse(argv, {}, { min: 1, max: 1 });
    const dir = positionals[0]!;
    await unmountAll(dir);
    io.stdout.write(wantsJson(io) ? json({ target: dir }) : `${dir} unmounted\n`);
    return 0;
  },
};
