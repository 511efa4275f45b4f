/**
 * Performs the mounts a snapshotter returns the way containerd does, through mount(8) so the test does not
 * share code with the daemon it checks. Like containerd, an overlay whose options exceed a page is mounted from
 * the layers' common directory with relative paths (the kernel reads mount data as one page).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Mount } from '../../src/core/types';
import { mountsBelow } from '../helpers/daemon';

export function run(file: string, args: string[], cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')}${cwd ? ` (in ${cwd})` : ''}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

const PATH_KEYS = new Set(['lowerdir', 'lowerdir+', 'datadir+', 'upperdir', 'workdir']);
const PAGE_BUDGET = 4000;

function commonDir(paths: string[]): string {
  let common = path.dirname(paths[0]).split('/');
  for (const p of paths.slice(1)) {
    const parts = path.dirname(p).split('/');
    let i = 0;
    while (i < common.length && i < parts.length && common[i] === parts[i]) i++;
    common = common.slice(0, i);
  }
  return common.join('/') || '/';
}

/** Overlay options rewritten relative to the layers' common directory when they do not fit in a page. */
export function compactOverlayOptions(options: string[]): { options: string[]; cwd?: string } {
  if (options.join(',').length < PAGE_BUDGET) return { options };
  const all: string[] = [];
  for (const o of options) {
    const eq = o.indexOf('=');
    if (eq > 0 && PATH_KEYS.has(o.slice(0, eq))) all.push(...o.slice(eq + 1).split(':').filter((p) => p.startsWith('/')));
  }
  if (all.length === 0) return { options };
  const cwd = commonDir(all);
  const rel = (p: string): string => (p.startsWith('/') ? path.relative(cwd, p) || '.' : p);
  const out = options.map((o) => {
    const eq = o.indexOf('=');
    if (eq <= 0 || !PATH_KEYS.has(o.slice(0, eq))) return o;
    return `${o.slice(0, eq)}=${o.slice(eq + 1).split(':').map(rel).join(':')}`;
  });
  return { options: out, cwd };
}

async function mountOne(m: Mount, target: string): Promise<void> {
  if (m.type === 'bind' || m.options.includes('bind') || m.options.includes('rbind')) {
    const opts = m.options.includes('bind') || m.options.includes('rbind') ? m.options : ['bind', ...m.options];
    // util-linux applies "ro" to a bind mount with a remount, as containerd does.
    await run('mount', ['-o', opts.join(','), m.source, target]);
    return;
  }
  const { options, cwd } = m.type === 'overlay' ? compactOverlayOptions(m.options) : { options: m.options, cwd: undefined };
  await run('mount', ['-t', m.type, ...(options.length ? ['-o', options.join(',')] : []), m.source, target], cwd);
}

/** Mounts every entry onto target in order (containerd's mount.All). */
export async function mountAll(mounts: Mount[], target: string): Promise<void> {
  if (mounts.length === 0) throw new Error('the snapshotter returned no mounts');
  const done: number[] = [];
  try {
    for (const m of mounts) {
      await mountOne(m, target);
      done.push(1);
    }
  } catch (e) {
    for (let i = 0; i < done.length; i++) await unmount(target).catch(() => undefined);
    throw new Error(`mounting ${JSON.stringify(mounts)} at ${target}: ${(e as Error).message}`);
  }
}

/** Unmounts target (every layer stacked on it); lazily when it stays busy. */
export async function unmount(target: string): Promise<void> {
  for (let attempt = 0; mountsBelow(target).includes(target); attempt++) {
    try {
      await run('umount', [target]);
    } catch (e) {
      if (attempt < 5 && /busy/i.test((e as Error).message)) {
        await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
        continue;
      }
      if (attempt >= 5) {
        await run('umount', ['-l', target]);
        continue;
      }
      throw e;
    }
  }
}

let seq = 0;

/** Mounts into a fresh directory below workDir, runs fn on it, always unmounts and removes the directory. */
export async function withMounted<T>(mounts: Mount[], workDir: string, fn: (dir: string) => Promise<T> | T): Promise<T> {
  const target = path.join(workDir, `m${process.pid}-${++seq}`);
  fs.mkdirSync(target, { recursive: true });
  try {
    await mountAll(mounts, target);
    try {
      return await fn(target);
    } finally {
      await unmount(target);
    }
  } finally {
    fs.rmdirSync(target);
  }
}

/** Unmounts whatever is still mounted below dir (a failed test's leftovers), deepest first. */
export async function unmountAllBelow(dir: string): Promise<void> {
  for (const mp of mountsBelow(dir)) await run('umount', ['-l', mp]).catch(() => undefined);
}
