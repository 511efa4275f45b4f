/**
 * The syscalls Node lacks, from the N-API addon built by node-gyp (native/binding.gyp) at install. Only thin
 * wrappers live in C; policy stays in TypeScript. Every function throws a Node-style system error
 * (`err.code` = 'ENOENT', `err.errno`, `err.syscall`) on failure, like fs.*Sync.
 *
 * Paths given with a dirfd are resolved relative to that fd; nothing here follows a path from the process's cwd.
 * Ioctl failures name the request as the syscall (`ioctl(FICLONE)`, `ioctl(BTRFS_IOC_SNAP_CREATE_V2)`); errors
 * carry `path` (and `dest` for two-path calls) like Node's. All calls are synchronous and work in worker threads.
 */
import * as path from 'node:path';

export interface NativeBinding {
  // --- path resolution inside a root -------------------------------------------------------------------
  /**
   * openat2(2). resolve is a RESOLVE_* mask (RESOLVE_IN_ROOT keeps every lookup below dirfd). Returns an fd.
   * The fd is always O_CLOEXEC; mode is ignored unless flags has O_CREAT/O_TMPFILE (openat2 would say EINVAL);
   * the EAGAIN of a lookup that raced a rename is retried a few times.
   */
  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number;
  mkdirat(dirfd: number, path: string, mode: number): void;
  /** mknodat(2); mode carries the type (S_IFCHR, S_IFBLK, S_IFIFO, ...); the C side computes makedev(major, minor). */
  mknodat(dirfd: number, path: string, mode: number, major: number, minor: number): void;
  symlinkat(target: string, dirfd: number, path: string): void;
  linkat(olddirfd: number, oldpath: string, newdirfd: number, newpath: string, flags: number): void;
  unlinkat(dirfd: number, path: string, flags: number): void;
  renameat2(olddirfd: number, oldpath: string, newdirfd: number, newpath: string, flags: number): void;
  fchownat(dirfd: number, path: string, uid: number, gid: number, flags: number): void;
  fchmodat(dirfd: number, path: string, mode: number): void;
  /** utimensat(2) with nanosecond times; flags may hold AT_SYMLINK_NOFOLLOW. */
  utimensat(dirfd: number, path: string, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number, flags: number): void;
  /** fstatat(2): [mode, uid, gid, size, ino, dev, nlink, rdevMajor, rdevMinor, mtimeSec, mtimeNsec]. */
  fstatat(dirfd: number, path: string, flags: number): number[];

  // --- extended attributes ------------------------------------------------------------------------------
  fsetxattr(fd: number, name: string, value: Buffer, flags: number): void;
  lsetxattr(path: string, name: string, value: Buffer, flags: number): void;
  /** Returns null when the attribute does not exist (ENODATA). */
  lgetxattr(path: string, name: string): Buffer | null;
  fgetxattr(fd: number, name: string): Buffer | null;
  llistxattr(path: string): string[];
  flistxattr(fd: number): string[];
  lremovexattr(path: string, name: string): void;

  // --- mounts and filesystems ---------------------------------------------------------------------------
  mount(source: string, target: string, fstype: string, flags: number, data: string): void;
  umount2(target: string, flags: number): void;
  syncfs(fd: number): void;
  /** ioctl(FICLONE): make dst share src's extents (btrfs, XFS with reflink). */
  ficlone(dstFd: number, srcFd: number): void;
  /** statfs(2) f_type of the filesystem holding fd (e.g. 0x9123683e for btrfs). */
  fstatfsType(fd: number): number;

  // --- btrfs ioctls -------------------------------------------------------------------------------------
  btrfsSubvolCreate(parentDirFd: number, name: string): void;
  /** BTRFS_IOC_SNAP_CREATE_V2 of the subvolume open at srcFd into parentDirFd/name. */
  btrfsSubvolSnapshot(srcFd: number, parentDirFd: number, name: string, readonly: boolean): void;
  btrfsSubvolDelete(parentDirFd: number, name: string): void;
  btrfsSetReadonly(fd: number, readonly: boolean): void;
  /** The subvolume id (tree id) of the subvolume open at fd. */
  btrfsSubvolId(fd: number): number;

  // --- project quotas (XFS prjquota, ext4 project) --------------------------------------------------------
  /** FS_IOC_FSSETXATTR: set the project id (and the inherit flag on directories) of the inode open at fd. */
  setProjectId(fd: number, projectId: number, inherit: boolean): void;
  getProjectId(fd: number): number;
  /**
   * quotactl(Q_XSETQLIM / Q_SETQUOTA) for a project: hard block limit in bytes (0 removes it), rounded up to the
   * filesystem's quota block (512 B on XFS, 1 KiB for the generic/ext4 interface). XFS's command is tried first.
   */
  setProjectQuota(blockDevice: string, projectId: number, hardLimitBytes: number): void;
  /** quotactl(Q_XGETQUOTA / Q_GETQUOTA) for a project: [bytesUsed, inodesUsed]; [0, 0] for an unused project. */
  getProjectUsage(blockDevice: string, projectId: number): [number, number];

