/* btrfs subvolume ioctls: create, snapshot (optionally read-only), destroy, read-only flag, tree id. */
#include "common.h"

#include <errno.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <string.h>
#include <sys/ioctl.h>

static napi_value js_subvol_create(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t parent;
  struct btrfs_ioctl_vol_args args;
  memset(&args, 0, sizeof args);
  if (!get_args(env, info, 2, argv) || !arg_i32(env, argv[0], &parent, "parentDirFd") ||
      !arg_str(env, argv[1], args.name, sizeof args.name, "name", "ioctl(BTRFS_IOC_SUBVOL_CREATE)"))
    return NULL;
  if (ioctl(parent, BTRFS_IOC_SUBVOL_CREATE, &args) < 0)
    return throw_errno(env, errno, "ioctl(BTRFS_IOC_SUBVOL_CREATE)", args.name, NULL);
  return js_undefined(env);
}

static napi_value js_subvol_snapshot(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t src, parent;
  bool readonly;
  struct btrfs_ioctl_vol_args_v2 args;
  memset(&args, 0, sizeof args);
  if (!get_args(env, info, 4, argv) || !arg_i32(env, argv[0], &src, "srcFd") ||
      !arg_i32(env, argv[1], &parent, "parentDirFd") ||
      !arg_str(env, argv[2], args.name, sizeof args.name, "name", "ioctl(BTRFS_IOC_SNAP_CREATE_V2)") ||
      !arg_bool(env, argv[3], &readonly, "readonly"))
    return NULL;
  args.fd = src;
  args.flags = readonly ? BTRFS_SUBVOL_RDONLY : 0;
  if (ioctl(parent, BTRFS_IOC_SNAP_CREATE_V2, &args) < 0)
    return throw_errno(env, errno, "ioctl(BTRFS_IOC_SNAP_CREATE_V2)", args.name, NULL);
  return js_undefined(env);
}

static napi_value js_subvol_delete(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t parent;
  struct btrfs_ioctl_vol_args args;
  memset(&args, 0, sizeof args);
  if (!get_args(env, info, 2, argv) || !arg_i32(env, argv[0], &parent, "parentDirFd") ||
      !arg_str(env, argv[1], args.name, sizeof args.name, "name", "ioctl(BTRFS_IOC_SNAP_DESTROY)"))
    return NULL;
  /* SNAP_DESTROY removes plain subvolumes and snapshots alike, read-only or not, when called by root. */
  if (ioctl(parent, BTRFS_IOC_SNAP_DESTROY, &args) < 0)
    return throw_errno(env, errno, "ioctl(BTRFS_IOC_SNAP_DESTROY)", args.name, NULL);
  return js_undefined(env);
}

static napi_value js_set_readonly(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  bool readonly;
  if (!get_args(env, info, 2, argv) || !arg_i32(env, argv[0], &fd, "fd") ||
      !arg_bool(env, argv[1], &readonly, "readonly"))
    return NULL;
  __u64 flags = 0;
  if (ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, &flags) < 0)
    return throw_errno(env, errno, "ioctl(BTRFS_IOC_SUBVOL_GETFLAGS)", NULL, NULL);
  __u64 want = readonly ? (flags | BTRFS_SUBVOL_RDONLY) : (flags & ~(__u64)BTRFS_SUBVOL_RDONLY);
  /* Skipping a no-op SETFLAGS avoids a transaction commit per call. */
  if (want != flags && ioctl(fd, BTRFS_IOC_SUBVOL_SETFLAGS, &want) < 0)
    return throw_errno(env, errno, "ioctl(BTRFS_IOC_SUBVOL_SETFLAGS)", NULL, NULL);
  return js_undefined(env);
}

static napi_value js_subvol_id(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !arg_i32(env, argv[0], &fd, "fd")) return NULL;
  /* treeid 0 asks "which tree holds this fd"; the root dir's objectid answers it for the subvolume itself. */
  struct btrfs_ioctl_ino_lookup_args args;
  memset(&args, 0, sizeof args);
  args.treeid = 0;
  args.objectid = BTRFS_FIRST_FREE_OBJECTID;
  if (ioctl(fd, BTRFS_IOC_INO_LOOKUP, &args) < 0)
    return throw_errno(env, errno, "ioctl(BTRFS_IOC_INO_LOOKUP)", NULL, NULL);
  return js_number(env, (double)args.treeid);
}

bool init_btrfs(napi_env env, napi_value exports) {
  static const strata_fn fns[] = {
      {"btrfsSubvolCreate", js_subvol_create}, {"btrfsSubvolSnapshot", js_subvol_snapshot},
      {"btrfsSubvolDelete", js_subvol_delete}, {"btrfsSetReadonly", js_set_readonly},
      {"btrfsSubvolId", js_subvol_id},
  };
  return register_fns(env, exports, fns, COUNT_OF(fns));
}
