/* Path-resolving syscalls relative to a directory fd: the applier's whole vocabulary inside a snapshot root. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

static napi_value js_openat2(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int32_t dirfd, flags;
  uint32_t mode, resolve;
  char path[PATH_MAX + 1];
  if (!get_args(env, info, 5, argv) || !arg_i32(env, argv[0], &dirfd, "dirfd") ||
      !arg_str(env, argv[1], path, sizeof path, "path", "openat2") || !arg_i32(env, argv[2], &flags, "flags") ||
      !arg_u32(env, argv[3], &mode, "mode") || !arg_u32(env, argv[4], &resolve, "resolve"))
    return NULL;

  struct open_how how = {0};
  /* Always close-on-exec: the daemon spawns mount/btrfs/zfs tools and must not leak layer fds into them. */
  how.flags = (uint64_t)(uint32_t)flags | O_CLOEXEC;
  /* openat2 rejects a non-zero mode without O_CREAT/O_TMPFILE (unlike openat), so callers may pass any mode. */
  how.mode = ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) ? (mode & 07777) : 0;
  how.resolve = resolve;

  long fd;
  int tries = 0;
  do {
    fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    /* RESOLVE_IN_ROOT/BENEATH return EAGAIN when a concurrent rename or mount raced the lookup; retrying is the
       documented answer (RESOLVE_CACHED's EAGAIN means "not cached" and must reach the caller). */
  } while (fd < 0 && (errno == EINTR || (errno == EAGAIN && !(resolve & RESOLVE_CACHED) && ++tries < 8)));
  if (fd < 0) return throw_errno(env, errno, "openat2", path, NULL);
  return js_int(env, (int32_t)fd);
}

static napi_value js_mkdirat(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t dirfd;
  uint32_t mode;
  char path[PATH_MAX + 1];
  if (!get_args(env, info, 3, argv) || !arg_i32(env, argv[0], &dirfd, "dirfd") ||
      !arg_str(env, argv[1], path, sizeof path, "path", "mkdirat") || !arg_u32(env, argv[2], &mode, "mode"))
    return NULL;
  if (mkdirat(dirfd, path, (mode_t)mode) < 0) return throw_errno(env, errno, "mkdirat", path, NULL);
  return js_undefined(env);
}

static napi_value js_mknodat(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int32_t dirfd;
  uint32_t mode, major, minor;
  char path[PATH_MAX + 1];
  if (!get_args(env, info, 5, argv) || !arg_i32(env, argv[0], &dirfd, "dirfd") ||
      !arg_str(env, argv[1], path, sizeof path, "path", "mknodat") || !arg_u32(env, argv[2], &mode, "mode") ||
      !arg_u32(env, argv[3], &major, "major") || !arg_u32(env, argv[4], &minor, "minor"))
    return NULL;
  if (mknodat(dirfd, path, (mode_t)mode, makedev(major, minor)) < 0)
    return throw_errno(env, errno, "mknodat", path, NULL);
  return js_undefined(env);
}

static napi_value js_symlinkat(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t dirfd;
  char target[PATH_MAX + 1], path[PATH_MAX + 1];
  if (!get_args(env, info, 3, argv) || !arg_str(env, argv[0], target, sizeof target, "target", "symlinkat") ||
      !arg_i32(env, argv[1], &dirfd, "dirfd") || !arg_str(env, argv[2], path, sizeof path, "path", "symlinkat"))
    return NULL;
  /* Node's symlink errors read "symlink 'target' -> 'path'": path is the target, dest the new link. */
  if (symlinkat(target, dirfd, path) < 0) return throw_errno(env, errno, "symlinkat", target, path);
  return js_undefined(env);
}

static napi_value js_linkat(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int32_t olddirfd, newdirfd, flags;
  char oldpath[PATH_MAX + 1], newpath[PATH_MAX + 1];
  if (!get_args(env, info, 5, argv) || !arg_i32(env, argv[0], &olddirfd, "olddirfd") ||
      !arg_str(env, argv[1], oldpath, sizeof oldpath, "oldpath", "linkat") ||
      !arg_i32(env, argv[2], &newdirfd, "newdirfd") ||
      !arg_str(env, argv[3], newpath, sizeof newpath, "newpath", "linkat") || !arg_i32(env, argv[4], &flags, "flags"))
    return NULL;
  if (linkat(olddirfd, oldpath, newdirfd, newpath, flags) < 0)
    return throw_errno(env, errno, "linkat", oldpath, newpath);
  return js_undefined(env);
}

static napi_value js_unlinkat(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t dirfd, flags;
  char path[PATH_MAX + 1];
  if (!get_args(env, info, 3, argv) || !arg_i32(env, argv[0], &dirfd, "dirfd") ||
      !arg_str(env, argv[1], path, sizeof path, "path", "unlinkat") || !arg_i32(env, argv[2], &flags, "flags"))
    return NULL;
  if (unlinkat(dirfd, path, flags) < 0) return throw_errno(env, errno, "unlinkat", path, NULL);
  return js_undefined(env);
}

