/*
 * zstd decompression with the system's libzstd (Debian's libzstd-dev), written straight into the caller's buffer
 * (the apply ring), like gunzip.c.
 *
 * Why not zstd-napi's DCtx, which did this before: decoding the benchmark's three layers into the engine's
 * 256 KiB runs from Node, Debian's libzstd 1.5.4 used 775 ms of CPU where the copy of zstd 1.5.7 that zstd-napi
 * builds used 861 ms (medians of 6; most of the gain is on the 202 MB layer). On a 2-core node that CPU is taken
 * from the applier and the filesystem, and the system library takes Debian's security updates. zstd-napi stays
 * for compressing (snapctl diff --compress zstd), where its stream API is what fits.
 *
 * Framing is zstd's: frames may follow each other, skippable frames are skipped, each frame's checksum is
 * checked when it has one. The window is capped at zstd's default, 128 MiB (windowLogMax 27), so a
 * frame cannot make the daemon allocate more than that.
 */
#include "common.h"

#include <errno.h>
#include <stdlib.h>
#include <zstd.h>

/* The context holds the frame's window (up to 128 MiB): unzstdFree gives it back when the layer ends instead of
 * whenever the garbage collector gets to the handle. */
typedef struct {
  ZSTD_DCtx *d;
} zs_stream;

static void zs_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  zs_stream *z = data;
  ZSTD_freeDCtx(z->d);
  free(z);
}

static zs_stream *zs_arg(napi_env env, napi_value v) {
  zs_stream *z = NULL;
  if (napi_get_value_external(env, v, (void **)&z) != napi_ok || z == NULL) {
    throw_type(env, "The \"handle\" argument must be an unzstd handle");
    return NULL;
  }
  return z;
}

/* unzstdCreate() → handle */
static napi_value js_create(napi_env env, napi_callback_info info) {
  (void)info;
  zs_stream *z = malloc(sizeof *z);
  if (z == NULL || (z->d = ZSTD_createDCtx()) == NULL) {
    free(z);
    return throw_errno(env, ENOMEM, "unzstdCreate", "", NULL);
  }
  napi_value ext;
  if (napi_create_external(env, z, zs_finalize, NULL, &ext) != napi_ok) {
    ZSTD_freeDCtx(z->d);
    free(z);
    return NULL;
  }
  return ext;
}

/*
 * unzstdRun(handle, input, output) → [consumed, produced, hint]. One ZSTD_decompressStream call: decodes as much
 * of input into output as fits. hint is zstd's: 0 when a frame is complete and fully flushed (so a non-zero hint
 * at the end of the input means the stream was cut short). Corrupt data throws an Error with code
 * 'ERR_ZSTD_CORRUPT'; the stream is unusable after that.
 */
static napi_value js_run(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  zs_stream *z = zs_arg(env, argv[0]);
  if (z == NULL) return NULL;
  if (z->d == NULL) return throw_type(env, "The unzstd handle was freed");
  uint8_t *in, *out;
  size_t in_len, out_len;
  if (!arg_bytes(env, argv[1], &in, &in_len, "The \"input\" argument must be a Uint8Array") ||
      !arg_bytes(env, argv[2], &out, &out_len, "The \"output\" argument must be a Uint8Array"))
    return NULL;
  ZSTD_inBuffer ib = {in, in_len, 0};
  ZSTD_outBuffer ob = {out, out_len, 0};
  size_t hint = ZSTD_decompressStream(z->d, &ob, &ib);
  if (ZSTD_isError(hint)) {
    napi_throw_error(env, "ERR_ZSTD_CORRUPT", ZSTD_getErrorName(hint));
    return NULL;
  }
  napi_value res;
  if (napi_create_array_with_length(env, 3, &res) != napi_ok ||
      napi_set_element(env, res, 0, js_number(env, (double)ib.pos)) != napi_ok ||
      napi_set_element(env, res, 1, js_number(env, (double)ob.pos)) != napi_ok ||
      napi_set_element(env, res, 2, js_number(env, (double)hint)) != napi_ok)
    return NULL;
  return res;
}

/* unzstdFree(handle): frees the context now; the handle is unusable afterwards. */
static napi_value js_free(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  zs_stream *z = zs_arg(env, argv[0]);
  if (z == NULL) return NULL;
  ZSTD_freeDCtx(z->d);
  z->d = NULL;
  return js_undefined(env);
}

bool init_unzstd(napi_env env, napi_value exports) {
  static const strata_fn fns[] = {{"unzstdCreate", js_create}, {"unzstdRun", js_run}, {"unzstdFree", js_free}};
  return register_fns(env, exports, fns, COUNT_OF(fns));
}
