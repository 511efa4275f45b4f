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
 *
 * Fixing the mmap threshold also fixes the trim threshold, at glibc's 128 KiB: whenever more than that is free
 * at the top of a heap, it goes back to the kernel. The file writer's copies are malloc'd by the apply worker and
 * freed by the writer threads a moment later, so the worker's heap was trimmed and faulted in again all through
 * an apply: ~10,000 of `snapctl apply`'s 23,000 page faults on the benchmark's base layer. The trim threshold is
 * set with it, to 8 MiB (twice the writer's queue): faults 23k -> 14k, system time -0.16 s, wall -0.06 s (tmpfs,
 * median of 6), peak RSS +3 MB. 32 MiB measured no better.
 */
#include "common.h"

#include <malloc.h>

/* fixMallocThresholds(mmapBytes, trimBytes): mallopt(M_MMAP_THRESHOLD), mallopt(M_TRIM_THRESHOLD); whether glibc took both. */
static napi_value js_fix_thresholds(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint32_t mmap_bytes, trim_bytes;
  if (!get_args(env, info, 2, argv) || !arg_u32(env, argv[0], &mmap_bytes, "mmapBytes") || !arg_u32(env, argv[1], &trim_bytes, "trimBytes")) return NULL;
  bool ok = mallopt(M_MMAP_THRESHOLD, (int)mmap_bytes) == 1;
  ok = mallopt(M_TRIM_THRESHOLD, (int)trim_bytes) == 1 && ok;
  return js_bool(env, ok);
}

bool init_memory(napi_env env, napi_value exports) {
  static const strata_fn fns[] = {{"fixMallocThresholds", js_fix_thresholds}};
  return register_fns(env, exports, fns, COUNT_OF(fns));
}
