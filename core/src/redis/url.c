/* Redis options: the defaults, the address rules, and the connection URL
 *   redis://[[user]:password@]host[:port][/db][?query]   host a name, an IPv4 or an "[IPv6]"
 *   unix://[[user]:password@]/absolute/path[?query]
 * where the query is "&"-separated db=N, username=U, password=P (redis-py's forms), parsed into
 * portalock_redis_options. A refusal never shows a credential: the message may end up in a log
 * (what comes before the '@' is masked unless it is "user:", and so is a password= value). */
#include "../private.h"

#include <arpa/inet.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* How much of a refused URL its message shows. */
#define PL_URL_SHOWN 160

void portalock_redis_options_init(portalock_redis_options *opts) {
  opts->host = NULL;
  opts->port = PORTALOCK_REDIS_DEFAULT_PORT;
  opts->path = NULL;
  opts->db = 0;
  opts->username = NULL;
  opts->password = NULL;
  opts->connect_timeout = PORTALOCK_REDIS_DEFAULT_TIMEOUT;
  opts->command_timeout = PORTALOCK_REDIS_DEFAULT_TIMEOUT;
  opts->ttl = PORTALOCK_REDIS_DEFAULT_TTL;
}

/* The largest db index: SELECT reads it as a C int. */
#define PL_REDIS_DB_MAX 2147483647L

/* NULL when `port` is a TCP port (1..65535) and `db` a db index (0..PL_REDIS_DB_MAX), else what
 * is wrong, as a phrase after the value ("must be ..."). */
static const char *pl_redis_port_problem(long port) {
  return port >= 1 && port <= 65535 ? NULL : "must be an integer within 1..65535";
}

static const char *pl_redis_db_problem(long db) {
  return db >= 0 && db <= PL_REDIS_DB_MAX ? NULL : "must be an integer within 0..2147483647";
}

/* A parse in progress: the strings go one after another into the caller's buffer. */
typedef struct pl_url {
  char *next;    /* where the next string goes */
  char why[256]; /* what is wrong, once a step has failed */
} pl_url;

/* Records what is wrong; returns -1 for `return pl_url_fail(...)`. */
static int pl_url_fail(pl_url *u, const char *fmt, ...) PL_PRINTF(2, 3);
static int pl_url_fail(pl_url *u, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(u->why, sizeof u->why, fmt, ap);
  va_end(ap);
  return -1;
}

/* The span's length as a printf precision, capped so that a message stays readable. */
static int pl_shown(size_t len) {
  return len > 64 ? 64 : (int)len;
}

static int pl_hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Copies src[0..len) into the buffer as a string, %-decoded when `decode`, and points *out at
 * it. `part` names it in a refusal, which never shows a password's bytes. */
static int pl_url_string(pl_url *u, const char *src, size_t len, int decode, const char *part,
                         const char **out) {
  char *dst = u->next;
  for (size_t i = 0; i < len; i++) {
    char c = src[i];
    if (decode && c == '%') {
      int hi = i + 2 < len ? pl_hex(src[i + 1]) : -1, lo = i + 2 < len ? pl_hex(src[i + 2]) : -1;
      if (hi < 0 || lo < 0)
        return pl_url_fail(u, "the %s has a bad %%-escape (%% and two hex digits)", part);
      c = (char)(hi * 16 + lo);
      if (c == '\0') return pl_url_fail(u, "the %s holds %%00, which no string can pass on", part);
      i += 2;
    }
    *dst++ = c;
  }
  *dst++ = '\0';
  *out = u->next;
  u->next = dst;
  return 0;
}

/* The decimal number src[0..len) (digits only), or -1 when it is none or exceeds LONG_MAX. */
static long pl_url_number(const char *src, size_t len) {
  if (len == 0) return -1;
  long v = 0;
  for (size_t i = 0; i < len; i++) {
    if (src[i] < '0' || src[i] > '9') return -1;
    int digit = src[i] - '0';
    if (v > (LONG_MAX - digit) / 10) return -1;
    v = v * 10 + digit;
  }
  return v;
}

static int pl_url_db(pl_url *u, const char *src, size_t len, long *db) {
  long v = pl_url_number(src, len);
  const char *problem = pl_redis_db_problem(v);
  if (problem != NULL) return pl_url_fail(u, "the db \"%.*s\" %s", pl_shown(len), src, problem);
  *db = v;
  return 0;
}

static int pl_url_junk(pl_url *u, const char *junk, const char *after) {
  return pl_url_fail(u, "unexpected \"%.*s\" after the %s", pl_shown(strlen(junk)), junk, after);
}

