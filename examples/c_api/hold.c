/*
 * hold: take a portalock Lock on a file, keep it for a while, release it.
 *
 *   hold PATH [SECONDS]
 *
 * Waits up to 10 seconds for the lock. Exit status: 0 after a clean hold, 1 when another
 * holder kept the lock past the timeout, 2 on any other failure, 64 on bad usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <portalock.h>

static int fail(const char *what, const portalock_error *err) {
  fprintf(stderr, "hold: %s: %s (%s)\n", what, err->message, portalock_status_name(err->status));
  return err->status == PORTALOCK_ALREADY_LOCKED ? 1 : 2;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: hold PATH [SECONDS]\n");
    return 64;
  }
  double seconds = argc == 3 ? strtod(argv[2], NULL) : 0.0;

  portalock_lock_options opts;
  portalock_lock_options_init(&opts); /* exclusive, flock backend, mode "a" */
  opts.timeout = 10;

  portalock_error err;
  portalock_lock_t *lock;
  if (portalock_lock_new(&lock, argv[1], &opts, &err) != PORTALOCK_OK) return fail(argv[1], &err);
  if (portalock_lock_acquire(lock, &err) != PORTALOCK_OK) {
    portalock_lock_free(lock);
    return fail(argv[1], &err);
  }
  printf("holding %s (portalock %s)\n", portalock_lock_filename(lock), portalock_version());
  fflush(stdout);

  if (seconds > 0) {
    struct timespec ts = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
  }

  int status = 0;
  if (portalock_lock_release(lock, &err) != PORTALOCK_OK)
    status = fail(argv[1], &err);
  else
    printf("released %s\n", argv[1]);
  portalock_lock_free(lock);
  return status;
}