static napi_value js_renameat2(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int32_t olddirfd, newdirfd;
  uint32_t flags;
  char oldpath[PATH_MAX + 1], newpath[PATH_MAX + 1];
  if (!get_args(env, info, 5, argv) || !arg_i32(env, argv[0], &olddirfd, "olddirfd") ||
      !arg_str(env, argv[1], oldpath, sizeof oldpath, "oldpath", "renameat2") ||
      !arg_i32(env, argv[2], &newdirfd, "newdirfd") ||
      !arg_str(env, argv[3], newpath, sizeof newpath, "newpath", "renameat2") ||
      !arg_u32(env, argv[4], &flags, "flags"))
    return NULL;
  if (renameat2(olddirfd, oldpath, newdirfd, newpath, flags) < 0)
    return throw_errno(env, errno, "renameat2", oldpath, newpath);
  return js_undefined(env);
}

static napi_value js_fchownat(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int32_t dirfd, flags;
  uint32_t uid, gid;
  char path[PATH_MAX + 1];
  if (!get_args(env, info, 5, argv) || !arg_i32(env, argv[0], &dirfd, "dirfd") ||
      !arg_str(env, argv[1], path, sizeof path, "path", "fchownat") || !arg_u32(env, argv[2], &uid, "uid") ||
      !arg_u32(env, argv[3], &gid, "gid") || !arg_i32(env, argv[4], &flags, "flags"))
    return NULL;
  if (fchownat(dirfd, path, (uid_t)uid, (gid_t)gid, flags) < 0)
    return throw_errno(env, errno, "fchownat", path, NULL);
  return js_undefined(env);
}

static napi_value js_fchmodat(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t dirfd;
  uint32_t mode;
  char path[PATH_MAX + 1];
  if (!get_args(env, info, 3, argv) || !arg_i32(env, argv[0], &dirfd, "dirfd") ||
      !arg_str(env, argv[1], path, sizeof path, "path", "fchmodat") || !arg_u32(env, argv[2], &mode, "mode"))
    return NULL;
  if (fchmodat(dirfd, path, (mode_t)mode, 0) < 0) return throw_errno(env, errno, "fchmodat", path, NULL);
  return js_undefined(env);
}

static napi_value js_utimensat(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  int32_t dirfd, flags;
  int64_t asec, ansec, msec, mnsec;
  char path[PATH_MAX + 1];
  if (!get_args(env, info, 7, argv) || !arg_i32(env, argv[0], &dirfd, "dirfd") ||
      !arg_str(env, argv[1], path, sizeof path, "path", "utimensat") || !arg_i64(env, argv[2], &asec, "atimeSec") ||
      !arg_i64(env, argv[3], &ansec, "atimeNsec") || !arg_i64(env, argv[4], &msec, "mtimeSec") ||
      !arg_i64(env, argv[5], &mnsec, "mtimeNsec") || !arg_i32(env, argv[6], &flags, "flags"))
    return NULL;
  /* Nanoseconds pass through untouched so UTIME_NOW/UTIME_OMIT work too. */
  struct timespec ts[2] = {{.tv_sec = asec, .tv_nsec = (long)ansec}, {.tv_sec = msec, .tv_nsec = (long)mnsec}};
  if (utimensat(dirfd, path, ts, flags) < 0) return throw_errno(env, errno, "utimensat", path, NULL);
  return js_undefined(env);
}

static napi_value js_fstatat(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t dirfd, flags;
  char path[PATH_MAX + 1];
  if (!get_args(env, info, 3, argv) || !arg_i32(env, argv[0], &dirfd, "dirfd") ||
      !arg_str(env, argv[1], path, sizeof path, "path", "fstatat") || !arg_i32(env, argv[2], &flags, "flags"))
    return NULL;
  struct stat st;
  if (fstatat(dirfd, path, &st, flags) < 0) return throw_errno(env, errno, "fstatat", path, NULL);

  /* Order is the contract in native/index.ts. Doubles hold sizes and inode numbers exactly up to 2^53. */
  const double fields[11] = {
      (double)st.st_mode,         (double)st.st_uid,         (double)st.st_gid,  (double)st.st_size,
      (double)st.st_ino,          (double)st.st_dev,         (double)st.st_nlink, (double)major(st.st_rdev),
      (double)minor(st.st_rdev), (double)st.st_mtim.tv_sec, (double)st.st_mtim.tv_nsec,
  };
  napi_value arr;
  if (napi_create_array_with_length(env, COUNT_OF(fields), &arr) != napi_ok) return NULL;
  for (uint32_t i = 0; i < COUNT_OF(fields); i++) {
    napi_value v;
    if (napi_create_double(env, fields[i], &v) != napi_ok || napi_set_element(env, arr, i, v) != napi_ok)
      return NULL;
  }
  return arr;
}

bool init_paths(napi_env env, napi_value exports) {
  static const strata_fn fns[] = {
      {"openat2", js_openat2},     {"mkdirat", js_mkdirat},       {"mknodat", js_mknodat},
      {"symlinkat", js_symlinkat}, {"linkat", js_linkat},         {"unlinkat", js_unlinkat},
      {"renameat2", js_renameat2}, {"fchownat", js_fchownat},     {"fchmodat", js_fchmodat},
      {"utimensat", js_utimensat}, {"fstatat", js_fstatat},
  };
  return register_fns(env, exports, fns, COUNT_OF(fns));
}