/* [user]:password, both %-decoded; an empty user is none (AUTH with the password alone). */
static int pl_url_userinfo(pl_url *u, const char *src, size_t len, portalock_redis_options *o) {
  if (len == 0) return pl_url_fail(u, "nothing before the '@' (a URL without AUTH has no \"@\")");
  const char *colon = memchr(src, ':', len);
  /* Not quoted: "redis://s3cret@host" is most often a password without its ':'. */
  if (colon == NULL)
    return pl_url_fail(u, "what comes before the '@' has no ':' (a password alone is written "
                          "\":password@\", with a user \"user:password@\")");
  size_t user_len = (size_t)(colon - src), pass_len = len - user_len - 1;
  if (pass_len == 0)
    return pl_url_fail(u, "the password is empty (a URL without AUTH has no \"@\")");
  if (user_len > 0 && pl_url_string(u, src, user_len, 1, "user", &o->username) != 0) return -1;
  return pl_url_string(u, colon + 1, pass_len, 1, "password", &o->password);
}

/* A host name's characters: letters, digits, '-', '.', '_'. */
static int pl_host_name(const char *src, size_t len) {
  for (size_t i = 0; i < len; i++) {
    char c = src[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.' || c == '_'))
      return 0;
  }
  return 1;
}

/* host[:port] or [IPv6][:port]. */
static int pl_url_hostport(pl_url *u, const char *src, size_t len, portalock_redis_options *o) {
  const char *end = src + len, *port = NULL;
  if (len > 0 && src[0] == '[') {
    const char *close = memchr(src, ']', len);
    if (close == NULL) return pl_url_fail(u, "the IPv6 address has no closing ']'");
    if (pl_url_string(u, src + 1, (size_t)(close - src - 1), 0, "host", &o->host) != 0) return -1;
    struct in6_addr addr;
    if (inet_pton(AF_INET6, o->host, &addr) != 1)
      return pl_url_fail(u, "the host \"[%.*s]\" is no IPv6 address", pl_shown(strlen(o->host)),
                         o->host);
    if (close + 1 < end && close[1] != ':') {
      char junk[80];
      snprintf(junk, sizeof junk, "%.*s", pl_shown((size_t)(end - close - 1)), close + 1);
      return pl_url_junk(u, junk, "host");
    }
    if (close + 1 < end) port = close + 2;
  } else {
    const char *colon = memchr(src, ':', len);
    size_t host_len = colon != NULL ? (size_t)(colon - src) : len;
    if (colon != NULL && memchr(colon + 1, ':', (size_t)(end - colon - 1)) != NULL)
      return pl_url_fail(u, "an IPv6 address needs brackets (\"redis://[::1]:6379\")");
    if (host_len == 0) return pl_url_fail(u, "the host is empty");
    if (!pl_host_name(src, host_len))
      return pl_url_fail(u, "the host \"%.*s\" has characters no host name has", pl_shown(host_len),
                         src);
    if (pl_url_string(u, src, host_len, 0, "host", &o->host) != 0) return -1;
    if (colon != NULL) port = colon + 1;
  }
  if (port == NULL) return 0;
  long v = pl_url_number(port, (size_t)(end - port));
  const char *problem = pl_redis_port_problem(v);
  if (problem != NULL)
    return pl_url_fail(u, "the port \"%.*s\" %s", pl_shown((size_t)(end - port)), port, problem);
  o->port = (int)v;
  return 0;
}

/* Whether the query parameter src[0..len) is `key=`; its value then starts at src + strlen(key). */
static int pl_url_key(const char *src, size_t len, const char *key) {
  size_t n = strlen(key);
  return len >= n && memcmp(src, key, n) == 0;
}

/* The query after '?' (up to a '#' or the end): db=N, username=U, password=P, each at most once
 * and not given in the rest of the URL too. `db_given`: the path gave the db. */
static int pl_url_query(pl_url *u, const char *s, int db_given, portalock_redis_options *o) {
  size_t query_len = strcspn(s, "#");
  const char *end = s + query_len;
  int after_password = 0; /* what follows may be a password's unencoded '&' and rest */
  while (s < end) {
    size_t len = strcspn(s, "&");
    if (s + len > end) len = (size_t)(end - s);
    if (pl_url_key(s, len, "db=")) {
      if (db_given) return pl_url_fail(u, "the db is given twice (in the path and as db=)");
      if (pl_url_db(u, s + 3, len - 3, &o->db) != 0) return -1;
      db_given = 1;
    } else if (pl_url_key(s, len, "username=")) {
      if (o->username != NULL) return pl_url_fail(u, "the user is given twice");
      if (len == 9) return pl_url_fail(u, "the username= is empty");
      if (pl_url_string(u, s + 9, len - 9, 1, "user", &o->username) != 0) return -1;
    } else if (pl_url_key(s, len, "password=")) {
      if (o->password != NULL) return pl_url_fail(u, "the password is given twice");
      if (len == 9) return pl_url_fail(u, "the password= is empty");
      if (pl_url_string(u, s + 9, len - 9, 1, "password", &o->password) != 0) return -1;
      after_password = 1;
    } else if (after_password) {
      return pl_url_fail(u, "a query parameter after password= is none of db, username, password "
                            "(a '&' in the password is written %%26)");
    } else {
      size_t key_len = strcspn(s, "=&#"); /* the key only: its value may be a secret */
      if (key_len > len) key_len = len;
      return pl_url_fail(u, "the query parameter \"%.*s\" is none of db, username, password",
                         pl_shown(key_len), s);
    }
    s += len;
    if (s < end) s++; /* the '&' */
  }
  if (*end != '\0') return pl_url_junk(u, end, "query");
  if (o->username != NULL && o->password == NULL)
    return pl_url_fail(u, "username= needs a password too (AUTH takes both)");
  return 0;
}

/* What follows "redis://". */
static int pl_url_redis(pl_url *u, const char *s, portalock_redis_options *o) {
  size_t authority = strcspn(s, "/?#");
  const char *at = NULL;
  for (const char *p = s; p < s + authority; p++)
    if (*p == '@') at = p; /* the last '@', as Python's urllib takes it */
  const char *host = s;
  if (at != NULL) {
    if (pl_url_userinfo(u, s, (size_t)(at - s), o) != 0) return -1;
    host = at + 1;
  }
  if (pl_url_hostport(u, host, (size_t)(s + authority - host), o) != 0) return -1;
  const char *rest = s + authority;
  size_t db_len = 0;
  if (*rest == '/') {
    rest++;
    db_len = strcspn(rest, "?#");
    if (db_len > 0 && pl_url_db(u, rest, db_len, &o->db) != 0) return -1; /* "/" alone: db 0 */
    rest += db_len;
  }
  if (*rest == '?') return pl_url_query(u, rest + 1, db_len > 0, o);
  if (*rest != '\0') return pl_url_junk(u, rest, db_len > 0 ? "db" : "host");
  return 0;
}

/* What follows "unix://": maybe "[user]:password@", an absolute path, maybe a query. */
static int pl_url_unix(pl_url *u, const char *s, portalock_redis_options *o) {
  const char *at = NULL;
  for (const char *p = s; *p != '\0' && *p != '/'; p++)
    if (*p == '@') at = p;
  if (at != NULL) {
    if (pl_url_userinfo(u, s, (size_t)(at - s), o) != 0) return -1;
    s = at + 1;
  }
  size_t path_len = strcspn(s, "?#");
  if (path_len == 0) return pl_url_fail(u, "the socket path is empty");
  if (s[0] != '/')
    return pl_url_fail(u, "the socket path \"%.*s\" is not absolute (\"unix:///path\")",
                       pl_shown(path_len), s);
  if (pl_url_string(u, s, path_len, 0, "path", &o->path) != 0) return -1;
  const char *rest = s + path_len;
  if (*rest == '?') return pl_url_query(u, rest + 1, 0, o);
  if (*rest != '\0') return pl_url_junk(u, rest, "path");
  return 0;
}

static int pl_url_parse(pl_url *u, const char *url, portalock_redis_options *o) {
  if (strncasecmp(url, "redis://", 8) == 0) return pl_url_redis(u, url + 8, o);
  if (strncasecmp(url, "unix://", 7) == 0) return pl_url_unix(u, url + 7, o);
  if (strncasecmp(url, "rediss://", 9) == 0)
    return pl_url_fail(u, "TLS (rediss://) is not supported: use \"redis://\" or \"unix://\"");
  return pl_url_fail(u, "must start with \"redis://\" or \"unix://\"");
}

/* Appends src[0..len) to the shown text at *pos (cut at its capacity). */
static void pl_show(char *shown, size_t cap, size_t *pos, const char *src, size_t len) {
  while (len-- > 0 && *pos + 1 < cap)
    shown[(*pos)++] = *src++;
  shown[*pos] = '\0';
}

/* The value of the first "password=" parameter after the first '?' of `s`, or NULL. */
static const char *pl_query_password(const char *s) {
  const char *query = strchr(s, '?');
  for (const char *p = query; p != NULL && *p != '\0' && *p != '#'; p += 1 + strcspn(p + 1, "&#"))
    if (strncmp(p + 1, "password=", 9) == 0) return p + 10;
  return NULL;
}

/* INVALID: "bad argument 'url' ("<url>"): <why>", the URL with its credentials masked, also
 * where a password that should have been %-encoded broke the parse: what comes before the last
 * '@' after the scheme is "***" except a user before the first ':' ("user:***@"); then, in
 * what is left, so is the query from its first password= value to its end (an unencoded '&'
 * may be part of the password). */
static portalock_status pl_bad_url(const char *url, const char *why, portalock_error *err) {
  const char *scheme = strstr(url, "://");
  const char *start = scheme != NULL ? scheme + 3 : url;
  const char *at = strrchr(start, '@');
  size_t cap = strlen(url) + 4, masked_len = 0, pos = 0; /* (the whole URL: the query is last) */
  char *masked = malloc(cap), shown[PL_URL_SHOWN + 8];
  if (masked == NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'url': %s", why);
  if (at != NULL) {
    const char *colon = memchr(start, ':', (size_t)(at - start));
    pl_show(masked, cap, &masked_len, url, (size_t)((colon != NULL ? colon + 1 : start) - url));
    pl_show(masked, cap, &masked_len, "***", 3);
    pl_show(masked, cap, &masked_len, at, strlen(at));
  } else {
    pl_show(masked, cap, &masked_len, url, strlen(url));
  }
  const char *password = pl_query_password(masked);
  pl_show(shown, sizeof shown, &pos, masked,
          password != NULL ? (size_t)(password - masked) : masked_len);
  if (password != NULL) {
    pl_show(shown, sizeof shown, &pos, "***", 3);
    const char *fragment = password + strcspn(password, "#");
    pl_show(shown, sizeof shown, &pos, fragment, strlen(fragment));
  }
  free(masked);
  int cut = pos > PL_URL_SHOWN;
  return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'url' (\"%.*s%s\"): %s",
                 PL_URL_SHOWN, shown, cut ? "..." : "", why);
}

portalock_status portalock_redis_options_parse_url(portalock_redis_options *opts, const char *url,
                                                   char *buf, size_t cap, portalock_error *err) {
  pl_clear(err);
  if (opts == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'opts' (NULL)");
  if (url == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'url' (NULL)");
  if (buf == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'buf' (NULL)");
  size_t need = strlen(url) + 1;
  if (cap < need)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                   "bad argument 'cap' (%zu): the URL needs %zu bytes (its length + 1)", cap, need);
  /* Parsed into the defaults, then copied: a refused URL leaves `opts` as it was. */
  portalock_redis_options o;
  portalock_redis_options_init(&o);
  pl_url u = {buf, ""};
  if (pl_url_parse(&u, url, &o) != 0) return pl_bad_url(url, u.why, err);
  opts->host = o.host;
  opts->port = o.port;
  opts->path = o.path;
  opts->db = o.db;
  opts->username = o.username;
  opts->password = o.password;
  return PORTALOCK_OK;
}

/* The rules of the options a session opens with (portalock_redis_session_open asks them). */
portalock_status portalock_redis_options_check(const portalock_redis_options *o,
                                               portalock_error *err) {
  pl_clear(err);
  if (o == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'opts' (NULL)");
  struct {
    const char *name;
    double value;
  } times[] = {{"connect_timeout", o->connect_timeout},
               {"command_timeout", o->command_timeout},
               {"ttl", o->ttl}};
  for (size_t i = 0; i < sizeof times / sizeof times[0]; i++)
    if (!(times[i].value > 0) || !isfinite(times[i].value) || times[i].value > 86400 * 365) {
      char value[32];
      snprintf(value, sizeof value, isnan(times[i].value) ? "nan" : "%g", times[i].value);
      return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                     "bad argument '%s' (%s): must be a positive number of seconds, at most a "
                     "year",
                     times[i].name, value);
    }
  /* The scripts count the lease in whole milliseconds: less would be a lease of none. */
  if (o->ttl < 0.001)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL,
                   "bad argument 'ttl' (%g): must be at least 0.001 s (the server counts the "
                   "lease in milliseconds)",
                   o->ttl);
  const char *problem = o->port == 0 ? NULL : pl_redis_port_problem(o->port);
  if (problem != NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'port' (%d): %s", o->port,
                   problem);
  if ((problem = pl_redis_db_problem(o->db)) != NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'db' (%ld): %s", o->db, problem);
  return PORTALOCK_OK;
}
