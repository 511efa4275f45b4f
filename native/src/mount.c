/* mount(2)/umount2(2), syncfs, FICLONE and statfs: filesystem-level calls the drivers need. */
#include "common.h"

#include <errno.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <unistd.h>

/* Overlay's option string may be a full page; leave room so the kernel, not us, rejects what is too long. */
#define DATA_CAP 8192

static napi_value js_mount(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  char source[PATH_MAX + 1], target[PATH_MAX + 1], fstype[256], data[DATA_CAP];
  const char *src, *fst, *dat;
  uint32_t flags;
  if (!get_args(env, info, 5, argv) ||
      !arg_opt_str(env, argv[0], source, sizeof source, &src, "source", "mount") ||
      !arg_str(env, argv[1], target, sizeof target, "target", "mount") ||
      !arg_opt_str(env, argv[2], fstype, sizeof fstype, &fst, "fstype", "mount") ||
      !arg_u32(env, argv[3], &flags, "flags") ||
      !arg_opt_str(env, argv[4], data, sizeof data, &dat, "data", "mount"))
    return NULL;
  /* An empty option string means "no options" (NULL), which bind mounts and remounts expect. */
  if (dat != NULL && dat[0] == '\0') dat = NULL;
  if (fst != NULL && fst[0] == '\0') fst = NULL;
  if (mount(src, target, fst, flags, dat) < 0) return throw_errno(env, errno, "mount", src ? src : "", target);
  return js_undefined(env);
}

static napi_value js_umount2(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char target[PATH_MAX + 1];
  int32_t flags;
  if (!get_args(env, info, 2, argv) || !arg_str(env, argv[0], target, sizeof target, "target", "umount2") ||
      !arg_i32(env, argv[1], &flags, "flags"))
    return NULL;
  if (umount2(target, flags) < 0) return throw_errno(env, errno, "umount2", target, NULL);
  return js_undefined(env);
}

static napi_value js_syncfs(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !arg_i32(env, argv[0], &fd, "fd")) return NULL;
  if (syncfs(fd) < 0) return throw_errno(env, errno, "syncfs", NULL, NULL);
  return js_undefined(env);
}

static napi_value js_ficlone(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t dst, src;
  if (!get_args(env, info, 2, argv) || !arg_i32(env, argv[0], &dst, "dstFd") || !arg_i32(env, argv[1], &src, "srcFd"))
    return NULL;
  if (ioctl(dst, FICLONE, src) < 0) return throw_errno(env, errno, "ioctl(FICLONE)", NULL, NULL);
  return js_undefined(env);
}

static napi_value js_fstatfs_type(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !arg_i32(env, argv[0], &fd, "fd")) return NULL;
  struct statfs sf;
  if (fstatfs(fd, &sf) < 0) return throw_errno(env, errno, "fstatfs", NULL, NULL);
  /* Magic numbers are 32-bit; masking keeps btrfs's 0x9123683e positive whatever f_type's signedness. */
  return js_number(env, (double)((unsigned long)sf.f_type & 0xffffffffUL));
}

bool init_mount(napi_env env, napi_value exports) {
  static const strata_fn fns[] = {
      {"mount", js_mount},   {"umount2", js_umount2},        {"syncfs", js_syncfs},
      {"ficlone", js_ficlone}, {"fstatfsType", js_fstatfs_type},
  };
  return register_fns(env, exports, fns, COUNT_OF(fns));
}
