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

#endif
