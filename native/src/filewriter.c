/*
 * The file writer: threads that finish the applier's regular files — write the data, then owner, mode, xattrs,
 * times, an optional fsync, close — while the apply worker goes on to the next tar entry.
 *
 * Why in C and why threads: a layer is mostly small files, and for each one the applier made six syscalls from
 * JavaScript (openat2, write, fchown, fchmod, utimensat, close), one tar entry after the other on one thread. Only
 * the create must stay in archive order (it names the path; a later entry may replace or link it); what follows
 * touches nothing but the open fd, so it can run anywhere, later, in parallel, without changing the result.
 * Measured on the unpack benchmark (bench/unpack): this is where GNU tar, single-threaded, can be beaten.
 *
 * Each job owns a copy of its data (the caller's buffer is the decompression ring, which moves on), so queued
 * bytes are bounded (max_bytes): submit() blocks the apply worker while the threads catch up. The first failure
 * is kept (errno, syscall, file name) and thrown by the next submit() or by drain(); after it, queued jobs only
 * close their fds. The handle's finalizer stops the threads and closes what is left, whatever happened in JS.
 */
#include "common.h"

#include <errno.h>
#include <sys/resource.h>
#include <linux/limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define FW_MAX_THREADS 8
#define FW_JOB_OVERHEAD 256 /* bytes counted per job on top of its data, so empty files are bounded too */
/*
 * Jobs are handed over in batches: waking a sleeping thread per file made the apply worker and the writers
 * preempt each other ~20,000 times on a 42k-file layer (2 vCPUs), costing more than the work moved. The writers
 * are woken once FW_BATCH jobs or a quarter of the byte budget wait, or when the caller drains, and each takes
 * up to FW_BATCH jobs per lock.
 */
#define FW_BATCH 64
#define FW_NICE 10

enum { FW_CHOWN = 1, FW_FSYNC = 2, FW_PART = 4, FW_SERIAL = 8 };

typedef struct fw_job {
  struct fw_job *next;
  int fd;
  int flags;
  int64_t position; /* file offset of the data (a large file arrives as several parts) */
  uint32_t uid, gid, mode;
  struct timespec times[2];
  size_t len;    /* file data at buf */
  uint32_t nx;   /* xattrs after the data: name NUL, u32 value length, value */
  size_t cost;   /* what the job counts against max_bytes */
  char *name;    /* the entry's path, for errors */
  unsigned char buf[];
} fw_job;

typedef struct {
  fw_job *head, *tail;
} fw_queue;

typedef struct fw_writer fw_writer;

typedef struct {
  fw_writer *w;
  int index;
} fw_thread_arg;

/*
 * Two queues: small files, whole, go to any thread; a large file comes as parts (FW_PART: data at an offset)
 * and a final job (metadata, close), which must run in order, so they go to the serial queue, which only
 * thread 0 serves.
 */
struct fw_writer {
  pthread_mutex_t mu;
  pthread_cond_t work, room, idle;
  fw_queue any, serial;
  size_t queued, max_bytes;
  int pending; /* queued or running */
  int unsignaled; /* jobs queued since the writers were last woken */
  bool room_waiter, idle_waiter;
  uint64_t room_wait_ns; /* time submit() spent waiting for the threads: they, not the caller, were behind */
  int nthreads;
  pthread_t threads[FW_MAX_THREADS];
  fw_thread_arg args[FW_MAX_THREADS];
  bool stopping;
  int err;
  const char *err_call;
  char *err_name;
};

