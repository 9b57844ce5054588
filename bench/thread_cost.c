/*
 * What one wait through the kernel queue costs in thread handling alone: the CPU and wall
 * time of creating and joining a thread that returns at once, on a stack kept from one
 * thread to the next (as core/src/wake.c keeps it).
 *
 *   cc -O2 -pthread bench/thread_cost.c -o /tmp/thread_cost && /tmp/thread_cost
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "cost.h"

#define ROUNDS 20000
#define STACK_SIZE (256 * 1024)

static void *returns_at_once(void *arg) {
  return arg;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int main(void) {
  void *stack = aligned_alloc(4096, STACK_SIZE);
  pthread_attr_t attr;
  if (stack == NULL || pthread_attr_init(&attr) != 0 ||
      pthread_attr_setstack(&attr, stack, STACK_SIZE) != 0) {
    fprintf(stderr, "thread_cost: cannot set up the stack\n");
    return 1;
  }
  double wall = cost_wall_seconds(), cpu = cpu_seconds();
  for (int i = 0; i < ROUNDS; i++) {
    pthread_t thread;
    if (pthread_create(&thread, &attr, returns_at_once, NULL) != 0) {
      fprintf(stderr, "thread_cost: pthread_create failed\n");
      return 1;
    }
    pthread_join(thread, NULL);
  }
  printf("thread create+join: %.1f us wall, %.1f us CPU each (%d rounds)\n",
         (cost_wall_seconds() - wall) / ROUNDS * 1e6, (cpu_seconds() - cpu) / ROUNDS * 1e6, ROUNDS);
  pthread_attr_destroy(&attr);
  free(stack);
  return 0;
}
