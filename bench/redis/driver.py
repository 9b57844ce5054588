"""Benchmark driver for bench/redis/run: Python portalocker's RedisLock ("portalocker"),
redis-py's Lock ("redispy") and one EVALSHA round trip of a trivial script through redis-py
("evalsha").

The same command line as driver.c:
  serve IMPL NAME CI WAIT | uncontended IMPL NAME N | loop IMPL NAME
The server is $PORTALOCK_BENCH_REDIS (a redis:// URL). CI is the check interval in seconds or
"default" (portalocker's check_interval; redis-py's sleep); WAIT is ignored (every wait is
bounded by WAIT_LIMIT only). redis-py's Lock has no lease unless given one, and then a waiter
of a killed holder waits for it: it gets LEASE seconds (bench/redis/run says so).
Times printed are CLOCK_MONOTONIC nanoseconds (time.monotonic_ns on Linux).
"""
import os
import sys
import time

import portalocker
import redis

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # bench/
from benchlib.driver import (  # noqa: E402 (after the path it needs)
    WAIT_LIMIT, cpu_ns, out, read_window, serve_stdin, sleep_until)

LEASE = 2.0


def connection():
    return redis.Redis.from_url(os.environ["PORTALOCK_BENCH_REDIS"])


def make_lock(impl, name, ci):
    """acquire(timeout) -> bool and release() for IMPL on one open connection."""
    conn = connection()
    if impl == "portalocker":
        kwargs = {} if ci == "default" else {"check_interval": float(ci)}
        lock = portalocker.RedisLock(name, connection=conn, **kwargs)

        def acquire(timeout):
            try:
                lock.acquire(timeout=timeout)
                return True
            except portalocker.AlreadyLocked:
                return False

        return acquire, lock.release
    if impl == "redispy":
        kwargs = {} if ci == "default" else {"sleep": float(ci)}
        lock = conn.lock(name, timeout=LEASE, **kwargs)
        return (lambda timeout: lock.acquire(blocking_timeout=timeout)), lock.release
    raise SystemExit(f"IMPL must be portalocker or redispy here, not {impl!r}")


def serve(impl, name, ci, _wait):
    acquire, release = make_lock(impl, name, ci)

    def acquire_within_limit():
        if not acquire(WAIT_LIMIT):
            raise SystemExit("acquire timed out")

    serve_stdin(acquire_within_limit, release)


def uncontended(impl, name, n):
    samples = []
    if impl == "evalsha":
        conn = connection()
        sha = conn.script_load("return 1")
        for _ in range(int(n)):
            t0 = time.monotonic_ns()
            conn.evalsha(sha, 0)
            samples.append(time.monotonic_ns() - t0)
    else:
        acquire, release = make_lock(impl, name, "default")
        for _ in range(int(n)):
            t0 = time.monotonic_ns()
            if not acquire(0):
                raise SystemExit("the lock is held by another")
            release()
            samples.append(time.monotonic_ns() - t0)
    out("samples", *samples)


def loop(impl, name):
    acquire, release = make_lock(impl, name, "default")
    start, end = read_window()
    sleep_until(start)
    cpu0, stamps = cpu_ns(), []
    while time.monotonic_ns() < end:
        if not acquire((end - time.monotonic_ns()) / 1e9):
            break
        stamps.append(time.monotonic_ns())
        release()
    out("done", len(stamps), cpu_ns() - cpu0, *stamps)


COMMANDS = {"serve": serve, "uncontended": uncontended, "loop": loop}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
