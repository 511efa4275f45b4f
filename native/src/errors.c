#include "common.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path, const char *dest) {
  const char *name = strerrorname_np(err);
  char code[32];
  if (name == NULL) {
    snprintf(code, sizeof code, "Unknown system error %d", err);
  } else {
    snprintf(code, sizeof code, "%s", name);
  }
  /* libuv's messages are strerror's in lower case ("no such file or directory"); match that look. */
  char desc[128];
  snprintf(desc, sizeof desc, "%s", strerror(err));
  desc[0] = (char)tolower((unsigned char)desc[0]);

  /* Paths may be up to PATH_MAX each; a heap-free message keeps the error path simple and bounded. */
  char msg[PATH_MAX * 2 + 256];
  if (path != NULL && dest != NULL) {
    snprintf(msg, sizeof msg, "%s: %s, %s '%s' -> '%s'", code, desc, syscall, path, dest);
  } else if (path != NULL) {
    snprintf(msg, sizeof msg, "%s: %s, %s '%s'", code, desc, syscall, path);
  } else {
    snprintf(msg, sizeof msg, "%s: %s, %s", code, desc, syscall);
  }

  napi_value js_code, js_msg, error, v;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &js_code) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &js_msg) != napi_ok ||
      napi_create_error(env, js_code, js_msg, &error) != napi_ok) {
    napi_throw_error(env, code, msg);
    return NULL;
  }
  /* Node reports errno as the negative number (libuv's convention). */
  if (napi_create_int32(env, -err, &v) == napi_ok) napi_set_named_property(env, error, "errno", v);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v) == napi_ok)
    napi_set_named_property(env, error, "syscall", v);
  if (path != NULL && napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &v) == napi_ok)
    napi_set_named_property(env, error, "path", v);
  if (dest != NULL && napi_create_string_utf8(env, dest, NAPI_AUTO_LENGTH, &v) == napi_ok)
    napi_set_named_property(env, error, "dest", v);
  napi_throw(env, error);
  return NULL;
}

napi_value throw_type(napi_env env, const char *what) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", what);
  return NULL;
}

napi_value throw_range(napi_env env, const char *what) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", what);
  return NULL;
}

bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  /* napi_get_cb_info fills missing slots with undefined, so the converters report them by name. */
  return true;
}

static bool type_error(napi_env env, const char *name, const char *expected) {
  char msg[160];
  snprintf(msg, sizeof msg, "The \"%s\" argument must be %s", name, expected);
  throw_type(env, msg);
  return false;
}

bool arg_i32(napi_env env, napi_value v, int32_t *out, const char *name) {
  if (napi_get_value_int32(env, v, out) != napi_ok) return type_error(env, name, "of type number");
  return true;
}

bool arg_u32(napi_env env, napi_value v, uint32_t *out, const char *name) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) return type_error(env, name, "of type number");
  return true;
}

bool arg_i64(napi_env env, napi_value v, int64_t *out, const char *name) {
  if (napi_get_value_int64(env, v, out) != napi_ok) return type_error(env, name, "of type number");
  return true;
}

bool arg_u64(napi_env env, napi_value v, uint64_t *out, const char *name) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return type_error(env, name, "of type number");
  /* 2^64 itself does not fit; NaN fails both comparisons. */
  if (!(d >= 0 && d < 18446744073709551616.0) || d != (double)(uint64_t)d) {
    char msg[160];
    snprintf(msg, sizeof msg, "The value of \"%s\" is out of range. It must be a non-negative integer", name);
    throw_range(env, msg);
    return false;
  }
  *out = (uint64_t)d;
  return true;
}

bool arg_bool(napi_env env, napi_value v, bool *out, const char *name) {
  if (napi_get_value_bool(env, v, out) != napi_ok) return type_error(env, name, "of type boolean");
  return true;
}

bool arg_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len, const char *what) {
  bool is_ta = false;
  napi_typedarray_type tt;
  napi_value ab;
  size_t boff;
  void *p = NULL;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &tt, len, &p, &ab, &boff) != napi_ok || tt != napi_uint8_array) {
    throw_type(env, what);
    return false;
  }
  *data = p;
  return true;
}

bool arg_str(napi_env env, napi_value v, char *buf, size_t cap, const char *name, const char *syscall) {
  size_t len = 0;
  /* One call into the caller's buffer; a result that fills it completely means the string was cut. */
  if (napi_get_value_string_utf8(env, v, buf, cap, &len) != napi_ok) return type_error(env, name, "of type string");
  if (len + 1 >= cap) {
    throw_errno(env, ENAMETOOLONG, syscall, NULL, NULL);
    return false;
  }
  if (memchr(buf, '\0', len) != NULL) {
    char msg[160];
    snprintf(msg, sizeof msg, "The argument '%s' must be a string without null bytes", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg);
    return false;
  }
  return true;
}

bool arg_opt_str(napi_env env, napi_value v, char *buf, size_t cap, const char **out, const char *name,
                 const char *syscall) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return false;
  if (t == napi_null || t == napi_undefined) {
    *out = NULL;
    return true;
  }
  if (!arg_str(env, v, buf, cap, name, syscall)) return false;
  *out = buf;
  return true;
}

napi_value js_undefined(napi_env env) {
  napi_value v = NULL;
  napi_get_undefined(env, &v);
  return v;
}

napi_value js_null(napi_env env) {
  napi_value v = NULL;
  napi_get_null(env, &v);
  return v;
}

napi_value js_number(napi_env env, double d) {
  napi_value v = NULL;
  napi_create_double(env, d, &v);
  return v;
}

napi_value js_bool(napi_env env, bool b) {
  napi_value v = NULL;
  napi_get_boolean(env, b, &v);
  return v;
}

napi_value js_int(napi_env env, int32_t i) {
  napi_value v = NULL;
  napi_create_int32(env, i, &v);
  return v;
}

bool register_fns(napi_env env, napi_value exports, const strata_fn *fns, size_t n) {
  for (size_t i = 0; i < n; i++) {
    napi_value fn;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &fn) != napi_ok) return false;
    if (napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok) return false;
  }
  return true;
}