static int run_job(fw_job *j, const char **call) {
  size_t off = 0;
  while (off < j->len) {
    ssize_t w = pwrite(j->fd, j->buf + off, j->len - off, (off_t)(j->position + (int64_t)off));
    if (w < 0) {
      if (errno == EINTR) continue;
      *call = "write";
      return errno;
    }
    off += (size_t)w;
  }
  if (j->flags & FW_PART) return 0;
  /*
   * Owner first: the kernel clears setuid/setgid and file capabilities on chown, so mode and xattrs follow.
   * Each is skipped when the new file already has it (root's own files, created with their mode): on btrfs
   * every fchown/fchmod is a transaction and an inode update, and skipping the no-op ones took ~2 of the 5
   * metadata calls off most files. The fstat answers from the inode in memory.
   */
  struct stat st;
  bool known = fstat(j->fd, &st) == 0;
  bool chowned = false;
  if ((j->flags & FW_CHOWN) && !(known && st.st_uid == j->uid && st.st_gid == j->gid)) {
    if (fchown(j->fd, j->uid, j->gid) < 0) return *call = "fchown", errno;
    chowned = true;
  }
  if ((chowned || !known || (st.st_mode & 07777) != j->mode) && fchmod(j->fd, j->mode) < 0) return *call = "fchmod", errno;
  const unsigned char *x = j->buf + j->len;
  for (uint32_t i = 0; i < j->nx; i++) {
    const char *name = (const char *)x;
    x += strlen(name) + 1;
    uint32_t vlen;
    memcpy(&vlen, x, sizeof vlen);
    x += sizeof vlen;
    if (fsetxattr(j->fd, name, x, vlen, 0) < 0) return *call = "fsetxattr", errno;
    x += vlen;
  }
  if (futimens(j->fd, j->times) < 0) return *call = "futimens", errno;
  if ((j->flags & FW_FSYNC) && fsync(j->fd) < 0) return *call = "fsync", errno;
  return 0;
}

/* Wakes the writers for what is queued (lock held). */
static void fw_kick(fw_writer *w) {
  if (w->unsignaled == 0) return;
  w->unsignaled = 0;
  pthread_cond_broadcast(&w->work);
}

/* The queue thread `index` takes from next, or NULL (lock held). */
static fw_queue *fw_queue_for(fw_writer *w, int index) {
  if (index == 0 && w->serial.head != NULL) return &w->serial;
  return w->any.head != NULL ? &w->any : NULL;
}

static void *fw_thread(void *arg) {
  /*
   * Below the applier's thread: it parses and creates every entry in order and is the unpack's critical path,
   * while this queue is bounded (when it is full the applier waits and the writers get the CPU). On the 2-core
   * benchmark machine, six interleaved runs of the 691 MB image on btrfs: 7.66 s mean at nice 10, 8.04 s at 0.
   * Linux nice is per thread; under cgroup v2 it only orders threads within the daemon's own cgroup.
   */
  (void)setpriority(PRIO_PROCESS, (id_t)gettid(), FW_NICE);
  fw_writer *w = ((fw_thread_arg *)arg)->w;
  int index = ((fw_thread_arg *)arg)->index;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    fw_queue *q;
    while ((q = fw_queue_for(w, index)) == NULL && !w->stopping) pthread_cond_wait(&w->work, &w->mu);
    if (q == NULL) break;
    fw_job *batch = q->head;
    fw_job *last = batch;
    for (int n = 1; n < FW_BATCH && last->next != NULL; n++) last = last->next;
    q->head = last->next;
    if (q->head == NULL) q->tail = NULL;
    last->next = NULL;
    bool failed = w->err != 0;
    pthread_mutex_unlock(&w->mu);

    int err = 0;
    const char *call = NULL;
    char *err_name = NULL;
    size_t cost = 0;
    int done = 0;
    for (fw_job *j = batch, *next; j != NULL; j = next) {
      next = j->next;
      if (!failed && err == 0) {
        err = run_job(j, &call);
        if (err != 0) err_name = j->name, j->name = NULL;
      }
      /* A part leaves the fd open for the file's next job; the final job closes it, failed or not. */
      if (!(j->flags & FW_PART) && close(j->fd) < 0 && !failed && err == 0 && errno != EINTR) {
        err = errno, call = "close", err_name = j->name, j->name = NULL;
      }
      cost += j->cost;
      done++;
      free(j->name);
      free(j);
    }

    pthread_mutex_lock(&w->mu);
    if (err != 0 && w->err == 0) {
      w->err = err;
      w->err_call = call;
      w->err_name = err_name;
      err_name = NULL;
    }
    free(err_name);
    w->queued -= cost;
    w->pending -= done;
    if (w->room_waiter) pthread_cond_signal(&w->room);
    if (w->pending == 0 && w->idle_waiter) pthread_cond_broadcast(&w->idle);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

/* Stops the threads after the queue is empty (each remaining job still closes its fd). */
static void fw_stop(fw_writer *w) {
  pthread_mutex_lock(&w->mu);
  w->stopping = true;
  w->unsignaled = 0;
  pthread_cond_broadcast(&w->work);
  pthread_mutex_unlock(&w->mu);
  for (int i = 0; i < w->nthreads; i++) pthread_join(w->threads[i], NULL);
  w->nthreads = 0;
}

/* Nobody will read the result from here on: queued jobs skip their work and only close their fds. */
static void fw_cancel(fw_writer *w) {
  pthread_mutex_lock(&w->mu);
  if (w->err == 0) w->err = ECANCELED;
  pthread_mutex_unlock(&w->mu);
  fw_stop(w);
}

static void fw_finalize(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  fw_writer *w = data;
  fw_cancel(w);
  free(w->err_name);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->work);
  pthread_cond_destroy(&w->room);
  pthread_cond_destroy(&w->idle);
  free(w);
}

