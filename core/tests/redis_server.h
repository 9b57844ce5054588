/* A redis-server of the test's own on a free loopback port (--save '' --appendonly no), for the
 * C tests of the Redis backend. */
#ifndef PORTALOCK_TEST_REDIS_SERVER_H
#define PORTALOCK_TEST_REDIS_SERVER_H

#include "testutil.h"

extern int rs_port;

/* A port that was free a moment ago. */
int rs_free_port(void);
/* Starts the server and waits until a session opens on it: 0, or -1 when redis-server could
 * not be started (the caller skips). The server is stopped when the process exits. */
int rs_start(void);
void rs_stop(void);
/* Runs `redis-cli -p PORT args...` (NULL-terminated), returning its exit status. */
int rs_cli(const char *arg, ...);
/* A session on the server with lease `ttl` (fails the test when it cannot open). */
portalock_redis_session_t *rs_session(double ttl);

/* A loopback TCP proxy to the server, relaying every connection made to rs_proxy_port. */
extern int rs_proxy_port;
void rs_proxy_start(void);
/* Closes the server's side of the proxy's connection number `n` (0: the first made) and stops
 * relaying it, leaving the client's side open and mute: a half-open connection, which the
 * server has seen end and the client has not. */
void rs_proxy_cut(int n);
void rs_proxy_stop(void);

#endif
