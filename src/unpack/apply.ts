/**
 * The applier: turns tar entries into files under a root directory, synchronously, with fd-relative syscalls.
 * It runs on the apply worker thread (worker.ts), never on the daemon's event loop.
 *
 * Containment: the root is held open; an entry's parent directory is resolved with openat2(RESOLVE_IN_ROOT), so
 * `..`, absolute symlinks and symlinked parents all stay below the root, and the entry itself is made with one
 * `*at` call on a single component from that parent fd. Nothing ever goes through a host path built by string
 * concatenation (xattrs on symlinks use /proc/self/fd/<parent>/<name>, which the kernel resolves from the fd).
 *
 * The small cache of parent-directory fds holds fds, not paths: an fd keeps naming the directory it was opened
 * on, inside the root, whatever happens later. Resolution can only change when something is removed or
 * replaced, and every removal clears the cache.
 */
import * as fs from 'node:fs';
import { AT, FILE_WRITER, native, O, RESOLVE, type FileWriterHandle, type NativeBinding } from '../../native';
import { monotonicMs } from './clock';
import { UnpackError } from './errors';
import { DEFAULT_PATH_LIMITS, pathKey, splitName, type PathLimits } from './paths';
import type { TarEntry, TarSink } from './tar';

export type WhiteoutForm = 'overlay' | 'delete';
export type SyncMode = 'syncfs' | 'fsync' | 'none';

export interface ApplierOptions {
  whiteouts: WhiteoutForm;
  /** Overlay form with `userxattr`: opaque markers are user.overlay.opaque instead of trusted.overlay.opaque. */
  userxattr?: boolean;
  /** Overlay form: the lower layers' directories, nearest first (implicit parents, hardlinks to lower files). */
  lowerDirs?: string[];
  /** chown entries to the archive's owners; default: when running as root. */
  owners?: boolean;
  /** Device nodes: create them (needs CAP_MKNOD; default when root) or refuse the layer. */
  devices?: 'create' | 'refuse';
  sync?: SyncMode;
  pathLimits?: PathLimits;
}

export interface ApplyStats {
  entries: number;
  files: number;
  dirs: number;
  /** Bytes of file data written. */
  dataBytes: number;
  whiteouts: number;
  syncMs: number;
  /** Time the applier waited for decompressed input (set by the worker). */
  inputWaitMs: number;
  /** Time the applier waited for the file writer's threads to catch up. */
  writerWaitMs: number;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const S_IFLNK = 0o120000;
const S_IFREG = 0o100000;

const WH_PREFIX = '.wh.';
const WH_META_PREFIX = '.wh..wh.';
const WH_OPAQUE = '.wh..wh..opq';

const DIR_PATH_FLAGS = O.PATH | O.DIRECTORY | O.CLOEXEC;
const IN_ROOT = RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS;
/** For opening one component below an fd: never follow a symlink, never leave the directory. */
const ONE = RESOLVE.BENEATH | RESOLVE.NO_SYMLINKS | RESOLVE.NO_MAGICLINKS;
const PARENT_CACHE_MAX = 128;
/** Threads that finish regular files (data, owner, mode, xattrs, times, close) off the applier's thread. */
const WRITER_THREADS = 2;
/** Files up to this size go to the file writer whole; bigger ones in pieces, in order (its serial queue). */
const QUEUED_FILE_MAX = 1 << 20;
/** Data the file writer may hold before the applier waits for it (bounds the apply's memory). */
const WRITER_QUEUE_BYTES = 4 << 20;

interface SysError {
  code?: string;
  message: string;
}

function codeOf(e: unknown): string | undefined {
  return (e as SysError | null)?.code;
}

export class Applier implements TarSink {
  readonly stats: ApplyStats = { entries: 0, files: 0, dirs: 0, dataBytes: 0, whiteouts: 0, syncMs: 0, inputWaitMs: 0, writerWaitMs: 0 };
  private readonly n: NativeBinding;
  private readonly rootFd: number;
  private readonly lowerFds: number[];
  private readonly overlayPrefix: string;
  private readonly owners: boolean;
  private readonly devices: 'create' | 'refuse';
  private readonly pathLimits: PathLimits;
  private readonly parents = new Map<string, number>();
  private readonly retired: number[] = [];
  /** Delete form: paths this layer created, so whiteouts and opaque markers spare them (OCI image spec). */
  private readonly created: Set<number> | null;
  /** Directory times are set at the very end, after every child has been written. */
  private readonly dirTimes: Array<{ path: string; e: TarEntry }> = [];
  // The large regular file being written, in pieces, through the file writer's serial queue.
  private fileFd = -1;
  private fileName = '';
  private filePos = 0;
  private readonly writer: FileWriterHandle;
  // The small file being collected for the file writer: its data is one slice of the ring when it arrived in one
  // piece (the usual case; the slice stays valid until entryEnd, which the reader calls in the same push), else
  // it is gathered in `gather`.
  private queuedFd = -1;
  private queuedSize = 0;
  private queuedBuf: Uint8Array | null = null;
  private queuedOff = 0;
  private gathered = 0;
  private gather: Buffer | null = null;

