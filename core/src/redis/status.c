/*
 * Who holds and waits for a name: the STATUS script's answer (scripts.c), for
 * `portalock status` and anyone who asks before acquiring.
 */
#include "redis.h"

#include <errno.h>
#include <stdlib.h>

static int pl_by_token(const void *a, const void *b) {
  uint64_t x = ((const portalock_redis_holder *)a)->token;
  uint64_t y = ((const portalock_redis_holder *)b)->token;
  return (x > y) - (x < y);
}

portalock_status pl_rstatus_read(const redisReply *reply, portalock_redis_status *out,
                                 portalock_error *err) {
  if (pl_rproto_status_reply(reply, out) < 0)
    return errno == ENOMEM ? pl_fail_sys(err, ENOMEM, "asking Redis", NULL)
                           : pl_rproto_error(reply, "asking Redis who holds a name", err);
  if (out->count > 1) qsort(out->holders, out->count, sizeof *out->holders, pl_by_token);
  return PORTALOCK_OK;
}

portalock_status portalock_redis_name_status(portalock_redis_session_t *session, const char *name,
                                             portalock_redis_status *out, portalock_error *err) {
  pl_clear(err);
  if (out == NULL) return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'out' (NULL)");
  *out = (portalock_redis_status){0};
  if (session == NULL)
    return pl_fail(err, PORTALOCK_INVALID, 0, NULL, "bad argument 'session' (NULL)");
  if (pl_rname_check(name, err) != PORTALOCK_OK) return err->status;
  char *keys[PL_KEYS];
  pl_rcommand cmd;
  if (pl_rkeys_make(name, keys) < 0) return pl_fail_sys(err, ENOMEM, "asking Redis", NULL);
  int made = pl_rproto_status(&cmd, session->sha[PL_SCRIPT_STATUS], keys, name);
  free(keys[0]); /* (one block) */
  if (made < 0) return pl_fail_sys(err, ENOMEM, "asking Redis", NULL);
  redisReply *reply = NULL;
  portalock_status status = pl_rsession_call(session, PL_SCRIPT_STATUS, &cmd, &reply, err);
  pl_rcommand_free(&cmd);
  if (status != PORTALOCK_OK) return status;
  status = pl_rstatus_read(reply, out, err);
  freeReplyObject(reply);
  return status;
}

void portalock_redis_status_free(portalock_redis_status *status) {
  if (status == NULL) return;
  free(status->holders);
  *status = (portalock_redis_status){0};
}
