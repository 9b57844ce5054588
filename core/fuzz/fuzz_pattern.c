/*
 * Fuzz target: the bounded semaphore's file names (bounded.c): the pattern expander
 * pl_expand ({name}, {number}, {number:0Nd}, {{, }}) and, through
 * portalock_bounded_semaphore_new and _filename, the one-component checks.
 *
 * Input: maximum (1..16), the slot number to expand, the output buffer's size, name and
 * pattern (length-prefixed). Checks:
 *   - pl_expand writes only within the buffer, NUL-terminates it, reports the full length
 *     (a truncated result is a prefix of the full one), and agrees with expected_name below,
 *     a separate reading of the documented rules (CONTRACT.md "Bounded semaphores");
 *   - the constructor accepts exactly the name/pattern pairs whose every slot name is one path
 *     component, and then names `maximum` distinct slot files inside its directory.
 */
#include "private.h"

#include <stdio.h>

#include "fuzz_input.h"

#define NAME_MAX_BYTES 255
#define DIRECTORY "/portalock-fuzz"

/* The slot file name by the documented rules, into out (at least 4096 bytes, enough for any
 * name of at most 255 bytes and 255-digit widths); NULL, or why the pattern is refused. */
static const char *expected_name(const char *pattern, const char *name, long number, char *out,
                                 int *has_number) {
  size_t n = 0;
  *has_number = 0;
  for (size_t i = 0; pattern[i] != '\0';) {
    char c = pattern[i];
    if ((c == '{' || c == '}') && pattern[i + 1] == c) { /* "{{" and "}}": the brace itself */
      out[n++] = c;
      i += 2;
      continue;
    }
    if (c == '}') return "lone }";
    if (c != '{') {
      out[n++] = c;
      i++;
      continue;
    }
    const char *close = strchr(pattern + i, '}');
    if (close == NULL) return "lone {";
    char field[4096];
    size_t flen = (size_t)(close - (pattern + i + 1));
    memcpy(field, pattern + i + 1, flen);
    field[flen] = '\0';
    i += flen + 2;
    unsigned width = 0;
    char digits[8];
    if (strcmp(field, "name") == 0) {
      n += (size_t)sprintf(out + n, "%s", name);
      continue;
    }
    if (strcmp(field, "number") != 0) {
      /* number:0<one or more digits>d, the width at most 255 */
      if (strncmp(field, "number:0", 8) != 0 || flen < 10 || field[flen - 1] != 'd')
        return "unsupported field";
      if (strspn(field + 8, "0123456789") != flen - 9) return "unsupported field";
      size_t start = 8 + strspn(field + 8, "0"); /* leading zeros do not count */
      if (flen - 1 - start > 3) return "width too large";
      memcpy(digits, field + start, flen - 1 - start);
      digits[flen - 1 - start] = '\0';
      width = (unsigned)strtoul(digits, NULL, 10);
      if (width > NAME_MAX_BYTES) return "width too large";
    }
    n += (size_t)sprintf(out + n, "%0*ld", (int)width, number);
    *has_number = 1;
  }
  out[n] = '\0';
  return NULL;
}

static int one_component(const char *s) {
  size_t len = strlen(s);
  return len >= 1 && len <= NAME_MAX_BYTES && strchr(s, '/') == NULL && strcmp(s, ".") != 0 &&
         strcmp(s, "..") != 0;
}

