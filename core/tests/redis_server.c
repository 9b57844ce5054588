#include "redis_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int rs_port;
static pid_t rs_pid;

int rs_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
  CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
  close(fd);
  return ntohs(a.sin_port);
}

void rs_stop(void) {
  if (rs_pid > 0 && getpid() != rs_pid) {
    kill(rs_pid, SIGKILL);
    waitpid(rs_pid, NULL, 0);
    rs_pid = 0;
  }
}

int rs_cli(const char *arg, ...) {
  char port[16];
  snprintf(port, sizeof port, "%d", rs_port);
  char *argv[16] = {"redis-cli", "-p", port};
  int argc = 3;
  va_list ap;
  va_start(ap, arg);
  for (const char *a = arg; a != NULL && argc < 15; a = va_arg(ap, const char *))
    argv[argc++] = (char *)a;
  va_end(ap);
  argv[argc] = NULL;
  return tu_run(argv);
}

int rs_start(void) {
  const char *server = getenv("PORTALOCK_TEST_REDIS_SERVER");
  if (server == NULL) server = "redis-server";
  for (int attempt = 0; attempt < 5; attempt++) {
    rs_port = rs_free_port();
    char port[16];
    snprintf(port, sizeof port, "%d", rs_port);
    rs_pid = fork();
    if (rs_pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL); /* a test that crashes leaves no server behind */
      int null = open("/dev/null", O_WRONLY);
      dup2(null, 1);
      execlp(server, server, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", (char *)NULL);
      _exit(127);
    }
    for (int i = 0; i < 100; i++) {
      int status;
      if (waitpid(rs_pid, &status, WNOHANG) == rs_pid) {
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return -1;
        rs_pid = 0;
        break; /* the port was taken meanwhile: another */
      }
      portalock_redis_options o;
      portalock_redis_options_init(&o);
      o.port = rs_port;
      portalock_redis_session_t *s;
      portalock_error err;
      if (portalock_redis_session_open(&s, &o, &err) == PORTALOCK_OK) {
        portalock_redis_session_free(s);
        atexit(rs_stop);
        return 0;
      }
      tu_sleep(0.05);
    }
    rs_stop();
  }
  return -1;
}

portalock_redis_session_t *rs_session(double ttl) {
  portalock_redis_options o;
  portalock_redis_options_init(&o);
  o.port = rs_port;
  o.ttl = ttl;
  portalock_redis_session_t *s;
  portalock_error err;
  CHECK_OK(portalock_redis_session_open(&s, &o, &err), &err);
  return s;
}
