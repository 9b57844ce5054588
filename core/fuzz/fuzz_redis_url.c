/*
 * Fuzz target: Redis connection URLs (redis/url.c: portalock_redis_options_parse_url).
 *
 * Input: one byte choosing the buffer's size (0: exactly strlen(url) + 1, else that many bytes
 * fewer, down to 0), then the URL (ending at the input's end or a NUL byte). Checks, by the
 * rules of portalock.h "Redis (distributed)":
 *   - a buffer smaller than strlen(url) + 1 is refused as 'cap', and nothing else is;
 *   - a refused URL is PORTALOCK_INVALID, "bad argument 'url' ("<url>"): ...", with what comes
 *     before the last '@' after the scheme shown as "***" (but for a user before a ':'), the
 *     query from its first password= value on too, and leaves the options as they were;
 *   - an accepted URL gives either a host (not empty) or an absolute path, a port within
 *     1..65535, a db within 0..INT_MAX, a password whenever there is a user, strings that lie
 *     in the buffer, the options it does not hold untouched; and the same fields again when
 *     written back as a URL (the user and password %-encoded) and parsed.
 */
#include "private.h"

#include <limits.h>
#include <strings.h>

#include "fuzz_input.h"

#define URL_MAX 4096

static const char *show(const char *s) {
  return s != NULL ? s : "(null)";
}

