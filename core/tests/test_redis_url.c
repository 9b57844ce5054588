/* Tests Redis options: the defaults and the connection URLs, accepted and refused (a refusal
 * names the argument and the value, with the password masked). */
#include "testutil.h"

#include <stdlib.h>

static void test_defaults(void) {
  portalock_redis_options o;
  memset(&o, 0x5a, sizeof o);
  portalock_redis_options_init(&o);
  CHECK(o.host == NULL); /* 127.0.0.1 */
  CHECK_INT(o.port, PORTALOCK_REDIS_DEFAULT_PORT);
  CHECK(o.path == NULL);
  CHECK_INT(o.db, 0);
  CHECK(o.username == NULL && o.password == NULL);
  CHECK(o.connect_timeout == PORTALOCK_REDIS_DEFAULT_TIMEOUT);
  CHECK(o.command_timeout == PORTALOCK_REDIS_DEFAULT_TIMEOUT);
  CHECK(o.ttl == PORTALOCK_REDIS_DEFAULT_TTL);
}

typedef struct good_url {
  const char *url;
  const char *host, *path; /* NULL: none */
  int port;
  long db;
  const char *username, *password; /* NULL: none */
} good_url;

#define DP PORTALOCK_REDIS_DEFAULT_PORT

static const good_url good_urls[] = {
    {"redis://host", "host", NULL, DP, 0, NULL, NULL},
    {"redis://host:6380", "host", NULL, 6380, 0, NULL, NULL},
    {"redis://host:6380/2", "host", NULL, 6380, 2, NULL, NULL},
    {"redis://:password@host", "host", NULL, DP, 0, NULL, "password"},
    {"redis://user:password@host:6380/3", "host", NULL, 6380, 3, "user", "password"},
    {"redis://[::1]:6380/0", "::1", NULL, 6380, 0, NULL, NULL},
    {"redis://[::1]", "::1", NULL, DP, 0, NULL, NULL},
    {"redis://[2001:db8::7]:7000", "2001:db8::7", NULL, 7000, 0, NULL, NULL},
    {"unix:///run/redis.sock", NULL, "/run/redis.sock", DP, 0, NULL, NULL},
    {"unix:///run/redis.sock?db=2", NULL, "/run/redis.sock", DP, 2, NULL, NULL},
    {"redis://127.0.0.1:6379/0", "127.0.0.1", NULL, 6379, 0, NULL, NULL},
    {"redis://redis-1.example_net:1/2147483647", "redis-1.example_net", NULL, 1, 2147483647L, NULL,
     NULL},
    {"redis://h:65535", "h", NULL, 65535, 0, NULL, NULL},
    {"redis://h:06379/007", "h", NULL, 6379, 7, NULL, NULL},
    {"redis://h:6379/", "h", NULL, 6379, 0, NULL, NULL}, /* "/" without a db, as redis-py */
    {"REDIS://Host", "Host", NULL, DP, 0, NULL, NULL},   /* schemes are case-insensitive */
    /* %-decoded user and password; the last '@' ends the password, as in Python's urllib */
    {"redis://us%40er:p%3Aa%2Fss%25%7e@h", "h", NULL, DP, 0, "us@er", "p:a/ss%~"},
    {"redis://:p@ss@h:7", "h", NULL, 7, 0, NULL, "p@ss"},
    {"redis://u::@h", "h", NULL, DP, 0, "u", ":"},
    /* a unix socket with AUTH, and the query's db, username and password (redis-py's forms) */
    {"unix://:pw@/run/redis.sock", NULL, "/run/redis.sock", DP, 0, NULL, "pw"},
    {"unix://u:p%40w@/run/redis.sock?db=3", NULL, "/run/redis.sock", DP, 3, "u", "p@w"},
    {"unix:///s?password=p%26w&db=2", NULL, "/s", DP, 2, NULL, "p&w"},
    {"unix:///s?db=1&username=u&password=p", NULL, "/s", DP, 1, "u", "p"},
    {"redis://h?db=1", "h", NULL, DP, 1, NULL, NULL},
    {"redis://h:7/2?password=pw", "h", NULL, 7, 2, NULL, "pw"},
};

static const char *or_null(const char *s) {
  return s != NULL ? s : "(null)";
}

static void check_string_in(const char *s, const char *buf, size_t cap) {
  if (s != NULL) CHECK(s >= buf && s + strlen(s) < buf + cap);
}