  constructor(
    readonly root: string,
    private readonly opts: ApplierOptions,
  ) {
    this.n = native();
    const root0 = process.geteuid?.() === 0;
    this.owners = opts.owners ?? root0;
    this.devices = opts.devices ?? (root0 ? 'create' : 'refuse');
    this.pathLimits = opts.pathLimits ?? DEFAULT_PATH_LIMITS;
    this.overlayPrefix = opts.userxattr ? 'user.overlay.' : 'trusted.overlay.';
    this.created = opts.whiteouts === 'delete' ? new Set() : null;
    this.rootFd = this.n.openat2(AT.FDCWD, root, O.RDONLY | O.DIRECTORY | O.CLOEXEC, 0, 0);
    this.writer = this.n.fileWriterCreate(WRITER_THREADS, WRITER_QUEUE_BYTES);
    this.lowerFds = [];
    try {
      for (const d of opts.whiteouts === 'overlay' ? (opts.lowerDirs ?? []) : []) {
        this.lowerFds.push(this.n.openat2(AT.FDCWD, d, O.RDONLY | O.DIRECTORY | O.CLOEXEC, 0, 0));
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }

  // ---- TarSink -------------------------------------------------------------------------------------------

  entry(e: TarEntry): void {
    this.stats.entries++;
    if (this.retired.length) this.closeRetired();
    const comps = splitName(e.name, 'entry name', this.pathLimits);
    try {
      this.applyEntry(e, comps);
    } catch (err) {
      throw wrap(err, e.name);
    }
  }

  data(buf: Uint8Array, offset: number, length: number): void {
    if (this.queuedFd >= 0) {
      this.stats.dataBytes += length;
      if (length === this.queuedSize) {
        this.queuedBuf = buf;
        this.queuedOff = offset;
        return;
      }
      if (this.gather === null || this.gather.length < this.queuedSize) this.gather = Buffer.allocUnsafe(QUEUED_FILE_MAX);
      this.gather.set(buf.subarray(offset, offset + length), this.gathered);
      this.gathered += length;
      this.queuedBuf = this.gather;
      this.queuedOff = 0;
      return;
    }
    // A skipped entry's data is read past, never written.
    if (this.fileFd < 0) return;
    try {
      this.n.fileWriterSubmit(this.writer, this.fileFd, buf, offset, length, this.filePos, FILE_WRITER.PART | FILE_WRITER.SERIAL, 0, 0, 0, 0, 0, 0, 0, null, this.fileName);
    } catch (err) {
      throw writerFailure(err, this.fileName);
    }
    this.filePos += length;
    this.stats.dataBytes += length;
  }

  entryEnd(e: TarEntry): void {
    if (this.queuedFd >= 0) return this.submitFinal(e, this.queuedFd, this.queuedBuf, this.queuedOff, this.queuedSize, 0);
    if (this.fileFd >= 0) this.submitFinal(e, this.fileFd, null, 0, 0, FILE_WRITER.SERIAL);
  }

  /** The file's final job: its (remaining) data, then metadata and close. The writer owns fd from here on. */
  private submitFinal(e: TarEntry, fd: number, data: Uint8Array | null, offset: number, length: number, serial: number): void {
    this.queuedFd = -1;
    this.queuedBuf = null;
    this.gathered = 0;
    this.fileFd = -1;
    let flags = serial | (this.owners ? FILE_WRITER.CHOWN : 0);
    if (this.opts.sync === 'fsync') flags |= FILE_WRITER.FSYNC;
    const [aSec, aNsec] = atimeOf(e);
    try {
      this.n.fileWriterSubmit(
        this.writer,
        fd,
        data,
        offset,
        data === null ? 0 : length,
        0,
        flags,
        e.uid,
        e.gid,
        e.mode,
        aSec,
        aNsec,
        e.mtimeSec,
        e.mtimeNsec,
        e.xattrs ? [...e.xattrs] : null,
        e.name,
      );
    } catch (err) {
      throw writerFailure(err, e.name);
    }
  }

  /** Waits for the file writer; its first failure fails the apply. */
  private drainWriter(): void {
    try {
      this.n.fileWriterDrain(this.writer);
    } catch (err) {
      throw writerFailure(err, '');
    }
  }

  /** Directory times, then the sync. Call once after the reader saw the end of the archive. */
  finish(): void {
    this.drainWriter();
    this.stats.writerWaitMs = this.n.fileWriterWaitMs(this.writer);
    this.closeRetired();
    for (const { path, e } of this.dirTimes) {
      const comps = path === '' ? [] : path.split('/');
      try {
        if (comps.length === 0) {
          this.setTimes(this.rootFd, '.', e);
        } else {
          const pfd = this.parent(comps, comps.length - 1, false);
          if (pfd >= 0) this.setTimes(pfd, comps[comps.length - 1], e);
        }
      } catch (err) {
        // The directory may have been replaced or removed by a later entry: nothing to set then.
        const c = codeOf(err) ?? (err instanceof UnpackError ? err.errno : undefined);
        if (c !== 'ENOENT' && c !== 'ENOTDIR') throw wrap(err, path);
      }
    }
    this.dirTimes.length = 0;
    const t0 = monotonicMs();
    if (this.opts.sync === 'syncfs' || this.opts.sync === undefined) this.n.syncfs(this.rootFd);
    this.stats.syncMs = monotonicMs() - t0;
  }

  close(): void {
    // First the writer: every fd it holds is closed before the caller may discard the snapshot, and a large
    // file's queued pieces must be written before its fd (still ours) is closed and its number reused.
    try {
      this.n.fileWriterDrain(this.writer);
    } catch {
      // Reported by finish(), or the apply already failed for another reason.
    }
    // Its threads end with the apply, not when the (pooled, long-lived) worker's GC gets to the handle.
    this.n.fileWriterClose(this.writer);
    if (this.fileFd >= 0) {
      fs.closeSync(this.fileFd);
      this.fileFd = -1;
    }
    if (this.queuedFd >= 0) {
      fs.closeSync(this.queuedFd);
      this.queuedFd = -1;
    }
    this.dropParents();
    for (const fd of this.lowerFds) fs.closeSync(fd);
    this.lowerFds.length = 0;
    if (this.rootFd >= 0) fs.closeSync(this.rootFd);
  }

  // ---- entries -------------------------------------------------------------------------------------------

  private applyEntry(e: TarEntry, comps: string[]): void {
    // (uid_t)-1 means "leave unchanged" to chown; anything at or above it cannot be an owner.
    if (e.uid >= 0xffffffff || e.gid >= 0xffffffff) {
      throw new UnpackError('limit', `entry "${e.name}" has owner ${e.uid}:${e.gid}, beyond the 32-bit id range`);
    }
    if (comps.length === 0) {
      // The root itself ("./"): only its metadata can change.
      if (e.type !== 'dir') throw new UnpackError('unsafe', `entry "${e.name}" would replace the root with a ${e.type}`);
      this.setDirMeta(this.rootFd, e);
      this.dirTimes.push({ path: '', e });
      return;
    }
    const base = comps[comps.length - 1];
    // Inside aufs bookkeeping dirs (.wh..wh.plnk/...): nothing a container may see.
    if (e.name.includes(WH_META_PREFIX) && comps.some((c, i) => i < comps.length - 1 && c.startsWith(WH_META_PREFIX))) return;
    if (base.startsWith(WH_PREFIX)) {
      this.whiteoutEntry(comps, base);
      return;
    }
    if (e.xattrs) this.checkXattrs(e);
    const path = comps.join('/');
    const pfd = this.parent(comps, comps.length - 1, true);
    this.created?.add(pathKey(path));
    switch (e.type) {
      case 'file':
        this.createFile(pfd, base, path, e);
        return;
      case 'dir':
        this.createDir(pfd, base, path, e);
        return;
      case 'symlink':
        this.createSymlink(pfd, base, e);
        return;
      case 'hardlink':
        this.createHardlink(pfd, base, path, e);
        return;
      case 'chardev':
      case 'blockdev':
      case 'fifo':
        this.createNode(pfd, base, e);
        return;
    }
  }

  private createFile(pfd: number, base: string, path: string, e: TarEntry): void {
    const flags = O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW | O.CLOEXEC;
    let fd: number;
    try {
      fd = this.n.openat2(pfd, base, flags, e.mode & 0o777, ONE);
    } catch (err) {
      if (codeOf(err) !== 'EEXIST') throw err;
      this.removeExisting(pfd, base, false);
      fd = this.n.openat2(pfd, base, flags, e.mode & 0o777, ONE);
    }
    this.stats.files++;
    if (e.size <= QUEUED_FILE_MAX) {
      this.queuedFd = fd;
      this.queuedSize = e.size;
      return;
    }
    this.fileFd = fd;
    this.filePos = 0;
    this.fileName = path;
  }

  private createDir(pfd: number, base: string, path: string, e: TarEntry): void {
    let opaque = false;
    try {
      this.n.mkdirat(pfd, base, 0o700);
    } catch (err) {
      if (codeOf(err) !== 'EEXIST') throw err;
      const st = this.n.fstatat(pfd, base, AT.SYMLINK_NOFOLLOW);
      if ((st[0] & S_IFMT) !== S_IFDIR) {
        // A whiteout of this name earlier in the layer deleted the lower dir: the new one must hide it.
        opaque = this.opts.whiteouts === 'overlay' && isWhiteoutDevice(st);
        this.removeExisting(pfd, base, false);
        this.n.mkdirat(pfd, base, 0o700);
      }
    }
    const dfd = this.n.openat2(pfd, base, O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC, 0, ONE);
    try {
      this.setDirMeta(dfd, e);
      if (opaque) this.n.fsetxattr(dfd, this.overlayPrefix + 'opaque', Buffer.from('y'), 0);
    } catch (err) {
      fs.closeSync(dfd);
      throw err;
    }
    this.stats.dirs++;
    this.remember(path, dfd);
    this.dirTimes.push({ path, e });
  }

  private createSymlink(pfd: number, base: string, e: TarEntry): void {
    if (e.linkname.length === 0) throw new UnpackError('corrupt', `symlink "${e.name}" has an empty target`);
    if (e.linkname.includes('\0')) throw new UnpackError('unsafe', `symlink "${e.name}" target contains a NUL byte`);
    if (Buffer.byteLength(e.linkname) > this.pathLimits.maxPathBytes) throw new UnpackError('limit', `symlink "${e.name}" target is too long`);
    try {
      this.n.symlinkat(e.linkname, pfd, base);
    } catch (err) {
      if (codeOf(err) !== 'EEXIST') throw err;
      this.removeExisting(pfd, base, false);
      this.n.symlinkat(e.linkname, pfd, base);
    }
    this.setLinkMeta(pfd, base, e, false);
  }

  private createNode(pfd: number, base: string, e: TarEntry): void {
    let type = S_IFIFO;
    if (e.type !== 'fifo') {
      if (this.devices !== 'create') {
        throw new UnpackError('unsupported', `device node "${e.name}" (${e.devMajor}:${e.devMinor}): creating devices needs root`);
      }
      type = e.type === 'chardev' ? S_IFCHR : S_IFBLK;
    }
    try {
      this.n.mknodat(pfd, base, type | (e.mode & 0o777), e.devMajor, e.devMinor);
    } catch (err) {
      if (codeOf(err) !== 'EEXIST') throw err;
      this.removeExisting(pfd, base, false);
      this.n.mknodat(pfd, base, type | (e.mode & 0o777), e.devMajor, e.devMinor);
    }
    this.setLinkMeta(pfd, base, e, true);
  }

  private createHardlink(pfd: number, base: string, path: string, e: TarEntry): void {
    const tcomps = splitName(e.linkname, 'hardlink target', this.pathLimits);
    if (tcomps.length === 0) throw new UnpackError('unsafe', `hardlink "${e.name}" points at the root`);
    const tpath = tcomps.join('/');
    if (tpath === path) return;
    const tbase = tcomps[tcomps.length - 1];
    const link = (): void => {
      const tpfd = this.parent(tcomps, tcomps.length - 1, false);
      if (tpfd < 0) throw Object.assign(new Error('no such file or directory'), { code: 'ENOENT' });
      this.n.linkat(tpfd, tbase, pfd, base, 0);
    };
    try {
      link();
    } catch (err) {
      const c = codeOf(err);
      if (c === 'EEXIST') {
        this.removeExisting(pfd, base, false);
        link();
      } else if (c === 'ENOENT' && this.lowerFds.length > 0 && this.copyUp(tcomps)) {
        link();
      } else if (c === 'ENOENT') {
        throw new UnpackError('unsafe', `hardlink "${e.name}" → "${e.linkname}": the target does not exist in the layer or below`);
      } else if (c === 'EPERM') {
        throw new UnpackError('unsafe', `hardlink "${e.name}" → "${e.linkname}": the target is a directory`);
      } else {
        throw err;
      }
    }
  }

  // ---- whiteouts -----------------------------------------------------------------------------------------

  private whiteoutEntry(comps: string[], base: string): void {
    const dirComps = comps.slice(0, -1);
    if (base === WH_OPAQUE) {
      this.stats.whiteouts++;
      if (this.opts.whiteouts === 'overlay') this.opaqueOverlay(dirComps);
      else this.opaqueDelete(dirComps);
      return;
    }
    // Other .wh..wh. names are aufs bookkeeping (hardlink dirs); they mean nothing to overlay or a plain tree.
    if (base.startsWith(WH_META_PREFIX)) return;
    const name = base.slice(WH_PREFIX.length);
    if (name === '' || name === '.' || name === '..') {
      throw new UnpackError('unsafe', `whiteout "${comps.join('/')}" names "${name}"`);
    }
    this.stats.whiteouts++;
    if (this.opts.whiteouts === 'overlay') {
      const pfd = this.parent(comps, comps.length - 1, true);
      let st: number[] | null = null;
      try {
        st = this.n.fstatat(pfd, name, AT.SYMLINK_NOFOLLOW);
      } catch (err) {
        if (codeOf(err) !== 'ENOENT') throw err;
      }
      if (st === null) {
        this.n.mknodat(pfd, name, S_IFCHR, 0, 0);
      } else if ((st[0] & S_IFMT) === S_IFDIR) {
        // Made by this layer: the spec keeps it, but the deleted lower dir must not show through it.
        const dfd = this.n.openat2(pfd, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC, 0, ONE);
        try {
          this.n.fsetxattr(dfd, this.overlayPrefix + 'opaque', Buffer.from('y'), 0);
        } finally {
          fs.closeSync(dfd);
        }
      }
      // A non-directory made by this layer already hides the lower entry.
      return;
    }
    const path = [...dirComps, name].join('/');
    if (this.created?.has(pathKey(path))) return;
    const pfd = this.parent(comps, comps.length - 1, false);
    if (pfd < 0) return;
    try {
      this.removeExisting(pfd, name, false);
    } catch (err) {
      if (codeOf(err) !== 'ENOENT') throw err;
    }
  }

  private opaqueOverlay(dirComps: string[]): void {
    const fd = this.openDirRw(dirComps, true);
    try {
      this.n.fsetxattr(fd, this.overlayPrefix + 'opaque', Buffer.from('y'), 0);
    } finally {
      if (fd !== this.rootFd) fs.closeSync(fd);
    }
  }

  private opaqueDelete(dirComps: string[]): void {
    // "This layer's entries" are known by path; through a symlink the paths would not match what is inside.
    if (dirComps.length > 0) {
      try {
        fs.closeSync(this.n.openat2(this.rootFd, dirComps.join('/'), DIR_PATH_FLAGS, 0, IN_ROOT | RESOLVE.NO_SYMLINKS));
      } catch (err) {
        const c = codeOf(err);
        if (c === 'ELOOP') throw new UnpackError('unsafe', `opaque marker in "${dirComps.join('/')}" reached through a symlink`);
        if (c === 'ENOENT') return;
        throw err;
      }
    }
    const fd = this.openDirRw(dirComps, false);
    if (fd < 0) return;
    try {
      const prefix = dirComps.length ? dirComps.join('/') + '/' : '';
      for (const child of fs.readdirSync(`/proc/self/fd/${fd}`)) {
        if (this.created?.has(pathKey(prefix + child))) continue;
        this.removeExisting(fd, child, false);
      }
    } finally {
      if (fd !== this.rootFd) fs.closeSync(fd);
    }
  }

  /** A directory opened for reading/xattrs (not O_PATH), resolved in the root; -1 if missing and !create. */
  private openDirRw(dirComps: string[], create: boolean): number {
    if (dirComps.length === 0) return this.rootFd;
    const pfd = this.parent(dirComps, dirComps.length - 1, create);
    if (pfd < 0) return -1;
    const base = dirComps[dirComps.length - 1];
    try {
      return this.n.openat2(pfd, base, O.RDONLY | O.DIRECTORY | O.CLOEXEC, 0, IN_ROOT);
    } catch (err) {
      if (codeOf(err) !== 'ENOENT') throw err;
      if (!create) return -1;
      this.implicitDir(pfd, base, dirComps.join('/'));
      return this.n.openat2(pfd, base, O.RDONLY | O.DIRECTORY | O.CLOEXEC, 0, IN_ROOT);
    }
  }

  // ---- parents -------------------------------------------------------------------------------------------

  /**
   * The fd of the directory made of comps[0..n), resolved inside the root (symlinks followed as if the root
   * were /). Missing directories are created when `create`, else -1 is returned.
   */
  private parent(comps: string[], n: number, create: boolean): number {
    if (n === 0) return this.rootFd;
    const key = n === comps.length ? comps.join('/') : comps.slice(0, n).join('/');
    const hit = this.parents.get(key);
    if (hit !== undefined) return hit;
    let fd: number;
    try {
      fd = this.n.openat2(this.rootFd, key, DIR_PATH_FLAGS, 0, IN_ROOT);
    } catch (err) {
      const c = codeOf(err);
      if (c === 'ENOTDIR') throw new UnpackError('unsafe', `"${key}" is not a directory`, c);
      if (c !== 'ENOENT') throw err;
      if (!create) return -1;
      fd = this.makeParents(comps, n);
    }
    this.remember(key, fd);
    return fd;
  }

  /** Creates the missing directories of comps[0..n), one component at a time from the deepest existing one. */
  private makeParents(comps: string[], n: number): number {
    let fd = this.rootFd;
    for (let i = 0; i < n; i++) {
      const prefix = comps.slice(0, i + 1).join('/');
      let next: number;
      try {
        next = this.n.openat2(this.rootFd, prefix, DIR_PATH_FLAGS, 0, IN_ROOT);
      } catch (err) {
        if (codeOf(err) !== 'ENOENT') throw err;
        try {
          this.implicitDir(fd, comps[i], prefix);
        } catch (e2) {
          // EEXIST with ENOENT above: a symlink whose target does not exist stands there.
          if (codeOf(e2) === 'EEXIST') throw new UnpackError('unsafe', `"${prefix}" is a dangling symlink used as a directory`);
          throw e2;
        }
        next = this.n.openat2(fd, comps[i], DIR_PATH_FLAGS, 0, ONE);
      }
      if (fd !== this.rootFd) fs.closeSync(fd);
      fd = next;
    }
    return fd;
  }

  /**
   * A directory the archive did not list. In overlay form it copies the visible lower directory's mode, owner
   * and xattrs (so the merged view does not change); otherwise 0755 root.
   */
  private implicitDir(pfd: number, base: string, path: string): void {
    this.n.mkdirat(pfd, base, 0o755);
    const lower = this.lowerDir(path);
    if (!lower) {
      this.created?.add(pathKey(path));
      return;
    }
    const dfd = this.n.openat2(pfd, base, O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC, 0, ONE);
    try {
      const st = fs.fstatSync(lower);
      if (this.owners) fs.fchownSync(dfd, st.uid, st.gid);
      fs.fchmodSync(dfd, st.mode & 0o7777);
      for (const name of this.n.flistxattr(lower)) {
        if (name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.')) continue;
        const v = this.n.fgetxattr(lower, name);
        if (v) this.n.fsetxattr(dfd, name, v, 0);
      }
      this.n.utimensat(pfd, base, Math.trunc(st.atimeMs / 1000), 0, Math.trunc(st.mtimeMs / 1000), 0, AT.SYMLINK_NOFOLLOW);
    } finally {
      fs.closeSync(dfd);
      fs.closeSync(lower);
    }
  }

  /** The nearest lower layer's directory at path, if the merged view shows one there (an fd to close). */
  private lowerDir(path: string): number | null {
    for (const lfd of this.lowerFds) {
      try {
        return this.n.openat2(lfd, path, O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC, 0, IN_ROOT);
      } catch (err) {
        const c = codeOf(err);
        // Something that is not a directory (a whiteout, a file, a symlink) hides every layer below.
        if (c === 'ENOTDIR' || c === 'ELOOP') return null;
        if (c !== 'ENOENT') throw err;
        if (this.hiddenBelow(lfd, path)) return null;
      }
    }
    return null;
  }

  /** True when a layer hides the layers below it at path: an opaque or non-directory ancestor. */
  private hiddenBelow(lfd: number, path: string): boolean {
    const comps = path.split('/');
    for (let i = 1; i <= comps.length; i++) {
      const prefix = comps.slice(0, i).join('/');
      let fd: number;
      try {
        fd = this.n.openat2(lfd, prefix, O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC, 0, IN_ROOT);
      } catch (err) {
        const c = codeOf(err);
        if (c === 'ENOENT') return false;
        return true;
      }
      try {
        const opq = this.n.fgetxattr(fd, this.overlayPrefix + 'opaque');
        if (opq && opq.toString() === 'y') return true;
      } finally {
        fs.closeSync(fd);
      }
    }
    return false;
  }

  /**
   * A hardlink to a file only a lower layer has: copy it into this layer first (overlay's own copy-up), so the
   * link has an inode to share. Regular files and symlinks only.
   */
  private copyUp(tcomps: string[]): boolean {
    const path = tcomps.join('/');
    for (const lfd of this.lowerFds) {
      let src: number;
      try {
        src = this.n.openat2(lfd, path, O.PATH | O.NOFOLLOW | O.CLOEXEC, 0, IN_ROOT);
      } catch (err) {
        if (codeOf(err) === 'ENOENT' && !this.hiddenBelow(lfd, path)) continue;
        return false;
      }
      try {
        const st = fs.fstatSync(src);
        const pfd = this.parent(tcomps, tcomps.length - 1, true);
        const base = tcomps[tcomps.length - 1];
        if ((st.mode & S_IFMT) === S_IFREG) {
          const rfd = this.n.openat2(lfd, path, O.RDONLY | O.NOFOLLOW | O.CLOEXEC, 0, IN_ROOT);
          const wfd = this.n.openat2(pfd, base, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW | O.CLOEXEC, 0o600, ONE);
          try {
            const buf = Buffer.allocUnsafe(1 << 20);
            for (;;) {
              const r = fs.readSync(rfd, buf, 0, buf.length, null);
              if (r === 0) break;
              let w = 0;
              while (w < r) w += fs.writeSync(wfd, buf, w, r - w);
            }
            if (this.owners) fs.fchownSync(wfd, st.uid, st.gid);
            fs.fchmodSync(wfd, st.mode & 0o7777);
            for (const name of this.n.flistxattr(rfd)) {
              const v = this.n.fgetxattr(rfd, name);
              if (v && !name.startsWith('trusted.overlay.')) this.n.fsetxattr(wfd, name, v, 0);
            }
            fs.futimesSync(wfd, st.atime, st.mtime);
          } finally {
            fs.closeSync(rfd);
            fs.closeSync(wfd);
          }
          return true;
        }
        if ((st.mode & S_IFMT) === S_IFLNK) {
          const target = fs.readlinkSync(`/proc/self/fd/${src}`);
          this.n.symlinkat(target, pfd, base);
          if (this.owners) this.n.fchownat(pfd, base, st.uid, st.gid, AT.SYMLINK_NOFOLLOW);
          return true;
        }
        return false;
      } finally {
        fs.closeSync(src);
      }
    }
    return false;
  }

  private remember(key: string, fd: number): void {
    const old = this.parents.get(key);
    if (old !== undefined) {
      this.parents.delete(key);
      if (old !== fd) this.retired.push(old);
    }
    if (this.parents.size >= PARENT_CACHE_MAX) {
      const [k, v] = this.parents.entries().next().value as [string, number];
      this.parents.delete(k);
      this.retired.push(v);
    }
    this.parents.set(key, fd);
  }

  private dropParents(): void {
    this.retireParents();
    this.closeRetired();
  }

  // ---- removal -------------------------------------------------------------------------------------------

  /** Removes pfd/base whatever it is (a directory with all it holds). keepDir leaves a directory alone. */
  private removeExisting(pfd: number, base: string, keepDir: boolean): void {
    // Any removal may change what a cached parent path resolves to.
    this.retireParents();
    try {
      this.n.unlinkat(pfd, base, 0);
      return;
    } catch (err) {
      const c = codeOf(err);
      if (c !== 'EISDIR' && c !== 'EPERM') throw err;
    }
    if (keepDir) return;
    this.removeTree(pfd, base, 0);
  }

  private removeTree(pfd: number, base: string, depth: number): void {
    if (depth > this.pathLimits.maxDepth) throw new UnpackError('limit', 'directory tree too deep to remove');
    const dfd = this.n.openat2(pfd, base, O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC, 0, ONE);
    try {
      for (const child of fs.readdirSync(`/proc/self/fd/${dfd}`)) {
        try {
          this.n.unlinkat(dfd, child, 0);
        } catch (err) {
          const c = codeOf(err);
          if (c !== 'EISDIR' && c !== 'EPERM') throw err;
          this.removeTree(dfd, child, depth + 1);
        }
      }
    } finally {
      fs.closeSync(dfd);
    }
    this.n.unlinkat(pfd, base, AT.REMOVEDIR);
  }

  /**
   * Forgets every cached parent. The fds are closed only when the next entry starts: the current entry may
   * still be using one, and closing it now could let a new openat2 reuse its number.
   */
  private retireParents(): void {
    for (const fd of this.parents.values()) this.retired.push(fd);
    this.parents.clear();
  }

  private closeRetired(): void {
    for (const fd of this.retired) fs.closeSync(fd);
    this.retired.length = 0;
  }

  // ---- metadata ------------------------------------------------------------------------------------------

  private checkXattrs(e: TarEntry): void {
    for (const name of (e.xattrs as Map<string, Buffer>).keys()) {
      if (name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.')) {
        throw new UnpackError('unsafe', `entry "${e.name}" carries the overlayfs attribute "${name}"; layers may not set overlay metadata`);
      }
      if (name.length === 0 || name.includes('\0')) throw new UnpackError('corrupt', `entry "${e.name}" has an invalid xattr name`);
    }
  }

  private setDirMeta(dfd: number, e: TarEntry): void {
    if (this.owners) fs.fchownSync(dfd, e.uid, e.gid);
    fs.fchmodSync(dfd, e.mode);
    if (e.xattrs) {
      this.checkXattrs(e);
      this.setXattrsFd(dfd, e.xattrs);
    }
  }

  /** Owner, mode (not for symlinks), xattrs and times of a non-regular entry, by name from its parent fd. */
  private setLinkMeta(pfd: number, base: string, e: TarEntry, chmod: boolean): void {
    if (this.owners) this.n.fchownat(pfd, base, e.uid, e.gid, AT.SYMLINK_NOFOLLOW);
    // mknodat's mode passed through the umask; the node was created just now by us, so this names it.
    if (chmod) this.n.fchmodat(pfd, base, e.mode);
    if (e.xattrs) {
      const p = `/proc/self/fd/${pfd}/${base}`;
      for (const [name, value] of e.xattrs) {
        try {
          this.n.lsetxattr(p, name, value, 0);
        } catch (err) {
          // The kernel allows user.* only on files and directories; containerd skips these too.
          const c = codeOf(err);
          if (!(name.startsWith('user.') && (c === 'EPERM' || c === 'ENOTSUP'))) throw err;
        }
      }
    }
    this.setTimes(pfd, base, e);
  }

  private setXattrsFd(fd: number, xattrs: Map<string, Buffer>): void {
    for (const [name, value] of xattrs) this.n.fsetxattr(fd, name, value, 0);
  }

  private setTimes(pfd: number, base: string, e: TarEntry): void {
    const [aSec, aNsec] = atimeOf(e);
    this.n.utimensat(pfd, base, aSec, aNsec, e.mtimeSec, e.mtimeNsec, AT.SYMLINK_NOFOLLOW);
  }
}

/** The access time to set: the archive's when it has one later than mtime, else mtime. */
function atimeOf(e: TarEntry): [number, number] {
  if (e.atimeSec >= 0 && (e.atimeSec > e.mtimeSec || (e.atimeSec === e.mtimeSec && e.atimeNsec > e.mtimeNsec))) {
    return [e.atimeSec, e.atimeNsec];
  }
  return [e.mtimeSec, e.mtimeNsec];
}

function isWhiteoutDevice(st: number[]): boolean {
  return (st[0] & S_IFMT) === S_IFCHR && st[7] === 0 && st[8] === 0;
}

/** A file writer failure may be an earlier file's, reported now: it names that file (the error's path). */
function writerFailure(err: unknown, current: string): UnpackError {
  return wrap(err, (err as { path?: string }).path || current);
}

/** Syscall failures become UnpackErrors naming the entry; UnpackErrors pass through. */
function wrap(err: unknown, name: string): UnpackError {
  if (err instanceof UnpackError) return err;
  const c = codeOf(err);
  const msg = (err as SysError | null)?.message ?? String(err);
  if (c === 'ELOOP') return new UnpackError('unsafe', `"${name}": too many levels of symbolic links`, c);
  if (c === 'EXDEV') return new UnpackError('unsafe', `"${name}": resolution tried to leave the root`, c);
  if (c === 'ENAMETOOLONG') return new UnpackError('limit', `"${name}": name too long`, c);
  return new UnpackError('io', `"${name}": ${msg}`, c);
}
