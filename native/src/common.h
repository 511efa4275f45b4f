/*
 * Shared helpers for strata's N-API addon: argument conversion into caller-owned (stack) buffers, and
 * Node-style system errors. The addon keeps no global state, so it loads in worker threads too.
 */
#ifndef STRATA_COMMON_H
#define STRATA_COMMON_H

#include <node_api.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Throws an Error shaped like Node's fs errors: code 'ENOENT', errno -2, syscall, path, dest, and the message
 * "ENOENT: no such file or directory, openat2 'path'". Always returns NULL so callers can `return throw_errno(...)`.
 */
napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path, const char *dest);
/* TypeError/RangeError with Node's ERR_INVALID_ARG_* codes, for arguments that never reached the kernel. */
napi_value throw_type(napi_env env, const char *what);
napi_value throw_range(napi_env env, const char *what);

/* Fetches exactly `want` arguments (missing ones are `undefined`, which the converters reject). */
bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv);

bool arg_i32(napi_env env, napi_value v, int32_t *out, const char *name);
/* Like ToUint32: -1 becomes 0xffffffff, which is what fchownat wants for "leave unchanged". */
bool arg_u32(napi_env env, napi_value v, uint32_t *out, const char *name);
bool arg_i64(napi_env env, napi_value v, int64_t *out, const char *name);
/* A non-negative integral byte count; doubles carry it exactly up to 2^53. */
bool arg_u64(napi_env env, napi_value v, uint64_t *out, const char *name);
bool arg_bool(napi_env env, napi_value v, bool *out, const char *name);
/* A Uint8Array (a Buffer is one): its bytes in place, not copied; `what` is the TypeError's message otherwise. */
bool arg_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len, const char *what);
/*
 * Copies a JS string into buf (cap bytes including the NUL; path buffers are PATH_MAX + 1 so every path the kernel
 * could accept fits). Too long → ENAMETOOLONG from `syscall` (what the kernel would say); an embedded NUL →
 * TypeError (the kernel would silently see a shorter path).
 */
bool arg_str(napi_env env, napi_value v, char *buf, size_t cap, const char *name, const char *syscall);
/* Like arg_str, but null/undefined give *out = NULL (mount's optional source/fstype/data). */
bool arg_opt_str(napi_env env, napi_value v, char *buf, size_t cap, const char **out, const char *name,
                 const char *syscall);

napi_value js_undefined(napi_env env);
napi_value js_null(napi_env env);
napi_value js_number(napi_env env, double d);
napi_value js_int(napi_env env, int32_t i);
napi_value js_bool(napi_env env, bool b);

/* Each group registers its functions on exports. */
typedef struct {
  const char *name;
  napi_callback cb;
} strata_fn;

bool register_fns(napi_env env, napi_value exports, const strata_fn *fns, size_t n);

bool init_paths(napi_env env, napi_value exports);
bool init_xattr(napi_env env, napi_value exports);
bool init_mount(napi_env env, napi_value exports);
bool init_btrfs(napi_env env, napi_value exports);
bool init_quota(napi_env env, napi_value exports);
bool init_filewriter(napi_env env, napi_value exports);
bool init_memory(napi_env env, napi_value exports);
bool init_gunzip(napi_env env, napi_value exports);
bool init_unzstd(napi_env env, napi_value exports);
bool init_sha256(napi_env env, napi_value exports);

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

#endif
