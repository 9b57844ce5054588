#include "redis_server.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
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

/* ---------------------------------------------------------------- the proxy */

enum { RS_PROXY_MAX = 16 };

int rs_proxy_port;
static int rs_proxy_listener = -1, rs_proxy_control[2] = {-1, -1}; /* 'c' cut, 'x' stop */
static int rs_proxy_client[RS_PROXY_MAX], rs_proxy_server[RS_PROXY_MAX];
static atomic_int rs_proxy_count, rs_proxy_cut_request;
static pthread_t rs_proxy_thread;

static int rs_proxy_connect(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)rs_port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
  return fd;
}

/* Copies what `from` has to `to`; -1 when `from` has ended. */
static int rs_proxy_relay(int from, int to) {
  char buf[65536];
  ssize_t n = read(from, buf, sizeof buf);
  if (n <= 0) return -1;
  for (ssize_t done = 0; done < n;) {
    ssize_t w = send(to, buf + done, (size_t)(n - done), MSG_NOSIGNAL);
    if (w <= 0) return -1;
    done += w;
  }
  return 0;
}

static void *rs_proxy_run(void *arg) {
  (void)arg;
  for (;;) {
    struct pollfd p[2 + 2 * RS_PROXY_MAX] = {{.fd = rs_proxy_listener, .events = POLLIN},
                                             {.fd = rs_proxy_control[0], .events = POLLIN}};
    int count = atomic_load(&rs_proxy_count);
    for (int i = 0; i < count; i++) {
      p[2 + 2 * i] = (struct pollfd){.fd = rs_proxy_server[i] >= 0 ? rs_proxy_client[i] : -1,
                                     .events = POLLIN};
      p[3 + 2 * i] = (struct pollfd){.fd = rs_proxy_server[i], .events = POLLIN};
    }
    poll(p, (nfds_t)(2 + 2 * count), -1);
    if (p[1].revents != 0) {
      char what = 'x';
      CHECK(read(rs_proxy_control[0], &what, 1) == 1);
      if (what == 'x') return NULL;
      int cut = atomic_load(&rs_proxy_cut_request);
      CHECK(cut < count && rs_proxy_server[cut] >= 0);
      close(rs_proxy_server[cut]);
      rs_proxy_server[cut] = -1;
      continue;
    }
    if (p[0].revents != 0 && count < RS_PROXY_MAX) {
      rs_proxy_client[count] = accept4(rs_proxy_listener, NULL, NULL, SOCK_CLOEXEC);
      rs_proxy_server[count] = rs_proxy_connect();
      atomic_store(&rs_proxy_count, count + 1);
    }
    for (int i = 0; i < count; i++) {
      if (rs_proxy_server[i] < 0) continue;
      if ((p[2 + 2 * i].revents != 0 &&
           rs_proxy_relay(rs_proxy_client[i], rs_proxy_server[i]) < 0) ||
          (p[3 + 2 * i].revents != 0 &&
           rs_proxy_relay(rs_proxy_server[i], rs_proxy_client[i]) < 0)) {
        close(rs_proxy_server[i]);
        rs_proxy_server[i] = -1;
        shutdown(rs_proxy_client[i], SHUT_RDWR);
      }
    }
  }
}

void rs_proxy_start(void) {
  rs_proxy_listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  CHECK(bind(rs_proxy_listener, (struct sockaddr *)&a, sizeof a) == 0);
  CHECK(listen(rs_proxy_listener, 16) == 0);
  CHECK(getsockname(rs_proxy_listener, (struct sockaddr *)&a, &len) == 0);
  rs_proxy_port = ntohs(a.sin_port);
  CHECK(pipe2(rs_proxy_control, O_CLOEXEC) == 0);
  atomic_store(&rs_proxy_count, 0);
  pthread_create(&rs_proxy_thread, NULL, rs_proxy_run, NULL);
}

void rs_proxy_cut(int n) {
  atomic_store(&rs_proxy_cut_request, n);
  CHECK(write(rs_proxy_control[1], "c", 1) == 1);
  tu_sleep(0.05); /* the proxy's thread cuts meanwhile */
}

void rs_proxy_stop(void) {
  CHECK(write(rs_proxy_control[1], "x", 1) == 1);
  pthread_join(rs_proxy_thread, NULL);
  int count = atomic_load(&rs_proxy_count);
  for (int i = 0; i < count; i++) {
    close(rs_proxy_client[i]);
    if (rs_proxy_server[i] >= 0) close(rs_proxy_server[i]);
  }
  close(rs_proxy_listener);
  close(rs_proxy_control[0]);
  close(rs_proxy_control[1]);
}