static void test_good(void) {
  for (size_t i = 0; i < sizeof good_urls / sizeof good_urls[0]; i++) {
    const good_url *g = &good_urls[i];
    portalock_redis_options o;
    portalock_redis_options_init(&o);
    o.connect_timeout = 1.5; /* the fields a URL does not hold are left as they are */
    o.command_timeout = 2.5;
    o.ttl = 7;
    /* a previous URL's fields are all replaced */
    char old[64];
    portalock_error err;
    CHECK_OK(portalock_redis_options_parse_url(&o, "redis://u:p@old:9/9", old, sizeof old, &err),
             &err);
    size_t cap = strlen(g->url) + 1; /* exactly what the URL needs */
    char *buf = malloc(cap);
    CHECK(buf != NULL);
    if (portalock_redis_options_parse_url(&o, g->url, buf, cap, &err) != PORTALOCK_OK)
      tu_fail(__FILE__, __LINE__, "\"%s\" refused: %s", g->url, err.message);
    if ((o.host == NULL) != (g->host == NULL) || (o.host && strcmp(o.host, g->host) != 0) ||
        (o.path == NULL) != (g->path == NULL) || (o.path && strcmp(o.path, g->path) != 0) ||
        o.port != g->port || o.db != g->db || (o.username == NULL) != (g->username == NULL) ||
        (o.username && strcmp(o.username, g->username) != 0) ||
        (o.password == NULL) != (g->password == NULL) ||
        (o.password && strcmp(o.password, g->password) != 0))
      tu_fail(__FILE__, __LINE__, "\"%s\": host %s path %s port %d db %ld user %s password %s",
              g->url, or_null(o.host), or_null(o.path), o.port, o.db, or_null(o.username),
              or_null(o.password));
    check_string_in(o.host, buf, cap);
    check_string_in(o.path, buf, cap);
    check_string_in(o.username, buf, cap);
    check_string_in(o.password, buf, cap);
    CHECK(o.connect_timeout == 1.5 && o.command_timeout == 2.5 && o.ttl == 7);
    free(buf);
  }
}

typedef struct bad_url {
  const char *url;
  const char *problem; /* in the message, after the URL */
} bad_url;

static const bad_url bad_urls[] = {
    {"", "must start with \"redis://\" or \"unix://\""},
    {"http://h", "must start with \"redis://\" or \"unix://\""},
    {"localhost:6379", "must start with \"redis://\" or \"unix://\""},
    {"redis:/h", "must start with \"redis://\" or \"unix://\""},
    {"rediss://h:6380", "TLS (rediss://) is not supported"},
    {"redis://", "the host is empty"},
    {"redis://:6379", "the host is empty"},
    {"redis://@/0", "nothing before the '@' (a URL without AUTH has no \"@\")"},
    {"redis://@h", "nothing before the '@'"},
    {"redis://h:0", "the port \"0\" must be an integer within 1..65535"},
    {"redis://h:65536", "the port \"65536\" must be an integer within 1..65535"},
    {"redis://h:-1", "the port \"-1\" must be"},
    {"redis://h:", "the port \"\" must be"},
    {"redis://h:63 79", "the port \"63 79\" must be"},
    {"redis://h:6379x", "the port \"6379x\" must be"},
    {"redis://h:99999999999999999999999", "the port \"99999999999999999999999\" must be"},
    {"redis://h/x", "the db \"x\" must be an integer within 0..2147483647"},
    {"redis://h/-1", "the db \"-1\" must be"},
    {"redis://h/1.5", "the db \"1.5\" must be"},
    {"redis://h/2147483648", "the db \"2147483648\" must be"},
    {"redis://h/0/1", "the db \"0/1\" must be"},
    {"redis://u%g1:pw@h", "the user has a bad %-escape (% and two hex digits)"},
    {"redis://:p%zz@h", "the password has a bad %-escape (% and two hex digits)"},
    {"redis://:p%4@h", "the password has a bad %-escape"},
    {"redis://:p%@h", "the password has a bad %-escape"},
    {"redis://:p%00q@h", "the password holds %00"},
    {"redis://user@h", "what comes before the '@' has no ':' (a password alone is written "
                       "\":password@\", with a user \"user:password@\")"},
    {"redis://u:@h", "the password is empty"},
    {"redis://::1", "an IPv6 address needs brackets"},
    {"redis://[::1", "the IPv6 address has no closing ']'"},
    {"redis://[zz]:1", "the host \"[zz]\" is no IPv6 address"},
    {"redis://[]", "the host \"[]\" is no IPv6 address"},
    {"redis://[::1]x", "unexpected \"x\" after the host"},
    {"redis://[::1]:", "the port \"\" must be"},
    {"redis://h h", "the host \"h h\" has characters no host name has"},
    {"redis://h%41", "the host \"h%41\" has characters no host name has"},
    {"redis://h/1?db=2", "the db is given twice (in the path and as db=)"},
    {"redis://h?db=1&db=2", "the db is given twice"},
    {"redis://:pw@h?password=x", "the password is given twice"},
    {"redis://u:pw@h?username=v", "the user is given twice"},
    {"unix:///s?username=", "the username= is empty"},
    {"redis://h?username=u", "username= needs a password too (AUTH takes both)"},
    {"redis://h?db=1#x", "unexpected \"#x\" after the query"},
    {"redis://h#x", "unexpected \"#x\" after the host"},
    {"redis://h:1/0?x", "the query parameter \"x\" is none of db, username, password"},
    {"redis://h/?x=1", "the query parameter \"x\" is none of"},
    {"unix://", "the socket path is empty"},
    {"unix://?db=1", "the socket path is empty"},
    {"unix://run/redis.sock", "the socket path \"run/redis.sock\" is not absolute"},
    {"unix://:pw@run/redis.sock", "the socket path \"run/redis.sock\" is not absolute"},
    {"unix:///run/redis.sock?db=x", "the db \"x\" must be"},
    {"unix:///run/redis.sock?db=", "the db \"\" must be"},
    {"unix:///run/redis.sock?db=-2", "the db \"-2\" must be"},
    {"unix:///run/redis.sock?timeout=1", "the query parameter \"timeout\" is none of"},
    {"unix:///run/redis.sock?db=1&x=2", "the query parameter \"x\" is none of"},
    {"unix:///run/redis.sock#x", "unexpected \"#x\" after the path"},
};

