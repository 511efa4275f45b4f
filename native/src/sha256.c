/*
 * A SHA-256 that runs on its own thread: the layer's diffID, hashed beside the decompressor instead of after it.
 *
 * Why: the main thread of an unpack decompresses into the apply ring and, until this, hashed every byte it wrote
 * there (Node's crypto, same thread). On the unpack benchmark's node_modules layer (212 MB, zstd) that was 143 ms
 * of the main thread's 410 ms, and the apply worker spent ~230 ms waiting for input: the hash sat on the
 * critical path. Here the main thread only copies the bytes into this hasher's own buffer (38 ms for those 212 MB)
 * and the hash runs on another core: the worker's wait for input fell to ~110 ms, and `snapctl apply` of that
 * layer from 765 to 730 ms (medians of 8, loopback ext4). Where both cores are busy already, it only moves the
 * work. The digest itself is OpenSSL's (EVP, with SHA-NI where the CPU has it), the one Node links and exports to
 * addons; only the thread and its buffer are ours.
 *
 * The buffer is bounded (HS_BYTES): update() waits while it is full, which only happens if hashing falls behind
 * decompression. Bytes are hashed in the order given, so the digest is exactly that of the concatenated updates.
 */
#include "common.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define HS_BYTES (4u << 20)
/* Most bytes hashed per lock: large enough to amortize the handoff, small enough to free room early. */
#define HS_RUN (1u << 20)

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t data; /* bytes arrived, or finishing */
  pthread_cond_t room; /* bytes hashed */
  pthread_t thread;
  bool started;
  bool finishing; /* no more updates: hash what is left, then end */
  bool cancel;    /* stop now; the digest is not wanted */
  bool done;      /* digest() was called: the handle is spent */
  uint64_t head;  /* bytes copied in */
  uint64_t tail;  /* bytes hashed */
  EVP_MD_CTX *ctx;
  bool failed; /* an EVP call failed (it does not, for SHA-256, but its return is checked) */
  unsigned char *buf;
} hasher;

static void *hs_thread(void *arg) {
  hasher *h = arg;
  pthread_mutex_lock(&h->mu);
  for (;;) {
    while (h->tail == h->head && !h->finishing && !h->cancel) pthread_cond_wait(&h->data, &h->mu);
    if (h->cancel || h->tail == h->head) break; /* cancelled, or finishing with nothing left */
    uint64_t n = h->head - h->tail;
    size_t at = (size_t)(h->tail % HS_BYTES);
    if (n > HS_BYTES - at) n = HS_BYTES - at;
    if (n > HS_RUN) n = HS_RUN;
    pthread_mutex_unlock(&h->mu);
    /* The producer never writes into [tail, head): these bytes are stable while the lock is dropped. */
    bool ok = EVP_DigestUpdate(h->ctx, h->buf + at, (size_t)n) == 1;
    pthread_mutex_lock(&h->mu);
    if (!ok) h->failed = true;
    h->tail += n;
    pthread_cond_signal(&h->room);
  }
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

/* Stops the thread (finishing or cancelling first, as the caller set) and waits for it. */
static void hs_join(hasher *h) {
  if (!h->started) return;
  pthread_join(h->thread, NULL);
  h->started = false;
}

static void hs_cancel(hasher *h) {
  pthread_mutex_lock(&h->mu);
  h->cancel = true;
  pthread_cond_signal(&h->data);
  pthread_cond_signal(&h->room);
  pthread_mutex_unlock(&h->mu);
  hs_join(h);
}

static void hs_finalize(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  hasher *h = data;
  hs_cancel(h);
  EVP_MD_CTX_free(h->ctx);
  free(h->buf);
  pthread_mutex_destroy(&h->mu);
  pthread_cond_destroy(&h->data);
  pthread_cond_destroy(&h->room);
  free(h);
}

/* The handle in v; a spent one (digest taken, or closed) is refused unless allow_spent. */
static hasher *get_hasher(napi_env env, napi_value v, bool allow_spent) {
  void *data = NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok || data == NULL) {
    throw_type(env, "The \"hasher\" argument must be a sha256 hasher handle");
    return NULL;
  }
  hasher *h = data;
  if (h->done && !allow_spent) {
    napi_throw_error(env, "ERR_INVALID_STATE", "sha256: the hasher is spent (its digest was taken, or it was closed)");
    return NULL;
  }
  return h;
}

