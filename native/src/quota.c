/*
 * Project ids (FS_IOC_FSGETXATTR/FSSETXATTR) and project quotas through quotactl(2). XFS speaks the XFS quota
 * commands (struct fs_disk_quota, 512-byte basic blocks); ext4 the generic ones (struct if_dqblk, bytes for usage,
 * 1 KiB blocks for limits). Each call tries XFS's command first and falls back to the generic one when the
 * filesystem does not implement it, so callers need not know the filesystem type.
 */
#include "common.h"

#include <errno.h>
#include <linux/dqblk_xfs.h>
#include <linux/fs.h>
#include <linux/quota.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int quotactl_raw(int cmd, const char *special, uint32_t id, void *addr) {
  return (int)syscall(SYS_quotactl, cmd, special, (int)id, addr);
}

/* Errors meaning "this filesystem does not implement that quota interface", as opposed to real failures. */
static bool unsupported(int err) { return err == ENOSYS || err == EINVAL || err == ENOTSUP || err == ENOTTY; }

static napi_value js_set_project_id(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  uint32_t projid;
  bool inherit;
  if (!get_args(env, info, 3, argv) || !arg_i32(env, argv[0], &fd, "fd") ||
      !arg_u32(env, argv[1], &projid, "projectId") || !arg_bool(env, argv[2], &inherit, "inherit"))
    return NULL;
  struct fsxattr fsx;
  memset(&fsx, 0, sizeof fsx);
  if (ioctl(fd, FS_IOC_FSGETXATTR, &fsx) < 0) return throw_errno(env, errno, "ioctl(FS_IOC_FSGETXATTR)", NULL, NULL);
  fsx.fsx_projid = projid;
  /* PROJINHERIT makes new children take the directory's project id, so the whole tree is accounted together. */
  if (inherit)
    fsx.fsx_xflags |= FS_XFLAG_PROJINHERIT;
  else
    fsx.fsx_xflags &= ~(uint32_t)FS_XFLAG_PROJINHERIT;
  if (ioctl(fd, FS_IOC_FSSETXATTR, &fsx) < 0) return throw_errno(env, errno, "ioctl(FS_IOC_FSSETXATTR)", NULL, NULL);
  return js_undefined(env);
}

static napi_value js_get_project_id(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !arg_i32(env, argv[0], &fd, "fd")) return NULL;
  struct fsxattr fsx;
  memset(&fsx, 0, sizeof fsx);
  if (ioctl(fd, FS_IOC_FSGETXATTR, &fsx) < 0) return throw_errno(env, errno, "ioctl(FS_IOC_FSGETXATTR)", NULL, NULL);
  return js_number(env, (double)fsx.fsx_projid);
}

static napi_value js_set_project_quota(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char dev[PATH_MAX + 1];
  uint32_t projid;
  uint64_t bytes;
  if (!get_args(env, info, 3, argv) || !arg_str(env, argv[0], dev, sizeof dev, "blockDevice", "quotactl") ||
      !arg_u32(env, argv[1], &projid, "projectId") || !arg_u64(env, argv[2], &bytes, "hardLimitBytes"))
    return NULL;

  /* Round up: a limit must never become 0 (unlimited) or smaller than asked. */
  struct fs_disk_quota xq;
  memset(&xq, 0, sizeof xq);
  xq.d_version = FS_DQUOT_VERSION;
  xq.d_flags = FS_PROJ_QUOTA;
  xq.d_fieldmask = FS_DQ_BHARD;
  xq.d_id = projid;
  xq.d_blk_hardlimit = (bytes + 511) / 512;
  if (quotactl_raw(QCMD(Q_XSETQLIM, PRJQUOTA), dev, projid, &xq) == 0) return js_undefined(env);
  if (!unsupported(errno)) return throw_errno(env, errno, "quotactl", dev, NULL);

  struct if_dqblk dq;
  memset(&dq, 0, sizeof dq);
  dq.dqb_bhardlimit = (bytes + QIF_DQBLKSIZE - 1) / QIF_DQBLKSIZE;
  dq.dqb_valid = QIF_BLIMITS;
  /* Q_SETQUOTA with only QIF_BLIMITS would also reset the soft limit; keep the current one. */
  struct if_dqblk cur;
  memset(&cur, 0, sizeof cur);
  if (quotactl_raw(QCMD(Q_GETQUOTA, PRJQUOTA), dev, projid, &cur) == 0) dq.dqb_bsoftlimit = cur.dqb_bsoftlimit;
  if (quotactl_raw(QCMD(Q_SETQUOTA, PRJQUOTA), dev, projid, &dq) < 0)
    return throw_errno(env, errno, "quotactl", dev, NULL);
  return js_undefined(env);
}

static napi_value usage_pair(napi_env env, double bytes, double inodes) {
  napi_value arr, b, i;
  if (napi_create_array_with_length(env, 2, &arr) != napi_ok || napi_create_double(env, bytes, &b) != napi_ok ||
      napi_create_double(env, inodes, &i) != napi_ok || napi_set_element(env, arr, 0, b) != napi_ok ||
      napi_set_element(env, arr, 1, i) != napi_ok)
    return NULL;
  return arr;
}

static napi_value js_get_project_usage(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char dev[PATH_MAX + 1];
  uint32_t projid;
  if (!get_args(env, info, 2, argv) || !arg_str(env, argv[0], dev, sizeof dev, "blockDevice", "quotactl") ||
      !arg_u32(env, argv[1], &projid, "projectId"))
    return NULL;

  struct fs_disk_quota xq;
  memset(&xq, 0, sizeof xq);
  if (quotactl_raw(QCMD(Q_XGETQUOTA, PRJQUOTA), dev, projid, &xq) == 0)
    return usage_pair(env, (double)xq.d_bcount * 512.0, (double)xq.d_icount);
  /* XFS answers ENOENT for a project that owns nothing and has no limits: that is zero usage. */
  if (errno == ENOENT) return usage_pair(env, 0, 0);
  if (!unsupported(errno)) return throw_errno(env, errno, "quotactl", dev, NULL);

  struct if_dqblk dq;
  memset(&dq, 0, sizeof dq);
  if (quotactl_raw(QCMD(Q_GETQUOTA, PRJQUOTA), dev, projid, &dq) < 0) {
    if (errno == ENOENT) return usage_pair(env, 0, 0);
    return throw_errno(env, errno, "quotactl", dev, NULL);
  }
  return usage_pair(env, (double)dq.dqb_curspace, (double)dq.dqb_curinodes);
}

bool init_quota(napi_env env, napi_value exports) {
  static const strata_fn fns[] = {
      {"setProjectId", js_set_project_id},
      {"getProjectId", js_get_project_id},
      {"setProjectQuota", js_set_project_quota},
      {"getProjectUsage", js_get_project_usage},
  };
  return register_fns(env, exports, fns, COUNT_OF(fns));
}
