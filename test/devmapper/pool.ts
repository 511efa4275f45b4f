/**
 * Thin pools for tests: a root whose driver makes its own loopback pool (what the shared suites use), and an
 * external pool made here the way an operator would (for `pool = "name"`). Teardown removes every thin device,
 * the pool and the loop devices, also after a failed test or a killed daemon.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { namePrefix } from '../../drivers/devmapper/driver';
import { run } from '../../drivers/devmapper/exec';
import { destroyOwnedPool, listDmNames, Pool } from '../../drivers/devmapper/pool';
import type { DriverTable } from '../helpers/daemon';

/** Inside ../shared/dm-vm (dm-thin available); the lane script sets DM_VM=1. */
export function dmMissing(): string | undefined {
  if (process.env.DM_VM !== '1') return 'devicemapper runs inside the dm VM lane (scripts/dm-lane.sh): this kernel has no dm-thin';
  if (!fs.existsSync('/dev/mapper/control')) return 'no /dev/mapper/control';
  return undefined;
}

export interface OwnedRoot {
  root: string;
  config: DriverTable;
  teardown(): Promise<void>;
}

/** A fresh root for a daemon whose devmapper driver makes its pool in <root>/devmapper. */
export function ownedRoot(config: DriverTable = {}, tag = 'dm'): OwnedRoot {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `strata-${tag}-`)));
  const cfg: DriverTable = { data_size: '2G', metadata_size: '64M', base_size: '256M', fs: process.env.STRATA_DM_FS ?? 'ext4', ...config };
  return {
    root,
    config: cfg,
    async teardown() {
      const prefix = namePrefix(root);
      await unmountBelow(root);
      await destroyOwnedPool(new Pool(`${prefix}pool`), path.join(root, 'devmapper'), prefix);
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Unmounts everything mounted below dir, deepest first (a killed daemon's apply mounts). */
export async function unmountBelow(dir: string): Promise<void> {
  const mps = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
  for (const m of mps) await run('umount', ['-l', m]).catch(() => undefined);
}

export interface ExternalPool {
  name: string;
  dir: string;
  cleanup(): Promise<void>;
}

/** A pool on two loop devices, made with losetup and dmsetup like an operator would. */
export async function externalPool(tag: string, dataMiB = 1024, metaMiB = 32): Promise<ExternalPool> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `strata-xpool-${tag}-`));
  const name = `stratat-${tag}-${process.pid}`;
  const data = path.join(dir, 'data');
  const meta = path.join(dir, 'metadata');
  fs.writeFileSync(meta, '');
  fs.truncateSync(meta, metaMiB << 20);
  fs.writeFileSync(data, '');
  fs.truncateSync(data, dataMiB << 20);
  const metaDev = (await run('losetup', ['--find', '--show', meta])).trim();
  const dataDev = (await run('losetup', ['--find', '--show', data])).trim();
  const sectors = (dataMiB << 20) / 512;
  await run('dmsetup', ['create', name, '--table', `0 ${sectors} thin-pool ${metaDev} ${dataDev} 128 1024 1 error_if_no_space`]);
  return {
    name,
    dir,
    async cleanup() {
      for (const n of await listDmNames()) if (n.startsWith('strata-') && n !== name) await removeIfOnPool(n, name);
      await run('dmsetup', ['remove', '--retry', name]).catch(() => undefined);
      await run('losetup', ['-d', metaDev]).catch(() => undefined);
      await run('losetup', ['-d', dataDev]).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Removes a thin device when its table points at pool (other tests' devices on other pools stay). */
async function removeIfOnPool(dev: string, pool: string): Promise<void> {
  const table = await run('dmsetup', ['table', dev]).catch(() => '');
  const poolDev = await run('dmsetup', ['info', '-c', '--noheadings', '-o', 'major,minor', pool]).catch(() => '');
  const [maj, min] = poolDev.trim().split(':');
  if (table.includes(` thin ${maj}:${min} `)) await run('dmsetup', ['remove', '--retry', dev]).catch(() => undefined);
}