static void test_bad(void) {
  for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
    const bad_url *b = &bad_urls[i];
    portalock_redis_options o;
    portalock_redis_options_init(&o);
    o.host = "kept";
    o.db = 5;
    char buf[128];
    portalock_error err;
    if (portalock_redis_options_parse_url(&o, b->url, buf, sizeof buf, &err) != PORTALOCK_INVALID)
      tu_fail(__FILE__, __LINE__, "\"%s\" was not INVALID", b->url);
    CHECK_INT(err.status, PORTALOCK_INVALID);
    /* (test_password_masked shows how a URL with a password appears) */
    char expected[512];
    snprintf(expected, sizeof expected, "bad argument 'url' (\"%s\"): %s", b->url, b->problem);
    if (strchr(b->url, '@') != NULL) snprintf(expected, sizeof expected, "\"): %s", b->problem);
    if (strchr(b->url, '@') != NULL ? strstr(err.message, expected) == NULL ||
                                          strncmp(err.message, "bad argument 'url' (\"", 20) != 0
                                    : strncmp(err.message, expected, strlen(expected)) != 0)
      tu_fail(__FILE__, __LINE__, "\"%s\": message \"%s\", expected \"%s...\"", b->url, err.message,
              expected);
    /* a refused URL leaves the options as they were */
    CHECK_STR(o.host, "kept");
    CHECK_INT(o.db, 5);
    CHECK_INT(o.port, PORTALOCK_REDIS_DEFAULT_PORT);
    CHECK(o.path == NULL && o.username == NULL && o.password == NULL);
    /* and a NULL error is no crash */
    CHECK_INT(portalock_redis_options_parse_url(&o, b->url, buf, sizeof buf, NULL),
              PORTALOCK_INVALID);
  }
}

/* A refusal shows the URL with the password masked, also where an unencoded character in the
 * password broke the parse. */