static fw_writer *get_writer(napi_env env, napi_value v) {
  void *data = NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok || data == NULL) {
    throw_type(env, "The \"writer\" argument must be a file writer handle");
    return NULL;
  }
  return data;
}

/* The writer of a call whose only argument is one. */
static fw_writer *only_writer_arg(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  return get_writer(env, argv[0]);
}

/* Throws the kept failure, if any (lock held by the caller). */
static bool fw_check(napi_env env, fw_writer *w) {
  if (w->err == 0) return true;
  throw_errno(env, w->err, w->err_call ? w->err_call : "write", w->err_name ? w->err_name : "", NULL);
  return false;
}

/* fileWriterCreate(threads, maxQueuedBytes) → handle */
static napi_value js_create(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint32_t threads;
  uint64_t max_bytes;
  if (!get_args(env, info, 2, argv) || !arg_u32(env, argv[0], &threads, "threads") ||
      !arg_u64(env, argv[1], &max_bytes, "maxQueuedBytes"))
    return NULL;
  if (threads < 1 || threads > FW_MAX_THREADS) return throw_range(env, "threads must be 1 to 8");
  fw_writer *w = calloc(1, sizeof *w);
  if (w == NULL) return throw_errno(env, ENOMEM, "fileWriterCreate", "", NULL);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->work, NULL);
  pthread_cond_init(&w->room, NULL);
  pthread_cond_init(&w->idle, NULL);
  w->max_bytes = (size_t)max_bytes;
  for (uint32_t i = 0; i < threads; i++) {
    w->args[i] = (fw_thread_arg){.w = w, .index = (int)i};
    int rc = pthread_create(&w->threads[i], NULL, fw_thread, &w->args[i]);
    if (rc != 0) {
      fw_finalize(env, w, NULL);
      return throw_errno(env, rc, "pthread_create", "", NULL);
    }
    w->nthreads++;
  }
  napi_value ext;
  if (napi_create_external(env, w, fw_finalize, NULL, &ext) != napi_ok) {
    fw_finalize(env, w, NULL);
    return NULL;
  }
  return ext;
}

/*
 * fileWriterSubmit(writer, fd, data, offset, length, position, flags, uid, gid, mode, aSec, aNsec, mSec, mNsec,
 * xattrs, name). xattrs: null or an array of [name, Buffer]. A final job (no FW_PART) owns the fd from here on,
 * even when this throws; a part never closes it.
 */
