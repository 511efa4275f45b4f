/**
 * Real tests of the N-API addon, one suite per group of syscalls. Everything runs as root against real
 * filesystems: a temp dir on the host's disk, a tmpfs we mount, and loopback btrfs/XFS/ext4 images from the
 * shared helpers. Every suite tears down what it mounted in after(), also when a test failed.
 */
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

import { AT, FS_MAGIC, MNT, MS, native, O, RENAME, RESOLVE, XATTR } from '../../native/index';
import type { NativeBinding } from '../../native/index';
import { backendMissing, createBtrfs, createExt4, createXfs, projectQuotaMissing } from '../helpers/backends';
import type { LoopBackend } from '../helpers/backends';
import { giveToNobody, kernelHasFs, writeAsNobody } from './quota-helpers';

const S_IFMT = 0o170000;
const S_IFCHR = 0o020000;
const S_IFIFO = 0o010000;
const S_IFLNK = 0o120000;
const S_IFDIR = 0o040000;
const MiB = 1024 * 1024;

const isRoot = process.getuid?.() === 0;
const rootSkip = isRoot ? false : 'needs root';

/** Asserts fn throws a Node-style system error with this code and syscall. */
function throwsErrno(fn: () => unknown, code: string | string[], syscall?: string): NodeJS.ErrnoException {
  const codes = Array.isArray(code) ? code : [code];
  try {
    fn();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    assert.ok(err instanceof Error, 'throws an Error');
    assert.ok(codes.includes(err.code ?? ''), `expected ${codes.join('|')}, got ${err.code}: ${err.message}`);
    assert.equal(typeof err.errno, 'number');
    assert.ok((err.errno ?? 0) < 0, 'errno is negative like Node');
    if (syscall) assert.equal(err.syscall, syscall);
    assert.ok(err.message.startsWith(`${err.code}: `), err.message);
    return err;
  }
  assert.fail(`expected ${codes.join('|')}`);
}

function readAllFd(fd: number): string {
  const buf = Buffer.alloc(4096);
  const n = fs.readSync(fd, buf, 0, buf.length, 0);
  return buf.subarray(0, n).toString();
}

