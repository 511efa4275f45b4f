/**
 * Directory-per-snapshot storage shared by the native and overlay drivers: `<root>/snapshots/<id>/` holding
 * `fs` (and overlay's `work`), plus `<root>/tmp/` for scratch mounts. Ids are short integers, so paths stay
 * short and overlay mount options small.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FS_MAGIC } from '../../native';

export class DirStore {
  readonly snapshots: string;
  readonly tmp: string;

  constructor(readonly root: string) {
    this.snapshots = path.join(root, 'snapshots');
    this.tmp = path.join(root, 'tmp');
  }

  init(): void {
    fs.mkdirSync(this.root, { recursive: true, mode: 0o711 });
    // 0700: the layers hold setuid binaries and secrets of other users' images.
    fs.mkdirSync(this.snapshots, { recursive: true, mode: 0o700 });
    fs.mkdirSync(this.tmp, { recursive: true, mode: 0o700 });
  }

  dir(id: number): string {
    return path.join(this.snapshots, String(id));
  }
  fs(id: number): string {
    return path.join(this.snapshots, String(id), 'fs');
  }
  work(id: number): string {
    return path.join(this.snapshots, String(id), 'work');
  }

  /** Ids with a directory under snapshots/ (anything else there is not ours and is left alone). */
  listOnDisk(): number[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.snapshots);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    return names.filter((n) => /^[1-9][0-9]*$/.test(n)).map(Number).sort((a, b) => a - b);
  }

  /**
   * Deletes a snapshot's directory. Idempotent; root bypasses the 000 mode overlay leaves on work/work.
   *
   * `rm -rf --one-file-system`, not fs.promises.rm: Node's recursive rm keeps an operation in flight for every
   * entry of a directory at once, and removing a 42k-file layer took the daemon from ~145 MB to ~200 MB resident
   * (measured); rm walks the tree in constant memory in its own process, and does not descend into another
   * filesystem mounted inside the snapshot (an overlay or tmpfs left by a crash), which Node's rm emptied. A bind
   * mount of the same filesystem looks like a plain directory to both.
   */
  removeDir(id: number): Promise<void> {
    return removeTree(this.dir(id));
  }

  /**
   * Creates a snapshot's empty directory. Ids are never reused, so one that exists is the same create cut short
   * by a crash: it is started over.
   */
  async freshDir(id: number): Promise<void> {
    try {
      fs.mkdirSync(this.dir(id), { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      await this.removeDir(id);
      fs.mkdirSync(this.dir(id), { mode: 0o700 });
    }
  }

  /** A fresh scratch directory below tmp/ (same filesystem as the snapshots, so renames are atomic). */
  tempDir(prefix: string): string {
    fs.mkdirSync(this.tmp, { recursive: true, mode: 0o700 });
    return fs.mkdtempSync(path.join(this.tmp, prefix));
  }

  /** Name of the filesystem holding root, for status and error messages. */
  backingFs(): string {
    return fsTypeName(fs.statfsSync(this.root).type);
  }
}

export function fsTypeName(magic: number): string {
  for (const [name, m] of Object.entries(FS_MAGIC)) if (m === magic) return name.toLowerCase();
  return `0x${magic.toString(16)}`;
}

/** `rm -rf --one-file-system` of dir, in constant memory (see DirStore.removeDir). */
export function removeTree(dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('rm', ['-rf', '--one-file-system', '--', dir], { timeout: 600_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`removing ${dir}: ${(stderr || err.message).trim()}`));
      else resolve();
    });
  });
}