/* After the thread has stopped: the handle is spent and its buffer goes now, not at garbage collection. */
static void hs_spend(hasher *h) {
  h->done = true;
  free(h->buf);
  h->buf = NULL;
}

/* sha256Create() → handle */
static napi_value js_create(napi_env env, napi_callback_info info) {
  (void)info;
  hasher *h = calloc(1, sizeof *h);
  if (h == NULL) return throw_errno(env, ENOMEM, "sha256Create", "", NULL);
  pthread_mutex_init(&h->mu, NULL);
  pthread_cond_init(&h->data, NULL);
  pthread_cond_init(&h->room, NULL);
  h->buf = malloc(HS_BYTES);
  h->ctx = EVP_MD_CTX_new();
  if (h->buf == NULL || h->ctx == NULL || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
    hs_finalize(env, h, NULL);
    return throw_errno(env, ENOMEM, "sha256Create", "", NULL);
  }
  int rc = pthread_create(&h->thread, NULL, hs_thread, h);
  if (rc != 0) {
    hs_finalize(env, h, NULL);
    return throw_errno(env, rc, "pthread_create", "", NULL);
  }
  h->started = true;
  napi_value ext;
  if (napi_create_external(env, h, hs_finalize, NULL, &ext) != napi_ok) {
    hs_finalize(env, h, NULL);
    return NULL;
  }
  return ext;
}

/* sha256Update(hasher, bytes): copies bytes in (waiting for room while the thread catches up). */
static napi_value js_update(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint8_t *data;
  size_t len;
  if (!get_args(env, info, 2, argv)) return NULL;
  hasher *h = get_hasher(env, argv[0], false);
  if (h == NULL || !arg_bytes(env, argv[1], &data, &len, "The \"bytes\" argument must be a Uint8Array")) return NULL;
  while (len > 0) {
    pthread_mutex_lock(&h->mu);
    while (h->head - h->tail == HS_BYTES && !h->cancel) pthread_cond_wait(&h->room, &h->mu);
    if (h->cancel) {
      pthread_mutex_unlock(&h->mu);
      break;
    }
    uint64_t head = h->head;
    size_t room = HS_BYTES - (size_t)(head - h->tail);
    pthread_mutex_unlock(&h->mu);
    size_t at = (size_t)(head % HS_BYTES);
    size_t n = len;
    if (n > room) n = room;
    if (n > HS_BYTES - at) n = HS_BYTES - at;
    /* Only this thread moves head, and the hasher reads below it: [head, head + n) is ours to fill unlocked. */
    memcpy(h->buf + at, data, n);
    data += n;
    len -= n;
    pthread_mutex_lock(&h->mu);
    h->head += n;
    pthread_cond_signal(&h->data);
    pthread_mutex_unlock(&h->mu);
  }
  return js_undefined(env);
}

/* sha256Digest(hasher) → lowercase hex of the digest of every byte given; the handle is spent. */
static napi_value js_digest(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  hasher *h = get_hasher(env, argv[0], false);
  if (h == NULL) return NULL;
  pthread_mutex_lock(&h->mu);
  h->finishing = true;
  pthread_cond_signal(&h->data);
  pthread_mutex_unlock(&h->mu);
  hs_join(h);
  hs_spend(h);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (h->failed || EVP_DigestFinal_ex(h->ctx, md, &mdlen) != 1 || mdlen != 32) {
    return throw_errno(env, EIO, "sha256", "OpenSSL's SHA-256 failed", NULL);
  }
  static const char hex[] = "0123456789abcdef";
  char out[65];
  for (int i = 0; i < 32; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  napi_value s;
  if (napi_create_string_latin1(env, out, 64, &s) != napi_ok) return NULL;
  return s;
}

/* sha256Close(hasher): the digest is not wanted: stops the thread now and frees the buffer (not at GC). */
static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  hasher *h = get_hasher(env, argv[0], true);
  if (h == NULL) return NULL;
  hs_cancel(h);
  hs_spend(h);
  return js_undefined(env);
}

bool init_sha256(napi_env env, napi_value exports) {
  static const strata_fn fns[] = {
      {"sha256Create", js_create},
      {"sha256Update", js_update},
      {"sha256Digest", js_digest},
      {"sha256Close", js_close},
  };
  return register_fns(env, exports, fns, COUNT_OF(fns));
}
