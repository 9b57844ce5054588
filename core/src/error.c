/* Filling portalock_error: the only place messages are formatted into it. */
#include "private.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *portalock_version(void) {
  return PORTALOCK_VERSION_STRING;
}

const char *portalock_status_name(portalock_status status) {
  switch (status) {
  case PORTALOCK_OK:
    return "OK";
  case PORTALOCK_CONTENDED:
    return "Contended";
  case PORTALOCK_ALREADY_LOCKED:
    return "AlreadyLocked";
  case PORTALOCK_LOCK_EXCEPTION:
    return "LockException";
  case PORTALOCK_INVALID:
    return "Invalid";
  }
  return "Unknown";
}

void pl_clear(portalock_error *err) {
  if (err == NULL) return;
  err->status = PORTALOCK_OK;
  err->errnum = 0;
  err->lost = 0;
  err->holder_pid = 0;
  err->path[0] = '\0';
  err->message[0] = '\0';
}

portalock_status pl_fail(portalock_error *err, portalock_status status, int errnum,
                         const char *path, const char *fmt, ...) {
  if (err == NULL) return status;
  pl_clear(err);
  err->status = status;
  err->errnum = errnum;
  if (path != NULL) snprintf(err->path, sizeof err->path, "%s", path);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  return status;
}

void pl_strerror(int errnum, char *buf, size_t len) {
  /* The XSI strerror_r (private.h keeps the GNU one away): thread-safe, unlike strerror. */
  if (strerror_r(errnum, buf, len) != 0) snprintf(buf, len, "errno %d", errnum);
}

portalock_status pl_fail_sys(portalock_error *err, int errnum, const char *what, const char *path) {
  if (err == NULL) return PORTALOCK_LOCK_EXCEPTION;
  char why[128];
  pl_strerror(errnum, why, sizeof why);
  if (path == NULL)
    return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, errnum, NULL, "%s: %s", what, why);
  return pl_fail(err, PORTALOCK_LOCK_EXCEPTION, errnum, path, "%s '%s': %s", what, path, why);
}
