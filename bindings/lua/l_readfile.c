/*
 * read_regular_file(path, limit) -> contents | nil, message, errno
 *
 * Reads a whole file that must be a regular file of at most `limit` bytes (the config
 * file). The open never blocks (O_NONBLOCK: a FIFO would wait for a writer) and the type
 * and size are checked on the open descriptor before anything is read, so a directory, a
 * FIFO, a device (/dev/zero) or an oversized file is refused at once, by name.
 */
#include "l_private.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int push_refusal(lua_State *L, const char *path, const char *problem, int errnum) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", path, problem);
  lua_pushinteger(L, errnum);
  return 3;
}

static const char *type_problem(mode_t mode) {
  if (S_ISDIR(mode)) return "is a directory, not a regular file";
  if (S_ISFIFO(mode)) return "is a FIFO, not a regular file";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "is a device, not a regular file";
  if (S_ISSOCK(mode)) return "is a socket, not a regular file";
  return "is not a regular file";
}

static int r_read_regular_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Number limit = luaL_checknumber(L, 2);
  luaL_argcheck(L, limit >= 0 && limit <= 1e9, 2, "must be a number of bytes within 0..1e9");
  size_t cap = (size_t)limit;
  /* The buffer first: no Lua allocation (which may raise) happens while the file is open. */
  char *buf = (char *)lua_newuserdatauv(L, cap + 1, 0);
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    int errnum = errno;
    return push_refusal(L, path, strerror(errnum), errnum);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int errnum = errno;
    close(fd);
    return push_refusal(L, path, strerror(errnum), errnum);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return push_refusal(L, path, type_problem(st.st_mode), S_ISDIR(st.st_mode) ? EISDIR : EINVAL);
  }
  size_t got = 0;
  int errnum = 0;
  if ((unsigned long long)st.st_size <= cap) {
    /* one byte more than the limit: a file that grew since fstat is still caught */
    while (got <= cap) {
      ssize_t n = read(fd, buf + got, cap + 1 - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) errnum = errno;
      if (n <= 0) break;
      got += (size_t)n;
    }
  } else {
    got = cap + 1;
  }
  close(fd);
  if (errnum != 0) return push_refusal(L, path, strerror(errnum), errnum);
  if (got > cap) {
    char problem[96];
    snprintf(problem, sizeof problem, "is larger than the limit of %zu bytes", cap);
    return push_refusal(L, path, problem, EFBIG);
  }
  lua_pushlstring(L, buf, got);
  return 1;
}

static const luaL_Reg readfile_functions[] = {{"read_regular_file", r_read_regular_file},
                                              {NULL, NULL}};

void pl_open_readfile(lua_State *L) {
  luaL_setfuncs(L, readfile_functions, 0);
}
