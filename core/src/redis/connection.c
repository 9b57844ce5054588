/*
 * The C transport: one socket to the server, with a deadline on every wait. RESP is hiredis's
 * (protocol.c formats, a redisReader parses); the socket, its options and its timeouts are
 * ours, so that nothing here raises SIGPIPE or waits without bound.
 */
#include "redis.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* (BSDs: SO_NOSIGPIPE below) */
#endif

int pl_rms_until(double deadline) {
  double left = deadline - portalock_monotonic();
  if (!(left > 0)) return 0;
  if (left > 86400) return 86400 * 1000;
  return (int)ceil(left * 1000);
}

/* Waits until `fd` is ready for `events` by `deadline`: 0, or -1 with errno (ETIMEDOUT). */
static int pl_wait_ready(int fd, short events, double deadline) {
  for (;;) {
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, pl_rms_until(deadline));
    if (n > 0) return 0;
    if (n == 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    if (errno != EINTR) return -1;
  }
}

static void pl_tune_tcp(int fd, const portalock_redis_options *opts) {
  int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
#ifdef TCP_KEEPIDLE
  /* A peer that vanished (a host down, a cable cut) is noticed within about ttl, not hours. */
  /* (Linux refuses more than 32767 s, and would keep its default of two hours.) */
  double third = opts->ttl / 3;
  int idle = third < 1 ? 1 : third > 32767 ? 32767 : (int)third, interval = 1, count = 3;
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
#endif
#ifdef TCP_USER_TIMEOUT
  double ms = opts->command_timeout * 1000; /* the kernel takes up to INT_MAX */
  unsigned int user_timeout = ms < INT_MAX ? (unsigned int)ms : INT_MAX;
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
#endif
#ifdef SO_NOSIGPIPE
  setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof on);
#endif
}

/* A non-blocking connect to one address by `deadline`: the socket, or -1 with errno. */
static int pl_connect_to(const struct sockaddr *addr, socklen_t len, int family, double deadline) {
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  if (connect(fd, addr, len) == 0) return fd;
  if (errno == EINPROGRESS || errno == EINTR) {
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (pl_wait_ready(fd, POLLOUT, deadline) == 0 &&
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0) {
      if (soerr == 0) return fd;
      errno = soerr;
    }
  }
  int saved = errno;
  close(fd);
  errno = saved;
  return -1;
}

void pl_rconn_where(const portalock_redis_options *opts, char *buf, size_t cap) {
  if (opts->path != NULL)
    snprintf(buf, cap, "Redis at unix:%s", opts->path);
  else
    snprintf(buf, cap, "Redis at %s:%d", opts->host != NULL ? opts->host : "127.0.0.1",
             opts->port != 0 ? opts->port : PORTALOCK_REDIS_DEFAULT_PORT);
}

/* A connected socket, or -1 with errno, or with *resolve the getaddrinfo(3) error (not
 * EAI_SYSTEM) of a host name that could not be resolved. */
static int pl_connect(const portalock_redis_options *opts, double deadline, int *resolve) {
  *resolve = 0;
  if (opts->path != NULL) {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(opts->path) >= sizeof sun.sun_path) {
      errno = ENAMETOOLONG;
      return -1;
    }
    strcpy(sun.sun_path, opts->path);
    return pl_connect_to((struct sockaddr *)&sun, sizeof sun, AF_UNIX, deadline);
  }
  const char *host = opts->host != NULL ? opts->host : "127.0.0.1";
  int port = opts->port != 0 ? opts->port : PORTALOCK_REDIS_DEFAULT_PORT;
  char service[16];
  snprintf(service, sizeof service, "%d", port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *list;
  int rc = getaddrinfo(host, service, &hints, &list);
  if (rc != 0) {
    if (rc != EAI_SYSTEM) *resolve = rc;
    return -1;
  }
  int fd = -1;
  for (struct addrinfo *ai = list; ai != NULL && fd < 0; ai = ai->ai_next) {
    fd = pl_connect_to(ai->ai_addr, ai->ai_addrlen, ai->ai_family, deadline);
    if (fd >= 0) pl_tune_tcp(fd, opts);
  }
  freeaddrinfo(list);
  return fd;
}

static portalock_status pl_rconn_auth(pl_rconn *conn, const portalock_redis_options *opts,
                                      double deadline, portalock_error *err) {
  if (opts->password == NULL) return PORTALOCK_OK;
  pl_rcommand cmd;
  int failed = pl_rproto_auth(&cmd, opts->username, opts->password) < 0;
  portalock_status status = failed ? pl_fail_sys(err, ENOMEM, "AUTH", NULL)
                                   : pl_rconn_send_command(conn, &cmd, deadline, err);
  if (!failed) pl_rcommand_free(&cmd);
  redisReply *reply = NULL;
  if (status == PORTALOCK_OK) status = pl_rconn_read(conn, &reply, deadline, err);
  if (status == PORTALOCK_OK && reply->type != REDIS_REPLY_STATUS)
    status = pl_rconn_refused(conn, "AUTH", reply, err);
  if (reply != NULL) freeReplyObject(reply);
  return status;
}

portalock_status pl_rconn_unreachable(int errnum, const char *where, const char *reason,
                                      portalock_error *err) {
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, errnum, NULL, "cannot connect to %s: %s", where,
                 reason);
}

