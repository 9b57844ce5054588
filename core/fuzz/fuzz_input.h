/* Structured values read off the front of a fuzz input, for the fuzz targets in this
 * directory. A read past the end yields zeros (and empty strings), so every input decodes to
 * something and a shorter input is a simpler case. */
#ifndef PORTALOCK_FUZZ_INPUT_H
#define PORTALOCK_FUZZ_INPUT_H

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reports a broken invariant and aborts: libFuzzer saves the input as a crash. */
static inline void fz_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("fuzz: invariant broken: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

typedef struct fz_input {
  const uint8_t *data;
  size_t size;
} fz_input;

static inline unsigned fz_byte(fz_input *in) {
  if (in->size == 0) return 0;
  in->size--;
  return *in->data++;
}

/* An unsigned integer of `bytes` (<= 8) bytes, little-endian. */
static inline uint64_t fz_uint(fz_input *in, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++)
    v |= (uint64_t)fz_byte(in) << (8 * i);
  return v;
}

/* A double, mostly from the values that validation has to tell apart. */
static inline double fz_double(fz_input *in) {
  static const double special[] = {0.0,   -0.0,     1.0,          -1.0,          0.25, 1e-300,
                                   1e300, 4.9e-324, 2147483648.0, -2147483649.0, 1e12, 0.5};
  unsigned pick = fz_byte(in);
  if (pick < 16) return pick == 0 ? NAN : pick == 1 ? INFINITY : pick == 2 ? -INFINITY : pick;
  if (pick < 16 + sizeof special / sizeof special[0]) return special[pick - 16];
  uint64_t bits = fz_uint(in, 8);
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

/* A length-prefixed byte string (length byte, then the bytes) copied into buf and
 * NUL-terminated; returns its length, which may include NUL bytes. */
static inline size_t fz_bytes(fz_input *in, char *buf, size_t cap) {
  size_t len = fz_byte(in);
  if (len > in->size) len = in->size;
  if (len > cap - 1) len = cap - 1;
  memcpy(buf, in->data, len);
  buf[len] = '\0';
  in->data += len;
  in->size -= len;
  return len;
}

#endif