describe('native: paths', { skip: rootSkip }, () => {
  let n: NativeBinding;
  let tmp: string;
  let root: string;
  let rootFd = -1;

  before(() => {
    n = native();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-native-'));
    root = path.join(tmp, 'root');
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
    fs.mkdirSync(path.join(root, 'a', 'b'), { recursive: true });
    fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'inside-the-root\n');
    fs.symlinkSync('../../../etc/passwd', path.join(root, 'a', 'b', 'rel'));
    fs.symlinkSync('/etc/passwd', path.join(root, 'abs'));
    rootFd = fs.openSync(root, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  });
  after(() => {
    if (rootFd >= 0) fs.closeSync(rootFd);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('openat2 RESOLVE_IN_ROOT keeps relative and absolute symlinks inside the root', () => {
    for (const p of ['a/b/rel', 'abs', '../../../../etc/passwd', '/etc/passwd']) {
      const fd = n.openat2(rootFd, p, O.RDONLY, 0, RESOLVE.IN_ROOT);
      try {
        assert.equal(readAllFd(fd), 'inside-the-root\n', p);
      } finally {
        fs.closeSync(fd);
      }
    }
    // BENEATH refuses instead of scoping; NO_SYMLINKS refuses any symlink.
    throwsErrno(() => n.openat2(rootFd, 'a/b/rel', O.RDONLY, 0, RESOLVE.BENEATH), 'EXDEV', 'openat2');
    throwsErrno(() => n.openat2(rootFd, 'abs', O.RDONLY, 0, RESOLVE.IN_ROOT | RESOLVE.NO_SYMLINKS), 'ELOOP');
  });

  it('openat2 creates with mode, sets O_CLOEXEC and throws Node-shaped errors', () => {
    const fd = n.openat2(rootFd, 'created', O.WRONLY | O.CREAT | O.EXCL, 0o640, RESOLVE.IN_ROOT);
    try {
      fs.writeSync(fd, 'x');
      const flags = /flags:\s+(\d+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
      assert.ok(flags && (parseInt(flags[1], 8) & O.CLOEXEC) !== 0, 'fd is close-on-exec');
    } finally {
      fs.closeSync(fd);
    }
    assert.equal(fs.statSync(path.join(root, 'created')).mode & 0o777, 0o640 & ~process.umask());
    // A mode without O_CREAT is ignored rather than EINVAL.
    fs.closeSync(n.openat2(rootFd, 'created', O.RDONLY, 0o777, 0));

    const err = throwsErrno(() => n.openat2(rootFd, 'missing/file', O.RDONLY, 0, RESOLVE.IN_ROOT), 'ENOENT', 'openat2');
    assert.equal(err.errno, -2);
    assert.equal(err.path, 'missing/file');
    assert.equal(err.message, "ENOENT: no such file or directory, openat2 'missing/file'");
    throwsErrno(() => n.openat2(rootFd, 'created', O.WRONLY | O.CREAT | O.EXCL, 0o644, 0), 'EEXIST');
    assert.throws(() => n.openat2(rootFd, 'a\0b', O.RDONLY, 0, 0), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => n.openat2(rootFd, 'x'.repeat(5000), O.RDONLY, 0, 0), { code: 'ENAMETOOLONG' });
    assert.throws(() => (n.openat2 as (...a: unknown[]) => number)('nope', 'x', 0, 0, 0), TypeError);
  });

  it('mkdirat and mknodat make dirs, char devices 0/0 and fifos', () => {
    n.mkdirat(rootFd, 'dir', 0o750);
    let st = n.fstatat(rootFd, 'dir', AT.SYMLINK_NOFOLLOW);
    assert.equal(st[0] & S_IFMT, S_IFDIR);
    throwsErrno(() => n.mkdirat(rootFd, 'dir', 0o755), 'EEXIST', 'mkdirat');

    n.mknodat(rootFd, 'dir/.wh.whiteout', S_IFCHR | 0o000, 0, 0);
    st = n.fstatat(rootFd, 'dir/.wh.whiteout', AT.SYMLINK_NOFOLLOW);
    assert.equal(st[0] & S_IFMT, S_IFCHR);
    assert.equal(st[7], 0);
    assert.equal(st[8], 0);

    n.mknodat(rootFd, 'dir/null', S_IFCHR | 0o666, 1, 3);
    st = n.fstatat(rootFd, 'dir/null', 0);
    assert.deepEqual([st[7], st[8]], [1, 3]);
    const ls = fs.lstatSync(path.join(root, 'dir', 'null'));
    assert.ok(ls.isCharacterDevice());

    n.mknodat(rootFd, 'dir/fifo', S_IFIFO | 0o644, 0, 0);
    assert.ok(fs.lstatSync(path.join(root, 'dir', 'fifo')).isFIFO());
  });

  it('symlinkat, linkat, unlinkat and renameat2 with RENAME_NOREPLACE', () => {
    n.mkdirat(rootFd, 'l', 0o755);
    n.symlinkat('../target', rootFd, 'l/sym');
    assert.equal(fs.readlinkSync(path.join(root, 'l', 'sym')), '../target');
    const se = throwsErrno(() => n.symlinkat('x', rootFd, 'l/sym'), 'EEXIST', 'symlinkat');
    assert.equal((se as NodeJS.ErrnoException & { dest?: string }).dest, "l/sym");

    fs.writeFileSync(path.join(root, 'l', 'file'), 'data');
    n.linkat(rootFd, 'l/file', rootFd, 'l/hard', 0);
    assert.equal(n.fstatat(rootFd, 'l/file', 0)[6], 2);
    assert.equal(n.fstatat(rootFd, 'l/hard', 0)[4], n.fstatat(rootFd, 'l/file', 0)[4]);

    // A hard link to a symlink names the symlink itself unless AT_SYMLINK_FOLLOW is given.
    n.linkat(rootFd, 'l/sym', rootFd, 'l/symhard', 0);
    assert.equal(n.fstatat(rootFd, 'l/symhard', AT.SYMLINK_NOFOLLOW)[0] & S_IFMT, S_IFLNK);

    throwsErrno(() => n.renameat2(rootFd, 'l/hard', rootFd, 'l/file', RENAME.NOREPLACE), 'EEXIST', 'renameat2');
    n.renameat2(rootFd, 'l/hard', rootFd, 'l/moved', RENAME.NOREPLACE);
    assert.ok(fs.existsSync(path.join(root, 'l', 'moved')));
    assert.ok(!fs.existsSync(path.join(root, 'l', 'hard')));
    fs.writeFileSync(path.join(root, 'l', 'other'), 'other');
    n.renameat2(rootFd, 'l/other', rootFd, 'l/moved', 0);
    assert.equal(fs.readFileSync(path.join(root, 'l', 'moved'), 'utf8'), 'other');

    n.unlinkat(rootFd, 'l/moved', 0);
    n.unlinkat(rootFd, 'l/symhard', 0);
    throwsErrno(() => n.unlinkat(rootFd, 'l', 0), 'EISDIR', 'unlinkat');
    throwsErrno(() => n.unlinkat(rootFd, 'l', AT.REMOVEDIR), 'ENOTEMPTY');
    for (const f of ['file', 'sym']) n.unlinkat(rootFd, `l/${f}`, 0);
    n.unlinkat(rootFd, 'l', AT.REMOVEDIR);
    assert.ok(!fs.existsSync(path.join(root, 'l')));
  });

  it('fchownat with AT_SYMLINK_NOFOLLOW changes the link, not its target; fchmodat changes mode', () => {
    fs.writeFileSync(path.join(root, 'owned'), '');
    n.symlinkat('owned', rootFd, 'owned-link');
    n.fchownat(rootFd, 'owned-link', 1234, 5678, AT.SYMLINK_NOFOLLOW);
    const l = fs.lstatSync(path.join(root, 'owned-link'));
    const t = fs.statSync(path.join(root, 'owned'));
    assert.deepEqual([l.uid, l.gid], [1234, 5678]);
    assert.deepEqual([t.uid, t.gid], [0, 0]);
    // -1 leaves a field unchanged, as in chown(2).
    n.fchownat(rootFd, 'owned', 42, -1, 0);
    assert.deepEqual([fs.statSync(path.join(root, 'owned')).uid, fs.statSync(path.join(root, 'owned')).gid], [42, 0]);

    n.fchmodat(rootFd, 'owned', 0o4711);
    assert.equal(fs.statSync(path.join(root, 'owned')).mode & 0o7777, 0o4711);
    throwsErrno(() => n.fchmodat(rootFd, 'nope', 0o644), 'ENOENT', 'fchmodat');
  });

  it('utimensat sets nanosecond times on a symlink itself', () => {
    fs.writeFileSync(path.join(root, 'timed'), '');
    n.symlinkat('timed', rootFd, 'timed-link');
    const before = fs.statSync(path.join(root, 'timed'), { bigint: true }).mtimeNs;
    n.utimensat(rootFd, 'timed-link', 1_600_000_000, 111_222_333, 1_500_000_000, 987_654_321, AT.SYMLINK_NOFOLLOW);
    const l = fs.lstatSync(path.join(root, 'timed-link'), { bigint: true });
    assert.equal(l.mtimeNs, 1_500_000_000_987_654_321n);
    assert.equal(l.atimeNs, 1_600_000_000_111_222_333n);
    assert.equal(fs.statSync(path.join(root, 'timed'), { bigint: true }).mtimeNs, before);
    const st = n.fstatat(rootFd, 'timed-link', AT.SYMLINK_NOFOLLOW);
    assert.deepEqual([st[9], st[10]], [1_500_000_000, 987_654_321]);
    // Times beyond 2^32 seconds and before the epoch survive the int64 conversion.
    n.utimensat(rootFd, 'timed', 0, 0, 5_000_000_000, 5, 0);
    assert.equal(fs.statSync(path.join(root, 'timed'), { bigint: true }).mtimeNs, 5_000_000_000_000_000_005n);
    n.utimensat(rootFd, 'timed', 0, 0, -86_400, 0, 0);
    assert.equal(n.fstatat(rootFd, 'timed', 0)[9], -86_400);
  });

  it('fstatat returns [mode, uid, gid, size, ino, dev, nlink, rdevMajor, rdevMinor, mtimeSec, mtimeNsec]', () => {
    fs.writeFileSync(path.join(root, 'stat-me'), Buffer.alloc(12345));
    const st = n.fstatat(rootFd, 'stat-me', 0);
    const ref = fs.statSync(path.join(root, 'stat-me'), { bigint: true });
    assert.equal(st.length, 11);
    assert.equal(st[0], Number(ref.mode));
    assert.equal(st[1], Number(ref.uid));
    assert.equal(st[2], Number(ref.gid));
    assert.equal(st[3], 12345);
    assert.equal(st[4], Number(ref.ino));
    assert.equal(st[5], Number(ref.dev));
    assert.equal(st[6], 1);
    assert.equal(BigInt(st[9]) * 1_000_000_000n + BigInt(st[10]), ref.mtimeNs);
    // AT_EMPTY_PATH stats the fd itself.
    assert.equal(n.fstatat(rootFd, '', AT.EMPTY_PATH)[0] & S_IFMT, S_IFDIR);
    const link = n.fstatat(rootFd, 'abs', AT.SYMLINK_NOFOLLOW);
    assert.equal(link[0] & S_IFMT, S_IFLNK);
    assert.equal(link[3], '/etc/passwd'.length, "a symlink's size is its target's length");
    throwsErrno(() => n.fstatat(rootFd, 'nope', 0), 'ENOENT', 'fstatat');
  });
});

describe('native: worker threads', () => {
  it('loads and runs in a worker thread (the applier runs there), concurrently with the main thread', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-worker-'));
    try {
      const indexJs = require.resolve('../../native/index');
      const code = `
        const { parentPort, workerData } = require('node:worker_threads');
        const fs = require('node:fs');
        const { native, O, RESOLVE } = require(workerData.indexJs);
        const n = native();
        const dfd = fs.openSync(workerData.dir, 'r');
        for (let i = 0; i < 200; i++) n.mkdirat(dfd, 'w' + i, 0o755);
        const fd = n.openat2(dfd, '/w7/../w9', O.RDONLY | O.DIRECTORY, 0, RESOLVE.IN_ROOT);
        let code = '';
        try { n.unlinkat(dfd, 'missing', 0); } catch (e) { code = e.code; }
        parentPort.postMessage({ nlink: n.fstatat(fd, '', 0x1000)[6], code });
      `;
      const result = await new Promise<{ nlink: number; code: string }>((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { indexJs, dir: tmp } });
        w.once('message', resolve);
        w.once('error', reject);
      });
      // The main thread keeps using its own instance meanwhile.
      assert.equal(native().fstatat(AT.FDCWD, tmp, 0)[6], 202);
      assert.deepEqual(result, { nlink: 2, code: 'ENOENT' });
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('native: xattrs', { skip: rootSkip }, () => {
  let n: NativeBinding;
  let tmp: string;

  before(() => {
    n = native();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-xattr-'));
  });
  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('sets, gets, lists and removes user.* and trusted.* attributes by path', () => {
    const f = path.join(tmp, 'f');
    fs.writeFileSync(f, '');
    n.lsetxattr(f, 'user.strata', Buffer.from('hello'), 0);
    n.lsetxattr(f, 'trusted.overlay.opaque', Buffer.from('y'), XATTR.CREATE);
    n.lsetxattr(f, 'user.empty', Buffer.alloc(0), 0);
    assert.deepEqual(n.lgetxattr(f, 'user.strata'), Buffer.from('hello'));
    assert.deepEqual(n.lgetxattr(f, 'trusted.overlay.opaque'), Buffer.from('y'));
    assert.deepEqual(n.lgetxattr(f, 'user.empty'), Buffer.alloc(0));
    assert.equal(n.lgetxattr(f, 'user.absent'), null);
    const names = n.llistxattr(f);
    for (const want of ['user.strata', 'trusted.overlay.opaque', 'user.empty']) assert.ok(names.includes(want), want);

    throwsErrno(() => n.lsetxattr(f, 'trusted.overlay.opaque', Buffer.from('n'), XATTR.CREATE), 'EEXIST', 'lsetxattr');
    throwsErrno(() => n.lsetxattr(f, 'user.nope', Buffer.from('n'), XATTR.REPLACE), 'ENODATA');
    n.lremovexattr(f, 'trusted.overlay.opaque');
    assert.equal(n.lgetxattr(f, 'trusted.overlay.opaque'), null);
    throwsErrno(() => n.lremovexattr(f, 'trusted.overlay.opaque'), 'ENODATA', 'lremovexattr');
    throwsErrno(() => n.lgetxattr(path.join(tmp, 'missing'), 'user.x'), 'ENOENT', 'lgetxattr');
    assert.throws(() => n.lsetxattr(f, 'user.x', 'str' as unknown as Buffer, 0), TypeError);
  });

  it('works on fds, and on a symlink itself (trusted.*) without following it', () => {
    const f = path.join(tmp, 'g');
    fs.writeFileSync(f, '');
    const fd = fs.openSync(f, 'r');
    try {
      const value = Buffer.alloc(3000, 7); // near ext4's in-inode/block limit, exercises a large copy
      n.fsetxattr(fd, 'user.big', value, 0);
      assert.deepEqual(n.fgetxattr(fd, 'user.big'), value);
      assert.ok(n.flistxattr(fd).includes('user.big'));
      assert.equal(n.fgetxattr(fd, 'user.none'), null);
      assert.deepEqual(n.lgetxattr(f, 'user.big'), value);
    } finally {
      fs.closeSync(fd);
    }
    throwsErrno(() => n.fgetxattr(fd, 'user.big'), 'EBADF');

    const link = path.join(tmp, 'link');
    fs.symlinkSync('g', link);
    n.lsetxattr(link, 'trusted.link', Buffer.from('L'), 0);
    assert.deepEqual(n.lgetxattr(link, 'trusted.link'), Buffer.from('L'));
    assert.equal(n.lgetxattr(f, 'trusted.link'), null, 'the target is untouched');
    // The kernel forbids user.* on symlinks: that must surface as EPERM, not be followed to the target.
    throwsErrno(() => n.lsetxattr(link, 'user.x', Buffer.from('1'), 0), 'EPERM');
  });
});

describe('native: mounts', { skip: rootSkip }, () => {
  let n: NativeBinding;
  let tmp: string;
  const mounted: string[] = [];

  before(() => {
    n = native();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-mount-'));
  });
  after(() => {
    for (const m of mounted.reverse()) {
      try {
        n.umount2(m, MNT.DETACH);
      } catch {
        /* already unmounted by the test */
      }
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('mounts a tmpfs, bind-mounts it read-only, syncs, reads f_type and unmounts', () => {
    const t = path.join(tmp, 'tmpfs');
    const b = path.join(tmp, 'bind');
    fs.mkdirSync(t);
    fs.mkdirSync(b);
    n.mount('tmpfs', t, 'tmpfs', MS.NOSUID | MS.NODEV, 'size=16m,mode=0750');
    mounted.push(t);
    assert.equal(fs.statSync(t).mode & 0o777, 0o750);
    fs.writeFileSync(path.join(t, 'file'), 'on tmpfs');

    const fd = fs.openSync(t, 'r');
    try {
      assert.equal(n.fstatfsType(fd), FS_MAGIC.TMPFS);
      n.syncfs(fd);
      // Values beyond the 4 KiB stack buffer take the heap path in get/list.
      const big = Buffer.alloc(20000, 0x5a);
      n.fsetxattr(fd, 'trusted.big', big, 0);
      assert.deepEqual(n.fgetxattr(fd, 'trusted.big'), big);
      for (let i = 0; i < 300; i++) n.fsetxattr(fd, `trusted.name-${'x'.repeat(20)}-${i}`, Buffer.from('1'), 0);
      assert.equal(n.flistxattr(fd).filter((s) => s.startsWith('trusted.name-')).length, 300);
    } finally {
      fs.closeSync(fd);
    }
    const rootFd = fs.openSync('/', 'r');
    try {
      assert.notEqual(n.fstatfsType(rootFd), FS_MAGIC.TMPFS);
    } finally {
      fs.closeSync(rootFd);
    }

    n.mount(t, b, '', MS.BIND, '');
    mounted.push(b);
    assert.equal(fs.readFileSync(path.join(b, 'file'), 'utf8'), 'on tmpfs');
    n.mount('', b, '', MS.REMOUNT | MS.BIND | MS.RDONLY, '');
    assert.throws(() => fs.writeFileSync(path.join(b, 'new'), 'x'), { code: 'EROFS' });
    fs.writeFileSync(path.join(t, 'new'), 'still writable through the tmpfs mount');

    n.umount2(b, 0);
    assert.ok(!fs.existsSync(path.join(b, 'file')));
    n.umount2(t, 0);
    assert.ok(!fs.existsSync(path.join(t, 'file')));
    const err = throwsErrno(() => n.umount2(t, 0), 'EINVAL', 'umount2');
    assert.equal(err.path, t);
    throwsErrno(() => n.mount('none', path.join(tmp, 'missing'), 'tmpfs', 0, ''), 'ENOENT', 'mount');
    throwsErrno(() => n.syncfs(-1), 'EBADF', 'syncfs');
  });
});

describe('native: btrfs ioctls and FICLONE', { skip: rootSkip }, () => {
  let n: NativeBinding;
  let be: LoopBackend | undefined;
  let skipReason: string | undefined;
  const fds: number[] = [];
  const open = (p: string, flags: number = fs.constants.O_RDONLY): number => {
    const fd = fs.openSync(p, flags);
    fds.push(fd);
    return fd;
  };

  before(async () => {
    n = native();
    skipReason = (await backendMissing('btrfs')) ?? (kernelHasFs('btrfs') ? undefined : 'the kernel has no btrfs');
    if (!skipReason) be = await createBtrfs({ quota: false });
  });
  after(async () => {
    for (const fd of fds) fs.closeSync(fd);
    await be?.cleanup();
  });

  it('creates, snapshots, flips read-only, reports ids and deletes subvolumes', (t) => {
    if (!be) return t.skip(skipReason);
    const mnt = be.mountpoint;
    const mfd = open(mnt);
    assert.equal(n.fstatfsType(mfd), FS_MAGIC.BTRFS);
    assert.equal(n.btrfsSubvolId(mfd), 5, 'the top-level subvolume is tree 5');

    n.btrfsSubvolCreate(mfd, 'sv');
    throwsErrno(() => n.btrfsSubvolCreate(mfd, 'sv'), 'EEXIST', 'ioctl(BTRFS_IOC_SUBVOL_CREATE)');
    fs.writeFileSync(path.join(mnt, 'sv', 'file'), 'original');
    const sv = open(path.join(mnt, 'sv'));
    const svId = n.btrfsSubvolId(sv);
    assert.ok(svId >= 256, `subvolume id ${svId}`);
    // A plain directory inside a subvolume reports its subvolume's id.
    fs.mkdirSync(path.join(mnt, 'sv', 'dir'));
    assert.equal(n.btrfsSubvolId(open(path.join(mnt, 'sv', 'dir'))), svId);

    n.btrfsSubvolSnapshot(sv, mfd, 'ro', true);
    const ro = open(path.join(mnt, 'ro'));
    assert.notEqual(n.btrfsSubvolId(ro), svId);
    assert.equal(fs.readFileSync(path.join(mnt, 'ro', 'file'), 'utf8'), 'original');
    assert.throws(() => fs.writeFileSync(path.join(mnt, 'ro', 'file'), 'x'), { code: 'EROFS' });
    n.btrfsSetReadonly(ro, false);
    fs.writeFileSync(path.join(mnt, 'ro', 'file'), 'changed');
    n.btrfsSetReadonly(ro, true);
    n.btrfsSetReadonly(ro, true); // idempotent
    assert.throws(() => fs.writeFileSync(path.join(mnt, 'ro', 'other'), 'x'), { code: 'EROFS' });
    assert.equal(fs.readFileSync(path.join(mnt, 'sv', 'file'), 'utf8'), 'original', 'the source is untouched');

    n.btrfsSubvolSnapshot(ro, mfd, 'rw', false);
    fs.writeFileSync(path.join(mnt, 'rw', 'file'), 'writable');
    throwsErrno(() => n.btrfsSubvolSnapshot(sv, mfd, 'rw', false), 'EEXIST');
    // Snapshotting a plain directory is refused: it is not a subvolume root.
    throwsErrno(() => n.btrfsSubvolSnapshot(open(path.join(mnt, 'sv', 'dir')), mfd, 'bad', false), 'EINVAL');

    for (const name of ['rw', 'ro', 'sv']) n.btrfsSubvolDelete(mfd, name);
    for (const name of ['rw', 'ro', 'sv']) assert.ok(!fs.existsSync(path.join(mnt, name)), name);
    throwsErrno(() => n.btrfsSubvolDelete(mfd, 'sv'), 'ENOENT', 'ioctl(BTRFS_IOC_SNAP_DESTROY)');
    fs.mkdirSync(path.join(mnt, 'plain'));
    throwsErrno(() => n.btrfsSubvolDelete(mfd, 'plain'), ['EINVAL', 'ENOTTY', 'EPERM']);
    throwsErrno(() => n.btrfsSubvolCreate(open('/'), 'nope'), ['ENOTTY', 'EOPNOTSUPP', 'EINVAL']);
  });

  it('FICLONE shares extents between files', (t) => {
    if (!be) return t.skip(skipReason);
    const src = path.join(be.mountpoint, 'clone-src');
    const data = Buffer.alloc(3 * MiB);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
    fs.writeFileSync(src, data);
    const sfd = open(src);
    const dfd = open(path.join(be.mountpoint, 'clone-dst'), fs.constants.O_WRONLY | fs.constants.O_CREAT);
    n.ficlone(dfd, sfd);
    assert.ok(data.equals(fs.readFileSync(path.join(be.mountpoint, 'clone-dst'))));
    // Across filesystems the kernel refuses with EXDEV.
    const other = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-clone-'));
    try {
      const ofd = open(path.join(other, 'f'), fs.constants.O_WRONLY | fs.constants.O_CREAT);
      throwsErrno(() => n.ficlone(ofd, sfd), ['EXDEV', 'EOPNOTSUPP'], 'ioctl(FICLONE)');
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });
});

for (const kind of ['xfs', 'ext4'] as const) {
  describe(`native: project id and quota on ${kind}`, { skip: rootSkip }, () => {
    let n: NativeBinding;
    let be: LoopBackend | undefined;
    let skipReason: string | undefined;
    const fds: number[] = [];

    before(async () => {
      n = native();
      skipReason = await projectQuotaMissing(kind);
      if (!skipReason) be = kind === 'xfs' ? await createXfs() : await createExt4();
    });
    after(async () => {
      for (const fd of fds) fs.closeSync(fd);
      await be?.cleanup();
    });

    it('sets and inherits project ids, enforces an 8 MiB limit and reports usage', async (t) => {
      if (!be) return t.skip(skipReason);
      const dir = path.join(be.mountpoint, 'project');
      fs.mkdirSync(dir);
      const dfd = fs.openSync(dir, 'r');
      fds.push(dfd);
      const projid = 1_000_042;
      assert.equal(n.getProjectId(dfd), 0);
      n.setProjectId(dfd, projid, true);
      assert.equal(n.getProjectId(dfd), projid);
      assert.deepEqual(n.getProjectUsage(be.device, projid).map((v) => v >= 0), [true, true]);

      fs.mkdirSync(path.join(dir, 'sub'));
      fs.writeFileSync(path.join(dir, 'sub', 'small'), Buffer.alloc(64 * 1024, 1));
      const sfd = fs.openSync(path.join(dir, 'sub', 'small'), 'r');
      fds.push(sfd);
      assert.equal(n.getProjectId(sfd), projid, 'new files inherit the project id');

      n.setProjectQuota(be.device, projid, 8 * MiB);
      giveToNobody(dir);
      const big = path.join(dir, 'big');
      const w = writeAsNobody(big, 16 * MiB);
      assert.ok(w.code, `writing 16 MiB past an 8 MiB limit must fail (wrote ${w.written})`);
      assert.ok(['EDQUOT', 'ENOSPC'].includes(w.code), w.code);
      assert.ok(w.written >= 4 * MiB && w.written <= 8 * MiB, `wrote ${w.written}`);

      const [bytes, inodes] = n.getProjectUsage(be.device, projid);
      assert.ok(bytes >= 4 * MiB && bytes <= 8 * MiB + 256 * 1024, `usage ${bytes}`);
      assert.ok(inodes >= 4, `inodes ${inodes}`); // dir, sub, small, big

      // A limit beyond 2^32 bytes must not wrap (2^32 + 1 MiB would wrap to 1 MiB).
      n.setProjectQuota(be.device, projid, 2 ** 32 + MiB);
      assert.equal(writeAsNobody(big, 12 * MiB).code, undefined);
      n.setProjectQuota(be.device, projid, 0); // removes the limit
      assert.equal(writeAsNobody(big, 4 * MiB, true).code, undefined);
      const [after] = n.getProjectUsage(be.device, projid);
      assert.ok(after >= 16 * MiB, `usage ${after}`);

      // Open fds would keep the unlinked inodes (and their blocks) charged to the project.
      for (const fd of fds.splice(0)) fs.closeSync(fd);
      fs.rmSync(dir, { recursive: true });
      // XFS frees unlinked inodes in the background (inodegc): syncfs usually waits for that, but under a slow
      // emulated CPU the release has been seen to land a moment later, so poll a few seconds.
      const mfd = fs.openSync(be.mountpoint, 'r');
      let usage: [number, number] = [-1, -1];
      try {
        for (let i = 0; i < 50; i++) {
          n.syncfs(mfd);
          usage = n.getProjectUsage(be.device, projid);
          if (usage[0] === 0 && usage[1] === 0) break;
          await new Promise((r) => setTimeout(r, 200));
        }
      } finally {
        fs.closeSync(mfd);
      }
      assert.deepEqual(usage, [0, 0]);
      assert.deepEqual(n.getProjectUsage(be.device, 7_777_777), [0, 0], 'an unused project has zero usage');
      throwsErrno(() => n.setProjectQuota('/dev/null-missing', projid, MiB), ['ENOENT', 'ENOTBLK'], 'quotactl');
      assert.throws(() => n.setProjectQuota(be!.device, projid, -1), RangeError);
    });
  });
}
