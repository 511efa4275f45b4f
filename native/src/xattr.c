/* Extended attributes on fds and on paths without following a final symlink (overlay whiteouts, capabilities). */
#include "common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

/* Longer than XATTR_NAME_MAX so an oversized name reaches the kernel and fails there with its own ERANGE. */
#define NAME_CAP 512
/* Most attributes (overlay opaque/redirect, security.capability, ACLs) fit here; bigger ones take the heap. */
#define STACK_VALUE 4096

static bool arg_value(napi_env env, napi_value v, void **data, size_t *len) {
  bool is_buffer = false;
  if (napi_is_buffer(env, v, &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, v, data, len) != napi_ok) {
    throw_type(env, "The \"value\" argument must be an instance of Buffer");
    return false;
  }
  return true;
}

static napi_value js_fsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd, flags;
  char name[NAME_CAP];
  void *data;
  size_t len;
  if (!get_args(env, info, 4, argv) || !arg_i32(env, argv[0], &fd, "fd") ||
      !arg_str(env, argv[1], name, sizeof name, "name", "fsetxattr") || !arg_value(env, argv[2], &data, &len) ||
      !arg_i32(env, argv[3], &flags, "flags"))
    return NULL;
  if (fsetxattr(fd, name, data, len, flags) < 0) return throw_errno(env, errno, "fsetxattr", name, NULL);
  return js_undefined(env);
}

static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t flags;
  char path[PATH_MAX + 1], name[NAME_CAP];
  void *data;
  size_t len;
  if (!get_args(env, info, 4, argv) || !arg_str(env, argv[0], path, sizeof path, "path", "lsetxattr") ||
      !arg_str(env, argv[1], name, sizeof name, "name", "lsetxattr") || !arg_value(env, argv[2], &data, &len) ||
      !arg_i32(env, argv[3], &flags, "flags"))
    return NULL;
  if (lsetxattr(path, name, data, len, flags) < 0) return throw_errno(env, errno, "lsetxattr", path, NULL);
  return js_undefined(env);
}

/* One reader for both getters: fd >= 0 uses fgetxattr, else lgetxattr(path). */
static ssize_t get_raw(int fd, const char *path, const char *name, void *buf, size_t size) {
  return fd >= 0 ? fgetxattr(fd, name, buf, size) : lgetxattr(path, name, buf, size);
}

static napi_value get_common(napi_env env, int fd, const char *path, const char *name, const char *syscall) {
  char stack[STACK_VALUE];
  ssize_t n = get_raw(fd, path, name, stack, sizeof stack);
  if (n >= 0) {
    napi_value out;
    if (napi_create_buffer_copy(env, (size_t)n, stack, NULL, &out) != napi_ok) return NULL;
    return out;
  }
  /* ERANGE: larger than the stack buffer. Ask for the size, then read; the value may grow in between. */
  while (errno == ERANGE) {
    ssize_t size = get_raw(fd, path, name, NULL, 0);
    if (size < 0) break;
    void *heap = malloc((size_t)size + 1);
    if (heap == NULL) return throw_errno(env, ENOMEM, syscall, fd >= 0 ? name : path, NULL);
    n = get_raw(fd, path, name, heap, (size_t)size + 1);
    if (n >= 0) {
      napi_value out;
      napi_status s = napi_create_buffer_copy(env, (size_t)n, heap, NULL, &out);
      free(heap);
      return s == napi_ok ? out : NULL;
    }
    int saved = errno;
    free(heap);
    errno = saved;
  }
  if (errno == ENODATA) return js_null(env);
  return throw_errno(env, errno, syscall, fd >= 0 ? name : path, NULL);
}

static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[PATH_MAX + 1], name[NAME_CAP];
  if (!get_args(env, info, 2, argv) || !arg_str(env, argv[0], path, sizeof path, "path", "lgetxattr") ||
      !arg_str(env, argv[1], name, sizeof name, "name", "lgetxattr"))
    return NULL;
  return get_common(env, -1, path, name, "lgetxattr");
}

static napi_value js_fgetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  char name[NAME_CAP];
  if (!get_args(env, info, 2, argv) || !arg_i32(env, argv[0], &fd, "fd") ||
      !arg_str(env, argv[1], name, sizeof name, "name", "fgetxattr"))
    return NULL;
  if (fd < 0) return throw_errno(env, EBADF, "fgetxattr", name, NULL);
  return get_common(env, fd, NULL, name, "fgetxattr");
}

static ssize_t list_raw(int fd, const char *path, char *buf, size_t size) {
  return fd >= 0 ? flistxattr(fd, buf, size) : llistxattr(path, buf, size);
}

/* The kernel returns "name\0name\0..."; turn it into a JS string array. */
static napi_value names_to_array(napi_env env, const char *buf, size_t len) {
  napi_value arr;
  if (napi_create_array(env, &arr) != napi_ok) return NULL;
  uint32_t i = 0;
  for (size_t off = 0; off < len;) {
    size_t n = strnlen(buf + off, len - off);
    if (n > 0) {
      napi_value s;
      if (napi_create_string_utf8(env, buf + off, n, &s) != napi_ok || napi_set_element(env, arr, i++, s) != napi_ok)
        return NULL;
    }
    off += n + 1;
  }
  return arr;
}

static napi_value list_common(napi_env env, int fd, const char *path, const char *syscall) {
  char stack[STACK_VALUE];
  ssize_t n = list_raw(fd, path, stack, sizeof stack);
  if (n >= 0) return names_to_array(env, stack, (size_t)n);
  while (errno == ERANGE) {
    ssize_t size = list_raw(fd, path, NULL, 0);
    if (size < 0) break;
    char *heap = malloc((size_t)size + 1);
    if (heap == NULL) return throw_errno(env, ENOMEM, syscall, path, NULL);
    n = list_raw(fd, path, heap, (size_t)size + 1);
    if (n >= 0) {
      napi_value out = names_to_array(env, heap, (size_t)n);
      free(heap);
      return out;
    }
    int saved = errno;
    free(heap);
    errno = saved;
  }
  return throw_errno(env, errno, syscall, path, NULL);
}

static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char path[PATH_MAX + 1];
  if (!get_args(env, info, 1, argv) || !arg_str(env, argv[0], path, sizeof path, "path", "llistxattr")) return NULL;
  return list_common(env, -1, path, "llistxattr");
}

static napi_value js_flistxattr(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !arg_i32(env, argv[0], &fd, "fd")) return NULL;
  if (fd < 0) return throw_errno(env, EBADF, "flistxattr", NULL, NULL);
  return list_common(env, fd, NULL, "flistxattr");
}

static napi_value js_lremovexattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[PATH_MAX + 1], name[NAME_CAP];
  if (!get_args(env, info, 2, argv) || !arg_str(env, argv[0], path, sizeof path, "path", "lremovexattr") ||
      !arg_str(env, argv[1], name, sizeof name, "name", "lremovexattr"))
    return NULL;
  if (lremovexattr(path, name) < 0) return throw_errno(env, errno, "lremovexattr", path, NULL);
  return js_undefined(env);
}

bool init_xattr(napi_env env, napi_value exports) {
  static const strata_fn fns[] = {
      {"fsetxattr", js_fsetxattr},   {"lsetxattr", js_lsetxattr},   {"lgetxattr", js_lgetxattr},
      {"fgetxattr", js_fgetxattr},   {"llistxattr", js_llistxattr}, {"flistxattr", js_flistxattr},
      {"lremovexattr", js_lremovexattr},
  };
  return register_fns(env, exports, fns, COUNT_OF(fns));
}
