/* The rules of a Redis server's address (url.c), for the URL parser and for options given
 * field by field. */
#ifndef PORTALOCK_REDIS_URL_H
#define PORTALOCK_REDIS_URL_H

/* The largest db index: SELECT reads it as a C int. */
#define PL_REDIS_DB_MAX 2147483647L

/* NULL when `port` is a TCP port (1..65535) and `db` a db index (0..PL_REDIS_DB_MAX), else what
 * is wrong, as a phrase after the value ("must be ..."). */
const char *pl_redis_port_problem(long port);
const char *pl_redis_db_problem(long db);

#endif
