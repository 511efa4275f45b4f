/*
 * Process-wide malloc policy for the daemon and snapctl's apply.
 *
 * An unpack streams hundreds of MB through short-lived buffers of 64 KiB–1 MiB (decompressor output, the file
 * writer's copies). glibc serves allocations from 128 KiB up with mmap, but raises that threshold each time such a
 * chunk is freed (up to 32 MiB), after which the same buffers come from the heap and stay there: measured on the
 * unpack benchmark, a daemon kept 150 MB resident after its unpack and peaked at ~165 MB. A fixed threshold turns
 * that adjustment off. It is fixed at 1 MiB + 1, not at glibc's 128 KiB: at 128 KiB every decompressor chunk
 * and every file copy was its own mmap, page-faulted in and unmapped again (with TLB shootdowns across the apply's
 * threads), which cost `snapctl apply` ~1.5 s of system time over the benchmark's three layers on tmpfs (3.2 s vs
 * 1.6–1.7 s; wall 5.2 s vs 4.0 s); at 1 MiB + 1 that is gone and the peak is the same (127–140 MB vs 128–131 MB).
 */
#include "common.h"

#include <malloc.h>

/* fixMallocMmapThreshold(bytes): mallopt(M_MMAP_THRESHOLD); returns whether glibc accepted it. */
static napi_value js_fix_mmap_threshold(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  uint32_t bytes;
  if (!get_args(env, info, 1, argv) || !arg_u32(env, argv[0], &bytes, "bytes")) return NULL;
  return js_bool(env, mallopt(M_MMAP_THRESHOLD, (int)bytes) == 1);
}

bool init_memory(napi_env env, napi_value exports) {
  static const strata_fn fns[] = {{"fixMallocMmapThreshold", js_fix_mmap_threshold}};
  return register_fns(env, exports, fns, COUNT_OF(fns));
}