  // --- memory -----------------------------------------------------------------------------------------
  /**
   * mallopt(M_MMAP_THRESHOLD, M_TRIM_THRESHOLD): allocations from mmapBytes up are mmapped and given back when
   * freed, with glibc's threshold adjustment off; a heap keeps up to trimBytes free at its top (native/src/memory.c
   * says why). Process-wide; returns whether glibc accepted both.
   */
  fixMallocThresholds(mmapBytes: number, trimBytes: number): boolean;

  // --- gzip (ISA-L's igzip, native/src/gunzip.c) ----------------------------------------------------------
  gunzipCreate(): GunzipHandle;
  /**
   * Inflates as much of input into output as fits: [consumed, produced, inMember]. inMember: the stream stopped
   * inside a gzip member (cut short, if the input has ended). Members may follow each other; non-gzip bytes
   * after a member are ignored. Corrupt data throws an Error with code ERR_GZIP_CORRUPT.
   */
  gunzipRun(handle: GunzipHandle, input: Uint8Array, output: Uint8Array): [number, number, boolean];

  // --- zstd (the system's libzstd, native/src/unzstd.c) ---------------------------------------------------
  unzstdCreate(): UnzstdHandle;
  /**
   * One ZSTD_decompressStream: [consumed, produced, hint]. hint is 0 when a frame is complete and flushed (a
   * non-zero hint at the end of the input: cut short). Corrupt data throws an Error with code ERR_ZSTD_CORRUPT.
   */
  unzstdRun(handle: UnzstdHandle, input: Uint8Array, output: Uint8Array): [number, number, number];
  /** Frees the decoder's memory (its window) now; the handle cannot be used again. */
  unzstdFree(handle: UnzstdHandle): void;

  // --- the applier's file writer (native/src/filewriter.c) ----------------------------------------------
  /** Threads that finish regular files off the apply worker; queued data is bounded by maxQueuedBytes. */
  fileWriterCreate(threads: number, maxQueuedBytes: number): FileWriterHandle;
  /**
   * Hands an open, freshly created file to the writer: it writes length bytes of data from offset at file
   * offset position, then fchown (flags & FILE_WRITER.CHOWN), fchmod(mode), the xattrs, futimens, fsync
   * (flags & FILE_WRITER.FSYNC) and closes the fd; that job owns the fd from here on, even if this throws.
   * FILE_WRITER.PART only writes the data (a large file's piece; the fd stays the caller's until its final job);
   * FILE_WRITER.SERIAL jobs run in submission order (a large file's pieces and final job must). The data is
   * copied. Throws the first failure of an earlier job (its file's name as the error's path).
   */
  fileWriterSubmit(
    writer: FileWriterHandle,
    fd: number,
    data: Uint8Array | null,
    offset: number,
    length: number,
    position: number,
    flags: number,
    uid: number,
    gid: number,
    mode: number,
    atimeSec: number,
    atimeNsec: number,
    mtimeSec: number,
    mtimeNsec: number,
    xattrs: Array<[string, Buffer]> | null,
    name: string,
  ): void;
  /** Waits until every submitted file is finished; throws the first failure. */
  fileWriterDrain(writer: FileWriterHandle): void;
  /** Milliseconds submit() has spent waiting for the threads to make room (they were the bottleneck). */
  fileWriterWaitMs(writer: FileWriterHandle): number;
  /** Stops the threads now; queued files are only closed, later submits fail (ECANCELED). */
  fileWriterClose(writer: FileWriterHandle): void;

  // --- SHA-256 on its own thread (OpenSSL's, native/src/sha256.c) ------------------------------------------
  sha256Create(): Sha256Handle;
  /** Copies bytes in; the thread hashes them in order. Waits only while its 4 MiB buffer is full. */
  sha256Update(hasher: Sha256Handle, bytes: Uint8Array): void;
  /** Lowercase hex of the digest of every byte given; waits for the thread. The handle is spent. */
  sha256Digest(hasher: Sha256Handle): string;
  /** The digest is not wanted: stops the thread and frees the buffer now. The handle is spent. */
  sha256Close(hasher: Sha256Handle): void;
}

/** An opaque handle; its threads stop and its queued fds are closed when it is garbage-collected. */
export type FileWriterHandle = { readonly __fileWriter: unique symbol };

/** An opaque inflater; freed when garbage-collected. */
export type GunzipHandle = { readonly __gunzip: unique symbol };

/** An opaque hasher; its thread stops when it is spent or garbage-collected. */
export type Sha256Handle = { readonly __sha256: unique symbol };

/** An opaque zstd decoder; freed when garbage-collected. */
export type UnzstdHandle = { readonly __unzstd: unique symbol };

export const FILE_WRITER = { CHOWN: 1, FSYNC: 2, PART: 4, SERIAL: 8 } as const;