static void test_password_masked(void) {
  static const struct {
    const char *url, *shown;
  } cases[] = {
      {"redis://u:s3cret@h:0", "redis://u:***@h:0"},
      {"redis://:s3cret@h/x", "redis://:***@h/x"},
      {"redis://:s3cr/et@h", "redis://:***@h"},   /* '/' ends the authority */
      {"redis://:s3cr?et@h", "redis://:***@h"},   /* '?' too */
      {"redis://:s3cret%zz@h", "redis://:***@h"}, /* the bad escape itself is not shown */
      {"rediss://default:s3cret@h", "rediss://default:***@h"},
      {"redis://:a@s3cret@h:0", "redis://:***@h:0"},
      {"redis://:s3cret@/0", "redis://:***@/0"},
      /* a password written without its ':' is not quoted as a user */
      {"redis://s3cret@h:0", "redis://***@h:0"},
      {"redis://s3cret@h", "redis://***@h"},
      {"unix://:s3cret@/s?db=x", "unix://:***@/s?db=x"},
      {"unix://u:s3cret@s", "unix://u:***@s"},
      /* a password= value and what follows it (an unencoded '&' may be part of it) */
      {"unix:///s?db=x&password=s3cret", "unix:///s?db=x&password=***"},
      {"unix:///s?password=s3&cret&db=1", "unix:///s?password=***"},
      {"redis://h?password=s3cret&password=x#y", "redis://h?password=***#y"},
      {"redis://h?password=s3cr%zz", "redis://h?password=***"},
      {"R?password=s3cret://h", "R?password=***"}, /* a query before any "://" */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    portalock_redis_options o;
    portalock_redis_options_init(&o);
    char buf[128];
    portalock_error err;
    CHECK_STATUS(portalock_redis_options_parse_url(&o, cases[i].url, buf, sizeof buf, &err),
                 PORTALOCK_INVALID, &err);
    char expected[256];
    snprintf(expected, sizeof expected, "bad argument 'url' (\"%s\"): ", cases[i].shown);
    if (strncmp(err.message, expected, strlen(expected)) != 0 || strstr(err.message, "s3cr"))
      tu_fail(__FILE__, __LINE__, "\"%s\": message \"%s\"", cases[i].url, err.message);
  }
}

static void test_arguments(void) {
  portalock_redis_options o;
  portalock_redis_options_init(&o);
  portalock_error err;
  char buf[64];
  const char *url = "redis://localhost:6380/1"; /* 24 bytes */
  CHECK_STATUS(portalock_redis_options_parse_url(&o, url, buf, 24, &err), PORTALOCK_INVALID, &err);
  CHECK_STR(err.message, "bad argument 'cap' (24): the URL needs 25 bytes (its length + 1)");
  CHECK_STATUS(portalock_redis_options_parse_url(&o, url, buf, 0, &err), PORTALOCK_INVALID, &err);
  CHECK_CONTAINS(err.message, "bad argument 'cap' (0)");
  CHECK(o.host == NULL && o.port == PORTALOCK_REDIS_DEFAULT_PORT && o.db == 0);
  CHECK_OK(portalock_redis_options_parse_url(&o, url, buf, 25, &err), &err);
  CHECK_STR(o.host, "localhost");
  CHECK_STATUS(portalock_redis_options_parse_url(&o, NULL, buf, sizeof buf, &err),
               PORTALOCK_INVALID, &err);
  CHECK_STR(err.message, "bad argument 'url' (NULL)");
  CHECK_STATUS(portalock_redis_options_parse_url(&o, url, NULL, sizeof buf, &err),
               PORTALOCK_INVALID, &err);
  CHECK_STR(err.message, "bad argument 'buf' (NULL)");
  CHECK_STATUS(portalock_redis_options_parse_url(NULL, url, buf, sizeof buf, &err),
               PORTALOCK_INVALID, &err);
  CHECK_STR(err.message, "bad argument 'opts' (NULL)");
  /* success clears a previous error */
  CHECK_OK(portalock_redis_options_parse_url(&o, "unix:///tmp/r.sock", buf, sizeof buf, &err),
           &err);
  CHECK_INT(err.status, PORTALOCK_OK);
  CHECK_STR(err.message, "");
  CHECK(o.host == NULL && o.username == NULL);
  CHECK_STR(o.path, "/tmp/r.sock");
}

/* A long URL is cut in the message, which stays a complete sentence. */
static void test_long_url(void) {
  size_t len = 3000;
  char *url = malloc(len + 1), *buf = malloc(len + 1);
  CHECK(url != NULL && buf != NULL);
  memcpy(url, "redis://", 8);
  memset(url + 8, 'a', len - 8);
  memcpy(url + len - 3, ":0", 3);
  portalock_redis_options o;
  portalock_redis_options_init(&o);
  portalock_error err;
  CHECK_STATUS(portalock_redis_options_parse_url(&o, url, buf, len + 1, &err), PORTALOCK_INVALID,
               &err);
  CHECK_CONTAINS(err.message, "...\"): the port \"0\" must be an integer within 1..65535");
  CHECK(strlen(err.message) < 400);
  free(url);
  free(buf);
}

int main(void) {
  tu_init("redis_url");
  tu_group("defaults");
  test_defaults();
  tu_group("accepted URLs");
  test_good();
  tu_group("refused URLs name the URL and what is wrong");
  test_bad();
  tu_group("a refusal never shows the password");
  test_password_masked();
  tu_group("bad arguments");
  test_arguments();
  tu_group("a long URL");
  test_long_url();
  return tu_done();
}