static napi_value js_submit(napi_env env, napi_callback_info info) {
  napi_value argv[16];
  int32_t fd, flags;
  uint64_t off, len, position;
  uint32_t uid, gid, mode;
  int64_t asec, ansec, msec, mnsec;
  if (!get_args(env, info, 16, argv)) return NULL;
  fw_writer *w = get_writer(env, argv[0]);
  if (w == NULL || !arg_i32(env, argv[1], &fd, "fd") || !arg_i32(env, argv[6], &flags, "flags")) return NULL;
#define FW_DROP_FD() ((flags & FW_PART) ? 0 : close(fd))
  if (!arg_u64(env, argv[3], &off, "offset") || !arg_u64(env, argv[4], &len, "length") ||
      !arg_u64(env, argv[5], &position, "position") || !arg_u32(env, argv[7], &uid, "uid") ||
      !arg_u32(env, argv[8], &gid, "gid") || !arg_u32(env, argv[9], &mode, "mode") ||
      !arg_i64(env, argv[10], &asec, "atimeSec") || !arg_i64(env, argv[11], &ansec, "atimeNsec") ||
      !arg_i64(env, argv[12], &msec, "mtimeSec") || !arg_i64(env, argv[13], &mnsec, "mtimeNsec")) {
    FW_DROP_FD();
    return NULL;
  }

  const unsigned char *data = NULL;
  if (len > 0) {
    uint8_t *p = NULL;
    size_t blen = 0;
    if (!arg_bytes(env, argv[2], &p, &blen, "The \"data\" argument must be a Uint8Array")) {
      FW_DROP_FD();
      return NULL;
    }
    if (off > blen || len > blen - off) {
      FW_DROP_FD();
      return throw_range(env, "offset/length outside the data");
    }
    data = p + off;
  }

  /* xattrs: measure, then copy after the data. */
  uint32_t nx = 0;
  size_t xbytes = 0;
  napi_valuetype xt;
  napi_typeof(env, argv[14], &xt);
  if (xt != napi_null && xt != napi_undefined) {
    if (napi_get_array_length(env, argv[14], &nx) != napi_ok) {
      FW_DROP_FD();
      return throw_type(env, "The \"xattrs\" argument must be an array or null");
    }
  }
  char name[PATH_MAX + 1];
  if (!arg_str(env, argv[15], name, sizeof name, "name", "fileWriterSubmit")) {
    FW_DROP_FD();
    return NULL;
  }
  /* Values are read twice (size, copy); keep them in a small array of refs to their storage. */
  struct {
    char key[XATTR_NAME_MAX + 1];
    void *val;
    size_t vlen;
  } *xs = nx ? calloc(nx, sizeof *xs) : NULL;
  if (nx && xs == NULL) {
    FW_DROP_FD();
    return throw_errno(env, ENOMEM, "fileWriterSubmit", name, NULL);
  }
  for (uint32_t i = 0; i < nx; i++) {
    napi_value pair, k, v;
    if (napi_get_element(env, argv[14], i, &pair) != napi_ok || napi_get_element(env, pair, 0, &k) != napi_ok ||
        napi_get_element(env, pair, 1, &v) != napi_ok ||
        !arg_str(env, k, xs[i].key, sizeof xs[i].key, "xattr name", "fsetxattr") ||
        napi_get_buffer_info(env, v, &xs[i].val, &xs[i].vlen) != napi_ok) {
      free(xs);
      FW_DROP_FD();
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      return pending ? NULL : throw_type(env, "xattrs must be [name, Buffer] pairs");
    }
    xbytes += strlen(xs[i].key) + 1 + sizeof(uint32_t) + xs[i].vlen;
  }

  fw_job *j = malloc(sizeof *j + len + xbytes);
  char *jname = strdup(name);
  if (j == NULL || jname == NULL) {
    free(j), free(jname), free(xs);
    FW_DROP_FD();
    return throw_errno(env, ENOMEM, "fileWriterSubmit", name, NULL);
  }
  j->next = NULL;
  j->fd = fd;
  j->flags = flags;
  j->position = (int64_t)position;
  j->uid = uid, j->gid = gid, j->mode = mode;
  j->times[0] = (struct timespec){.tv_sec = asec, .tv_nsec = (long)ansec};
  j->times[1] = (struct timespec){.tv_sec = msec, .tv_nsec = (long)mnsec};
  j->len = (size_t)len;
  j->nx = nx;
  j->name = jname;
  j->cost = FW_JOB_OVERHEAD + len + xbytes;
  if (len) memcpy(j->buf, data, len);
  unsigned char *x = j->buf + len;
  for (uint32_t i = 0; i < nx; i++) {
    size_t kl = strlen(xs[i].key) + 1;
    memcpy(x, xs[i].key, kl);
    x += kl;
    uint32_t vl = (uint32_t)xs[i].vlen;
    memcpy(x, &vl, sizeof vl);
    x += sizeof vl;
    memcpy(x, xs[i].val, xs[i].vlen);
    x += xs[i].vlen;
  }
  free(xs);

  pthread_mutex_lock(&w->mu);
  /* A job larger than the whole budget still goes through, alone. */
  if (w->err == 0 && w->pending > 0 && w->queued + j->cost > w->max_bytes) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (w->err == 0 && w->pending > 0 && w->queued + j->cost > w->max_bytes) {
      fw_kick(w);
      w->room_waiter = true;
      pthread_cond_wait(&w->room, &w->mu);
      w->room_waiter = false;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    w->room_wait_ns += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
  }
  bool ok = fw_check(env, w);
  if (ok) {
    w->queued += j->cost;
    w->pending++;
    fw_queue *q = (flags & FW_SERIAL) ? &w->serial : &w->any;
    if (q->tail) q->tail->next = j;
    else q->head = j;
    q->tail = j;
    if (++w->unsignaled >= FW_BATCH || w->queued >= w->max_bytes / 4) fw_kick(w);
  }
  pthread_mutex_unlock(&w->mu);
  if (!ok) {
    FW_DROP_FD();
    free(j->name);
    free(j);
    return NULL;
  }
  return js_undefined(env);
#undef FW_DROP_FD
}

