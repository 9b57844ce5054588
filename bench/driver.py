"""Benchmark driver for bench/run: Python's portalocker and py-filelock.

The same command line as driver.c:
  serve IMPL PATH CI WAIT | uncontended IMPL PATH MODE N | loop IMPL PATH HOLD_US CI TIMEOUT
  sem IMPL NAME SLOTS POOL JOBS JOB_MS CI
IMPL is "portalocker" or "filelock"; CI is the polling interval in seconds or "default".
WAIT is how serve acquires: "limit" (timeout WAIT_LIMIT) or "default" (the library's default
timeout: portalocker's 5 s, py-filelock's none).
Times printed are CLOCK_MONOTONIC nanoseconds (time.monotonic_ns on Linux).
"""
import os
import sys
import time

import filelock
import portalocker

from benchlib.driver import WAIT_LIMIT, cpu_ns, out, read_window, serve_stdin, sleep_until


def make_lock(impl, path, ci, wait="limit"):
    """acquire(timeout) and release() functions for IMPL; acquire() waits as WAIT says."""
    if wait not in ("limit", "default"):
        raise SystemExit(f"WAIT must be limit or default, not {wait!r}")
    if impl == "portalocker":
        kwargs = {} if ci == "default" else {"check_interval": float(ci)}
        if wait == "limit":
            kwargs["timeout"] = WAIT_LIMIT
        lock = portalocker.Lock(path, **kwargs)
        return lock.acquire, lock.release
    lock = filelock.FileLock(path)
    kwargs = {} if ci == "default" else {"poll_interval": float(ci)}
    default = WAIT_LIMIT if wait == "limit" else -1  # -1: py-filelock's "forever"
    return (lambda timeout=default: lock.acquire(timeout=timeout, **kwargs)), lock.release


def serve(impl, path, ci, wait):
    serve_stdin(*make_lock(impl, path, ci, wait))


def one_fd_cycle(impl, handle):
    if impl != "portalocker":
        raise SystemExit("lock/unlock on an open file: portalocker only")
    portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
    portalocker.unlock(handle)


def uncontended(impl, path, mode, n):
    acquire, release = make_lock(impl, path, "default")
    samples = []
    with open(path, "a") as handle:
        for _ in range(int(n)):
            t0 = time.monotonic_ns()
            if mode == "open":
                acquire(timeout=0)
                release()
            else:
                one_fd_cycle(impl, handle)
            samples.append(time.monotonic_ns() - t0)
    out("samples", *samples)


def spin_us(us):
    end = time.monotonic_ns() + us * 1000
    while time.monotonic_ns() < end:
        pass


def try_acquire(acquire, end):
    left = (end - time.monotonic_ns()) / 1e9
    try:
        return left > 0 and acquire(timeout=left) is not False
    except (portalocker.LockException, filelock.Timeout):
        return False


def loop(impl, path, hold_us, ci, timeout):
    if timeout != "window":
        raise SystemExit("loop: the peers wait at most until the window's end")
    acquire, release = make_lock(impl, path, ci)
    start, end = read_window()
    sleep_until(start)
    cpu0, stamps = cpu_ns(), []
    while time.monotonic_ns() < end and try_acquire(acquire, end):
        if time.monotonic_ns() >= end:
            release()
            break
        stamps.append(time.monotonic_ns())
        spin_us(int(hold_us))
        release()
    out("done", len(stamps), cpu_ns() - cpu0, *stamps)


def claim_job(pool, jobs, cursor):
    """Claims the next job of the shared pool as driver.c's claim_job does: the next cursor,
    or None when no job is left."""
    while cursor <= jobs:
        try:
            os.rename(f"{pool}/{cursor}", f"{pool}/{cursor}.taken")
            return cursor + 1
        except FileNotFoundError:
            cursor += 1
    return None


def sem(impl, name, slots, pool, jobs, job_ms, ci):
    if impl != "portalocker":
        raise SystemExit("semaphore: portalocker only")
    kwargs = {} if ci == "default" else {"check_interval": float(ci)}
    semaphore = portalocker.BoundedSemaphore(
        int(slots), name=name, directory="/tmp", timeout=WAIT_LIMIT, **kwargs)
    start, _ = read_window()
    sleep_until(start)
    cursor = claim_job(pool, int(jobs), 1)
    while cursor is not None:
        semaphore.acquire()
        t0 = time.monotonic_ns()
        spin_us(int(job_ms) * 1000)  # a job computes, as in driver.c
        out("job", t0, time.monotonic_ns())
        semaphore.release()
        cursor = claim_job(pool, int(jobs), cursor)
    out("done")


COMMANDS = {"serve": serve, "uncontended": uncontended, "loop": loop, "sem": sem}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
