/*
 * Fuzz target: the PID file reader (pidfile.c, portalock_read_pid), through the file system
 * as its callers use it.
 *
 * The first byte chooses what is at the path: a regular file holding the rest of the input
 * (most inputs), a directory, an empty FIFO, nothing, or a symbolic link to a regular file
 * holding the rest of the input (never followed: a symlink is no PID file, so it reads as
 * 0 whatever its target holds). The result must be what the
 * documented rule gives (CONTRACT.md: "a positive integer or nil (strict: ASCII digits only)"):
 * blanks around one run of 1 to 20 ASCII digits, a value in 1..LONG_MAX, the whole file
 * shorter than 64 bytes; anything else reads as 0. No descriptor may stay open.
 */
#include "private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_input.h"

static char dir[64], path[96], target[96];

/* Removes whatever the last input left at the path (and a symlink's target). */
static void clear_path(void) {
  if (unlink(path) != 0 && errno == EISDIR) rmdir(path);
  unlink(target);
}

static void remove_dir(void) {
  clear_path();
  rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  snprintf(dir, sizeof dir, "/tmp/portalock-fuzz-pidfile.XXXXXX");
  if (mkdtemp(dir) == NULL) fz_fail("mkdtemp: %s", strerror(errno));
  snprintf(path, sizeof path, "%s/app.pid", dir);
  snprintf(target, sizeof target, "%s/target.pid", dir);
  atexit(remove_dir);
  return 0;
}

static int blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* The documented reading of `len` bytes of a PID file. */
static long expected_pid(const char *s, size_t len) {
  if (len == 0 || len >= 64) return 0;
  size_t a = 0, b = len;
  while (a < b && blank(s[a]))
    a++;
  while (b > a && blank(s[b - 1]))
    b--;
  if (b - a < 1 || b - a > 20) return 0;
  unsigned long long v = 0;
  for (size_t i = a; i < b; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    if (v > (ULLONG_MAX - 9) / 10) return 0;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  return v >= 1 && v <= LONG_MAX ? (long)v : 0;
}

/* The lowest free descriptor number: a descriptor left open takes it. */
/* Writes the rest of the input into a new regular file `file`. */
static void write_file(const char *file, const fz_input *in) {
  int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || write(fd, in->data, in->size) != (ssize_t)in->size || close(fd) != 0)
    fz_fail("writing %s: %s", file, strerror(errno));
}

static int lowest_free_descriptor(void) {
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd < 0) fz_fail("open /dev/null: %s", strerror(errno));
  close(fd);
  return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_input in = {data, size};
  unsigned kind = fz_byte(&in) % 16;
  clear_path();
  long expected = 0;
  if (kind == 1) {
    if (mkdir(path, 0700) != 0) fz_fail("mkdir %s: %s", path, strerror(errno));
  } else if (kind == 2) {
    if (mkfifo(path, 0600) != 0) fz_fail("mkfifo %s: %s", path, strerror(errno));
  } else if (kind == 4) {
    write_file(target, &in);
    if (symlink(target, path) != 0) fz_fail("symlink %s: %s", path, strerror(errno));
  } else if (kind != 3) {
    write_file(path, &in);
    expected = expected_pid((const char *)in.data, in.size);
  }
  int before = lowest_free_descriptor();
  long pid = portalock_read_pid(path);
  if (pid != expected)
    fz_fail("read_pid of a %s of %zu bytes gave %ld, expected %ld",
            kind == 1   ? "directory"
            : kind == 2 ? "FIFO"
            : kind == 3 ? "missing file"
            : kind == 4 ? "symlink to a file"
                        : "file",
            in.size, pid, expected);
  if (lowest_free_descriptor() != before) fz_fail("read_pid left a descriptor open");
  return 0;
}