static int same_string(const char *a, const char *b) {
  return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int same_fields(const portalock_redis_options *a, const portalock_redis_options *b) {
  return same_string(a->host, b->host) && same_string(a->path, b->path) && a->port == b->port &&
         a->db == b->db && same_string(a->username, b->username) &&
         same_string(a->password, b->password) && a->connect_timeout == b->connect_timeout &&
         a->command_timeout == b->command_timeout && a->ttl == b->ttl;
}

static void inside(const char *s, const char *buf, size_t cap, const char *url) {
  if (s != NULL && !(s >= buf && s + strlen(s) < buf + cap))
    fz_fail("\"%s\": a string lies outside the buffer", url);
}

static size_t encode(char *out, const char *s) {
  size_t n = 0;
  for (; *s; s++)
    n += (size_t)sprintf(out + n, "%%%02X", (unsigned)(unsigned char)*s);
  return n;
}

/* The accepted options written back as a URL, parsed again: the same fields. */
static void round_trip(const portalock_redis_options *o, const char *url) {
  static char again[3 * URL_MAX + 64], buf[sizeof again];
  size_t n = (size_t)sprintf(again, o->path != NULL ? "unix://" : "redis://");
  if (o->password != NULL) {
    if (o->username != NULL) n += encode(again + n, o->username);
    again[n++] = ':';
    n += encode(again + n, o->password);
    again[n++] = '@';
  }
  if (o->path != NULL) {
    n += (size_t)sprintf(again + n, "%s?db=%ld", o->path, o->db);
  } else {
    const char *fmt = strchr(o->host, ':') != NULL ? "[%s]:%d/%ld" : "%s:%d/%ld";
    n += (size_t)sprintf(again + n, fmt, o->host, o->port, o->db);
  }
  portalock_redis_options back;
  portalock_redis_options_init(&back);
  back.connect_timeout = o->connect_timeout;
  back.command_timeout = o->command_timeout;
  back.ttl = o->ttl;
  portalock_error err;
  if (portalock_redis_options_parse_url(&back, again, buf, sizeof buf, &err) != PORTALOCK_OK)
    fz_fail("\"%s\" written back as \"%s\" is refused: %s", url, again, err.message);
  if (!same_fields(o, &back))
    fz_fail("\"%s\" and \"%s\" differ: host %s/%s path %s/%s port %d/%d db %ld/%ld", url, again,
            show(o->host), show(back.host), show(o->path), show(back.path), o->port, back.port,
            o->db, back.db);
}

static void check_accepted(const portalock_redis_options *o, const char *url, const char *buf,
                           size_t cap) {
  if ((o->host == NULL) == (o->path == NULL)) fz_fail("\"%s\": not one of host and path", url);
  if (o->host != NULL && o->host[0] == '\0') fz_fail("\"%s\": an empty host", url);
  if (o->path != NULL && o->path[0] != '/') fz_fail("\"%s\": a relative path", url);
  if (o->host != NULL && strncasecmp(url, "redis://", 8) != 0)
    fz_fail("\"%s\": a host without redis://", url);
  if (o->path != NULL && strncasecmp(url, "unix://", 7) != 0)
    fz_fail("\"%s\": a path without unix://", url);
  if (o->port < 1 || o->port > 65535) fz_fail("\"%s\": port %d", url, o->port);
  if (o->db < 0 || o->db > INT_MAX) fz_fail("\"%s\": db %ld", url, o->db);
  if (o->username != NULL && o->password == NULL) fz_fail("\"%s\": a user, no password", url);
  if (o->connect_timeout != 1.25 || o->command_timeout != 2.5 || o->ttl != 9.0)
    fz_fail("\"%s\": options a URL does not hold were changed", url);
  inside(o->host, buf, cap, url);
  inside(o->path, buf, cap, url);
  inside(o->username, buf, cap, url);
  inside(o->password, buf, cap, url);
  round_trip(o, url);
}

/* The message's URL: what comes before the last '@' after the scheme shown as "***", but for
 * a user before the first ':' there; then, in what is left, the query (after its first '?')
 * from its first password= value to its end ('#') shown as "***". */
static void expected_shown(const char *url, char *out, size_t cap) {
  const char *scheme = strstr(url, "://");
  const char *start = scheme != NULL ? scheme + 3 : url;
  const char *at = strrchr(start, '@');
  const char *colon = NULL;
  for (const char *p = start; at != NULL && p < at && colon == NULL; p++)
    if (*p == ':') colon = p;
  char masked[URL_MAX + 8];
  if (at != NULL)
    snprintf(masked, sizeof masked, "%.*s***%s", (int)((colon != NULL ? colon + 1 : start) - url),
             url, at);
  else
    snprintf(masked, sizeof masked, "%s", url);
  const char *query = strchr(masked, '?'), *password = NULL;
  for (const char *p = query; p != NULL && password == NULL && *p != '\0' && *p != '#';
       p += 1 + strcspn(p + 1, "&#"))
    if (strncmp(p + 1, "password=", 9) == 0) password = p + 10;
  if (password != NULL)
    snprintf(out, cap, "%.*s***%s", (int)(password - masked), masked,
             password + strcspn(password, "#"));
  else
    snprintf(out, cap, "%s", masked);
}

static void check_refused(const portalock_error *err, const char *url) {
  char shown[URL_MAX + 8], prefix[128];
  expected_shown(url, shown, sizeof shown);
  /* the message shows the start of the URL at least (a long one is cut) */
  snprintf(prefix, sizeof prefix, "bad argument 'url' (\"%.64s", shown);
  if (strncmp(err->message, prefix, strlen(prefix)) != 0)
    fz_fail("\"%s\" refused with the message: %s", url, err->message);
  if (strstr(err->message, "\"): ") == NULL)
    fz_fail("\"%s\": the message says not what is wrong: %s", url, err->message);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_input in = {data, size};
  unsigned shrink = fz_byte(&in);
  static char url[URL_MAX + 1], buf[URL_MAX + 1];
  size_t len = in.size < URL_MAX ? in.size : URL_MAX;
  memcpy(url, in.data, len);
  url[len] = '\0';
  len = strlen(url);
  size_t cap = len + 1 > shrink ? len + 1 - shrink : 0;

  portalock_redis_options o, before;
  portalock_redis_options_init(&o);
  o.connect_timeout = 1.25;
  o.command_timeout = 2.5;
  o.ttl = 9.0;
  before = o;
  portalock_error err;
  portalock_status st = portalock_redis_options_parse_url(&o, url, buf, cap, &err);
  if (st != PORTALOCK_OK && st != PORTALOCK_INVALID)
    fz_fail("\"%s\": status %d: %s", url, (int)st, err.message);
  if (st == PORTALOCK_INVALID && !same_fields(&o, &before))
    fz_fail("\"%s\" refused, yet the options changed", url);
  if (cap < len + 1) {
    if (st != PORTALOCK_INVALID || strncmp(err.message, "bad argument 'cap' (", 20) != 0)
      fz_fail("\"%s\" with %zu bytes of buffer: %s", url, cap, err.message);
    return 0;
  }
  if (st == PORTALOCK_OK)
    check_accepted(&o, url, buf, cap);
  else
    check_refused(&err, url);
  return 0;
}
