/*
 * Fuzz target: the /proc/locks line parser (status.c, pl_parse_line).
 *
 * Every input is used twice:
 *   - as a whole table, read line by line as portalock_lock_holders reads the kernel's file
 *     (each line with its '\n', NUL bytes included, in a buffer of exactly its size): a line
 *     may parse or not, but nothing outside it may be touched and what parses must be sane;
 *   - as the fields of one lock, printed the way fs/locks.c prints them (with varying
 *     blanks, case and flag words): that line must parse back to exactly those fields, and a
 *     lock without an inode ("<none>:0") must not parse.
 */
#include "private.h"

#include "fuzz_input.h"

static void check_sane(const pl_lock_line *l) {
  if ((l->holder.exclusive != 0 && l->holder.exclusive != 1) ||
      (l->holder.waiting != 0 && l->holder.waiting != 1) || l->holder.type[0] == '\0' ||
      memchr(l->holder.type, '\0', sizeof l->holder.type) == NULL)
    fz_fail("parsed holder: exclusive %d, waiting %d, type \"%.8s\"", l->holder.exclusive,
            l->holder.waiting, l->holder.type);
}

static void parse_table(const uint8_t *data, size_t size) {
  size_t start = 0;
  while (start < size) {
    const uint8_t *nl = memchr(data + start, '\n', size - start);
    size_t len = nl != NULL ? (size_t)(nl - (data + start)) + 1 : size - start;
    char *line = malloc(len + 1);
    if (line == NULL) return;
    memcpy(line, data + start, len);
    line[len] = '\0';
    pl_lock_line parsed;
    if (pl_parse_line(line, &parsed) == 0) check_sane(&parsed);
    free(line);
    start += len;
  }
}

/* Appends one to three blanks, as chosen by the input. */
static int put_blanks(char *buf, int n, fz_input *in) {
  unsigned b = fz_byte(in);
  int count = 1 + (int)(b % 3);
  for (int i = 0; i < count; i++)
    buf[n++] = (b & 0x80) && i == 0 ? '\t' : ' ';
  return n;
}

static void parse_printed(fz_input *in) {
  static const char *const types[] = {"FLOCK", "POSIX", "OFDLCK", "ACCESS", "LEASE", "DELEG"};
  static const char *const flags[] = {"ADVISORY", "MANDATORY", "MSNFS",  "ACTIVE",
                                      "BREAKING", "BREAKER",   "UNKNOWN"};
  static const char *const access[] = {"READ", "WRITE", "UNLCK"};
  unsigned long long id = fz_uint(in, 8) >> 1;
  int depth = (int)(fz_byte(in) % 4);
  const char *type = types[fz_byte(in) % 6];
  int nflags = (int)(fz_byte(in) % 4);
  const char *acc = access[fz_byte(in) % 3];
  long pid = (long)(int32_t)fz_uint(in, 4);
  unsigned long long major = fz_uint(in, 4), minor = fz_uint(in, 4), ino = fz_uint(in, 8);
  unsigned shape = fz_byte(in);
  int no_inode = shape % 8 == 0;
  const char *hex = shape & 0x10 ? "%02llX:%02llX:%llu" : "%02llx:%02llx:%llu";

  char line[512];
  int n = snprintf(line, sizeof line, "%llu:", id);
  n = put_blanks(line, n, in);
  if (depth > 0) {
    for (int i = 1; i < depth; i++) /* newer kernels indent a waiter by its depth */
      line[n++] = ' ';
    n += snprintf(line + n, sizeof line - (size_t)n, "->");
    n = put_blanks(line, n, in);
  }
  n += snprintf(line + n, sizeof line - (size_t)n, "%s", type);
  for (int i = 0; i < nflags; i++) {
    n = put_blanks(line, n, in);
    n += snprintf(line + n, sizeof line - (size_t)n, "%s", flags[fz_byte(in) % 7]);
  }
  n = put_blanks(line, n, in);
  n += snprintf(line + n, sizeof line - (size_t)n, "%s", acc);
  n = put_blanks(line, n, in);
  n += snprintf(line + n, sizeof line - (size_t)n, "%ld", pid);
  n = put_blanks(line, n, in);
  if (no_inode)
    n += snprintf(line + n, sizeof line - (size_t)n, "<none>:0");
  else
    n += snprintf(line + n, sizeof line - (size_t)n, hex, major, minor, ino);
  n = put_blanks(line, n, in);
  snprintf(line + n, sizeof line - (size_t)n, "%llu %s\n", (unsigned long long)fz_uint(in, 4),
           shape & 0x20 ? "EOF" : "9223372036854775807");

  pl_lock_line parsed;
  int r = pl_parse_line(line, &parsed);
  if (no_inode) {
    if (r == 0) fz_fail("a lock without an inode parsed: %s", line);
    return;
  }
  if (r != 0) fz_fail("a line as the kernel prints it did not parse: %s", line);
  check_sane(&parsed);
  if (parsed.holder.pid != pid || parsed.holder.exclusive != (strcmp(acc, "WRITE") == 0) ||
      parsed.holder.waiting != (depth > 0) ||
      strncmp(parsed.holder.type, type, sizeof parsed.holder.type - 1) != 0 ||
      parsed.major != major || parsed.minor != minor || parsed.ino != ino)
    fz_fail("parsed back differently: pid %ld, exclusive %d, waiting %d, type %s, %llx:%llx:%llu "
            "from the line: %s",
            parsed.holder.pid, parsed.holder.exclusive, parsed.holder.waiting, parsed.holder.type,
            parsed.major, parsed.minor, parsed.ino, line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  parse_table(data, size);
  fz_input in = {data, size};
  parse_printed(&in);
  return 0;
}