/** Flags and constants the binding's callers use (Linux x86_64/aarch64 values). */
export const O = {
  RDONLY: 0o0,
  WRONLY: 0o1,
  RDWR: 0o2,
  CREAT: 0o100,
  EXCL: 0o200,
  NOCTTY: 0o400,
  TRUNC: 0o1000,
  APPEND: 0o2000,
  NONBLOCK: 0o4000,
  DIRECTORY: 0o200000,
  NOFOLLOW: 0o400000,
  CLOEXEC: 0o2000000,
  PATH: 0o10000000,
} as const;

export const RESOLVE = {
  NO_XDEV: 0x01,
  NO_MAGICLINKS: 0x02,
  NO_SYMLINKS: 0x04,
  BENEATH: 0x08,
  IN_ROOT: 0x10,
} as const;

export const AT = {
  FDCWD: -100,
  SYMLINK_NOFOLLOW: 0x100,
  REMOVEDIR: 0x200,
  SYMLINK_FOLLOW: 0x400,
  EMPTY_PATH: 0x1000,
} as const;

export const RENAME = { NOREPLACE: 1, EXCHANGE: 2, WHITEOUT: 4 } as const;

export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  REMOUNT: 32,
  BIND: 4096,
  MOVE: 8192,
  REC: 16384,
  PRIVATE: 1 << 18,
} as const;

export const MNT = { FORCE: 1, DETACH: 2 } as const;
export const XATTR = { CREATE: 1, REPLACE: 2 } as const;

export const FS_MAGIC = {
  BTRFS: 0x9123683e,
  XFS: 0x58465342,
  EXT4: 0xef53,
  TMPFS: 0x01021994,
  OVERLAY: 0x794c7630,
  ZFS: 0x2fc12fc1,
  FUSE: 0x65735546,
} as const;

let cached: NativeBinding | undefined;

/** The addon, loaded once. Throws with a clear message when the install did not build it. */
export function native(): NativeBinding {
  if (cached) return cached;
  // dist/native/index.js and native/index.ts both sit one level below the project root.
  const addon = path.resolve(__dirname, '..', '..', 'native', 'build', 'Release', 'strata_native.node');
  const fallback = path.resolve(__dirname, 'build', 'Release', 'strata_native.node');
  for (const candidate of [addon, fallback]) {
    try {
      cached = withFastProperties(require(candidate) as NativeBinding);
      return cached;
    } catch (e) {
      if ((e as { code?: string }).code !== 'MODULE_NOT_FOUND') throw e;
    }
  }
  throw new Error(`strata's native addon is not built (looked for ${addon}); run "npm install" (it runs node-gyp)`);
}

/**
 * The addon's exports object is in V8's dictionary mode (N-API adds its functions one by one), so every
 * `n.openat2(…)` on the applier's per-entry path was a hash lookup. An object literal has fast properties; the
 * return type makes the compiler name any function left out.
 */
function withFastProperties(a: NativeBinding): NativeBinding {
  return {
    openat2: a.openat2, mkdirat: a.mkdirat, mknodat: a.mknodat, symlinkat: a.symlinkat, linkat: a.linkat,
    unlinkat: a.unlinkat, renameat2: a.renameat2, fchownat: a.fchownat, fchmodat: a.fchmodat,
    utimensat: a.utimensat, fstatat: a.fstatat, fsetxattr: a.fsetxattr, lsetxattr: a.lsetxattr,
    lgetxattr: a.lgetxattr, fgetxattr: a.fgetxattr, llistxattr: a.llistxattr, flistxattr: a.flistxattr,
    lremovexattr: a.lremovexattr, mount: a.mount, umount2: a.umount2, syncfs: a.syncfs, ficlone: a.ficlone,
    fstatfsType: a.fstatfsType, btrfsSubvolCreate: a.btrfsSubvolCreate, btrfsSubvolSnapshot: a.btrfsSubvolSnapshot,
    btrfsSubvolDelete: a.btrfsSubvolDelete, btrfsSetReadonly: a.btrfsSetReadonly, btrfsSubvolId: a.btrfsSubvolId,
    setProjectId: a.setProjectId, getProjectId: a.getProjectId, setProjectQuota: a.setProjectQuota,
    getProjectUsage: a.getProjectUsage, fileWriterCreate: a.fileWriterCreate, fileWriterSubmit: a.fileWriterSubmit,
    fileWriterDrain: a.fileWriterDrain, fileWriterWaitMs: a.fileWriterWaitMs, fileWriterClose: a.fileWriterClose,
    fixMallocThresholds: a.fixMallocThresholds, gunzipCreate: a.gunzipCreate, gunzipRun: a.gunzipRun,
    unzstdCreate: a.unzstdCreate, unzstdRun: a.unzstdRun, unzstdFree: a.unzstdFree,
    sha256Create: a.sha256Create, sha256Update: a.sha256Update, sha256Digest: a.sha256Digest, sha256Close: a.sha256Close,
  };
}
