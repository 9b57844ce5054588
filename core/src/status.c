/* Who holds a lock: the system tells (platform.h); Linux by the lines of /proc/locks, which
 * are parsed here. */
#include "private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/platform.h"

static int pl_is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The next whitespace-separated token at *pos: its start (NUL-terminated in place), or NULL
 * at the end of the line. */
static char *pl_token(char **pos) {
  char *p = *pos;
  while (*p != '\0' && pl_is_blank(*p))
    p++;
  if (*p == '\0') {
    *pos = p;
    return NULL;
  }
  char *start = p;
  while (*p != '\0' && !pl_is_blank(*p))
    p++;
  if (*p != '\0') *p++ = '\0';
  *pos = p;
  return start;
}

/* An unsigned number in `base` at `s` (no sign, no blanks) that ends at one of the characters
 * of `stop` (the string's NUL included). 0 with *end past it, or -1. */
static int pl_parse_number(const char *s, int base, const char *stop, unsigned long long *out,
                           const char **end) {
  char c = *s;
  int digit =
      (c >= '0' && c <= '9') || (base == 16 && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
  if (!digit) return -1;
  char *e;
  errno = 0;
  unsigned long long v = strtoull(s, &e, base);
  if (errno != 0 || strchr(stop, *e) == NULL) return -1;
  *out = v;
  *end = e;
  return 0;
}

/*
 * Parses a line as fs/locks.c (lock_get_status) prints it:
 *   "<id>: [->] <TYPE> <flags...> <READ|WRITE|UNLCK> <pid> <maj>:<min>:<ino> <start> <end>"
 * where <maj>:<min> is "%02x:%02x" (hex, possibly longer than two digits) and <ino> decimal.
 * Waiters have "->" after the id (indented by their depth in newer kernels). A lock without
 * an inode prints "<none>:0" and matches no file. Returns 0, or -1 for a line it cannot use.
 */
int pl_parse_line(char *line, pl_lock_line *out) {
  memset(out, 0, sizeof *out);
  char *pos = line;
  char *tok = pl_token(&pos);
  size_t len = tok != NULL ? strlen(tok) : 0;
  if (len < 2 || tok[len - 1] != ':') return -1;
  for (size_t i = 0; i + 1 < len; i++)
    if (tok[i] < '0' || tok[i] > '9') return -1;

  tok = pl_token(&pos);
  if (tok != NULL && strcmp(tok, "->") == 0) {
    out->holder.waiting = 1;
    tok = pl_token(&pos);
  }
  if (tok == NULL) return -1;
  snprintf(out->holder.type, sizeof out->holder.type, "%s", tok);

  /* Flags ("ADVISORY", "MSNFS", "ACTIVE", "BREAKING", ...) up to the access. */
  int found = 0;
  for (int i = 0; i < 4 && !found; i++) {
    tok = pl_token(&pos);
    if (tok == NULL) return -1;
    if (strcmp(tok, "WRITE") == 0) {
      out->holder.exclusive = 1;
      found = 1;
    } else if (strcmp(tok, "READ") == 0 || strcmp(tok, "UNLCK") == 0) {
      found = 1;
    }
  }
  if (!found) return -1;

  tok = pl_token(&pos);
  if (tok == NULL) return -1;
  char *end;
  errno = 0;
  long pid = strtol(tok, &end, 10);
  if (errno != 0 || end == tok || *end != '\0') return -1;
  out->holder.pid = pid;

  tok = pl_token(&pos);
  if (tok == NULL) return -1;
  const char *p;
  if (pl_parse_number(tok, 16, ":", &out->major, &p) != 0 || *p != ':') return -1;
  if (pl_parse_number(p + 1, 16, ":", &out->minor, &p) != 0 || *p != ':') return -1;
  if (pl_parse_number(p + 1, 10, "", &out->ino, &p) != 0) return -1;
  return 0;
}

portalock_status portalock_lock_holders(const char *path, portalock_holder *out, size_t cap,
                                        size_t *count, portalock_error *err) {
  if (path == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "lock_holders: `path` is NULL");
  if (count == NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, path, "lock_holders: `count` is NULL");
  if (out == NULL && cap > 0)
    return pl_fail(err, PORTALOCK_INVALID, 0, path,
                   "lock_holders: `out` is NULL with `cap` %zu (> 0)", cap);
  *count = 0;
  pl_clear(err);

  struct stat st;
  if (stat(path, &st) != 0) return pl_fail_sys(err, errno, "lock_holders: stat", path);
  return pl_platform_lock_holders(path, &st, out, cap, count, err);
}
