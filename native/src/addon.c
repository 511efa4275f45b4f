/* strata_native: the syscalls Node lacks. Each group lives in its own file and registers itself here. */
#include "common.h"

static napi_value Init(napi_env env, napi_value exports) {
  if (!init_paths(env, exports) || !init_xattr(env, exports) || !init_mount(env, exports) ||
      !init_btrfs(env, exports) || !init_quota(env, exports) ||
      !init_filewriter(env, exports) || !init_memory(env, exports) || !init_gunzip(env, exports) ||
      !init_unzstd(env, exports) || !init_sha256(env, exports)) {
    napi_throw_error(env, NULL, "strata_native: registering functions failed");
    return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