/* fileWriterDrain(writer): waits until every submitted file is finished; throws the first failure. */
static napi_value js_drain(napi_env env, napi_callback_info info) {
  fw_writer *w = only_writer_arg(env, info);
  if (w == NULL) return NULL;
  pthread_mutex_lock(&w->mu);
  fw_kick(w);
  while (w->pending > 0) {
    w->idle_waiter = true;
    pthread_cond_wait(&w->idle, &w->mu);
  }
  w->idle_waiter = false;
  bool ok = fw_check(env, w);
  pthread_mutex_unlock(&w->mu);
  return ok ? js_undefined(env) : NULL;
}

/* fileWriterWaitMs(writer): how long submit() has waited for room, in milliseconds. */
static napi_value js_wait_ms(napi_env env, napi_callback_info info) {
  fw_writer *w = only_writer_arg(env, info);
  if (w == NULL) return NULL;
  pthread_mutex_lock(&w->mu);
  double ms = (double)w->room_wait_ns / 1e6;
  pthread_mutex_unlock(&w->mu);
  return js_number(env, ms);
}

/*
 * fileWriterClose(writer): stops the threads now (queued jobs only close their fds); later submits fail with
 * ECANCELED. A worker that outlives its apply (src/unpack/worker-pool.ts) would otherwise keep the threads and
 * their malloc arenas until its garbage collector reached the handle.
 */
static napi_value js_close(napi_env env, napi_callback_info info) {
  fw_writer *w = only_writer_arg(env, info);
  if (w == NULL) return NULL;
  fw_cancel(w);
  return js_undefined(env);
}

bool init_filewriter(napi_env env, napi_value exports) {
  static const strata_fn fns[] = {
      {"fileWriterCreate", js_create},
      {"fileWriterSubmit", js_submit},
      {"fileWriterDrain", js_drain},
      {"fileWriterWaitMs", js_wait_ms},
      {"fileWriterClose", js_close},
  };
  return register_fns(env, exports, fns, COUNT_OF(fns));
}