portalock_status pl_rconn_refused_by(const char *where, const char *command,
                                     const redisReply *reply, portalock_error *err) {
  if (reply->type != REDIS_REPLY_ERROR)
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, EPROTO, NULL,
                   "%s answered %s with an unexpected reply (type %d)", where, command,
                   reply->type);
  /* The usual first error of a server that wants a password, whatever the command. */
  int noauth = reply->len >= 6 && memcmp(reply->str, "NOAUTH", 6) == 0;
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, 0, NULL, "%s refused %s: %.*s%s", where, command,
                 (int)(reply->len > 300 ? 300 : reply->len), reply->str,
                 noauth ? " (give the password in the URL, redis://:password@host)" : "");
}

portalock_status pl_rconn_refused(const pl_rconn *conn, const char *command,
                                  const redisReply *reply, portalock_error *err) {
  return pl_rconn_refused_by(conn->where, command, reply, err);
}

portalock_status pl_rconn_open(pl_rconn *conn, const portalock_redis_options *opts,
                               const char *where, double deadline, portalock_error *err) {
  *conn = (pl_rconn)PL_RCONN_NONE;
  conn->where = where;
  int resolve;
  conn->fd = pl_connect(opts, deadline, &resolve);
  if (conn->fd < 0 && resolve != 0)
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, 0, NULL,
                   "cannot connect to %s: the host name \"%s\" could not be resolved (%s)", where,
                   opts->host, gai_strerror(resolve));
  if (conn->fd < 0) {
    int e = errno;
    char reason[128];
    pl_strerror(e, reason, sizeof reason);
    return pl_rconn_unreachable(e, where, e == ETIMEDOUT ? "timed out (connect_timeout)" : reason,
                                err);
  }
  conn->reader = redisReaderCreate();
  if (conn->reader == NULL) {
    pl_rconn_close(conn);
    return pl_fail_sys(err, ENOMEM, "redisReaderCreate", NULL);
  }
  portalock_status status = pl_rconn_auth(conn, opts, deadline, err);
  if (status != PORTALOCK_OK) pl_rconn_close(conn);
  return status;
}

void pl_rconn_close(pl_rconn *conn) {
  if (conn->fd >= 0) close(conn->fd);
  if (conn->reader != NULL) redisReaderFree(conn->reader);
  const char *where = conn->where;
  *conn = (pl_rconn)PL_RCONN_NONE;
  conn->where = where;
}

void pl_rconn_shut(pl_rconn *conn) {
  if (conn->fd >= 0) shutdown(conn->fd, SHUT_RDWR);
}

portalock_status pl_rconn_broken(const char *where, int errnum, const char *doing,
                                 const char *reason, portalock_error *err) {
  if (errnum == ETIMEDOUT)
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, errnum, NULL,
                   "%s did not answer in time (command_timeout) while %s", where, doing);
  char text[128];
  if (reason == NULL && errnum != 0) {
    pl_strerror(errnum, text, sizeof text);
    reason = text;
  }
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, errnum, NULL,
                 "the connection to %s was lost while %s: %s", where, doing,
                 reason == NULL ? "closed by the server" : reason);
}

static portalock_status pl_rconn_failed(const pl_rconn *conn, int errnum, const char *doing,
                                        portalock_error *err) {
  return pl_rconn_broken(conn->where, errnum, doing, NULL, err);
}

portalock_status pl_rconn_send(pl_rconn *conn, const char *buf, size_t len, double deadline,
                               portalock_error *err) {
  while (len > 0) {
    ssize_t n = send(conn->fd, buf, len, MSG_NOSIGNAL);
    if (n > 0) {
      buf += n;
      len -= (size_t)n;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (pl_wait_ready(conn->fd, POLLOUT, deadline) < 0)
        return pl_rconn_failed(conn, errno, "sending", err);
    } else if (!(n < 0 && errno == EINTR)) {
      return pl_rconn_failed(conn, n < 0 ? errno : EPIPE, "sending", err);
    }
  }
  return PORTALOCK_OK;
}

portalock_status pl_rconn_send_command(pl_rconn *conn, const pl_rcommand *cmd, double deadline,
                                       portalock_error *err) {
  size_t len;
  char *buf = pl_rcommand_format(cmd, &len);
  if (buf == NULL) return pl_fail_sys(err, ENOMEM, "formatting a Redis command", NULL);
  portalock_status status = pl_rconn_send(conn, buf, len, deadline, err);
  redisFreeCommand(buf);
  return status;
}

int pl_rconn_next(pl_rconn *conn, redisReply **reply) {
  void *r = NULL;
  if (redisReaderGetReply(conn->reader, &r) != REDIS_OK) return -1;
  *reply = r;
  return r != NULL;
}

int pl_rconn_receive(pl_rconn *conn) {
  char buf[16384];
  for (;;) {
    ssize_t n = recv(conn->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      if (redisReaderFeed(conn->reader, buf, (size_t)n) != REDIS_OK) {
        errno = EPROTO;
        return -1;
      }
      if ((size_t)n < sizeof buf) return 0;
    } else if (n == 0) {
      errno = 0;
      return -1;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return 0;
    } else if (errno != EINTR) {
      return -1;
    }
  }
}

portalock_status pl_rconn_read(pl_rconn *conn, redisReply **reply, double deadline,
                               portalock_error *err) {
  for (;;) {
    int got = pl_rconn_next(conn, reply);
    if (got > 0) return PORTALOCK_OK;
    if (got < 0) return pl_rconn_failed(conn, EPROTO, "reading a reply", err);
    if (pl_wait_ready(conn->fd, POLLIN, deadline) < 0)
      return pl_rconn_failed(conn, errno, "waiting for a reply", err);
    if (pl_rconn_receive(conn) < 0) return pl_rconn_failed(conn, errno, "reading a reply", err);
  }
}