static void check_expand(const char *pattern, const char *name, long number, size_t cap) {
  static char expected[1 << 17], full[1 << 17];
  int expected_has;
  const char *expected_problem = expected_name(pattern, name, number, expected, &expected_has);

  size_t len = 0;
  int has_number;
  const char *problem = pl_expand(pattern, name, number, full, sizeof full, &len, &has_number);
  if ((problem == NULL) != (expected_problem == NULL))
    fz_fail("pattern \"%s\": pl_expand says %s, the rules say %s", pattern,
            problem ? problem : "fine", expected_problem ? expected_problem : "fine");
  if (problem != NULL) return;
  if (strlen(full) != len || strcmp(full, expected) != 0 || has_number != expected_has)
    fz_fail("pattern \"%s\", name \"%s\", slot %ld: \"%s\" (length %zu, {number}: %d), expected "
            "\"%s\" ({number}: %d)",
            pattern, name, number, full, len, has_number, expected, expected_has);

  /* Into a buffer of exactly `cap` bytes (heap: ASan sees any byte written past it). */
  char *small = malloc(cap);
  if (small == NULL) return;
  size_t small_len = 0;
  if (pl_expand(pattern, name, number, small, cap, &small_len, &has_number) != NULL ||
      small_len != len || strlen(small) != (len < cap ? len : cap - 1) ||
      strncmp(small, full, strlen(small)) != 0)
    fz_fail("pattern \"%s\" into %zu bytes: \"%s\" (length %zu)", pattern, cap, small, small_len);
  free(small);
}

/* What the constructor must decide: 1 to accept name and pattern for `maximum` slots. */
static int acceptable(const char *pattern, const char *name, long maximum) {
  if (strchr(name, '/') != NULL || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
      strlen(name) > NAME_MAX_BYTES)
    return 0;
  static char slot[1 << 17];
  for (long i = 0; i < maximum; i++) {
    int has_number;
    if (expected_name(pattern, name, i, slot, &has_number) != NULL) return 0;
    if (maximum > 1 && !has_number) return 0;
    if (!one_component(slot)) return 0;
  }
  return 1;
}

static void check_semaphore(const char *pattern, const char *name, long maximum) {
  portalock_bounded_semaphore_options opts;
  portalock_bounded_semaphore_options_init(&opts);
  opts.name = name;
  opts.filename_pattern = pattern;
  opts.directory = DIRECTORY;
  portalock_bounded_semaphore_t *sem = NULL;
  portalock_error err;
  portalock_status st = portalock_bounded_semaphore_new(&sem, maximum, &opts, &err);
  int accept = acceptable(pattern, name, maximum);
  if ((st == PORTALOCK_OK) != accept)
    fz_fail("name \"%s\", pattern \"%s\", maximum %ld: the constructor %s it (%s)", name, pattern,
            maximum, st == PORTALOCK_OK ? "accepts" : "refuses", err.message);
  if (st != PORTALOCK_OK) {
    if (st != PORTALOCK_INVALID || strncmp(err.message, "bad option '", 12) != 0)
      fz_fail("refused with status %d: %s", (int)st, err.message);
    return;
  }
  static char names[16][NAME_MAX_BYTES + 1];
  for (long i = 0; i < maximum; i++) {
    const char *path = portalock_bounded_semaphore_filename(sem, i);
    if (path == NULL || strncmp(path, DIRECTORY "/", sizeof DIRECTORY) != 0 ||
        !one_component(path + sizeof DIRECTORY))
      fz_fail("slot %ld of name \"%s\", pattern \"%s\": path %s", i, name, pattern,
              path ? path : "NULL");
    snprintf(names[i], sizeof names[i], "%s", path + sizeof DIRECTORY);
    for (long j = 0; j < i; j++)
      if (strcmp(names[i], names[j]) == 0)
        fz_fail("slots %ld and %ld share the file %s", j, i, path);
  }
  if (portalock_bounded_semaphore_filename(sem, maximum) != NULL)
    fz_fail("a slot past the maximum has a file name");
  portalock_bounded_semaphore_free(sem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_input in = {data, size};
  long maximum = 1 + (long)(fz_byte(&in) % 16);
  long number = (long)(fz_uint(&in, 2) % PORTALOCK_BOUNDED_MAXIMUM);
  size_t cap = 1 + fz_byte(&in);
  char name[300], pattern[300];
  fz_bytes(&in, name, sizeof name);
  /* the rest of the input is the pattern */
  size_t plen = in.size < sizeof pattern - 1 ? in.size : sizeof pattern - 1;
  memcpy(pattern, in.data, plen);
  pattern[plen] = '\0';
  check_expand(pattern, name, number, cap);
  check_semaphore(pattern, name, maximum);
  return 0;
}
