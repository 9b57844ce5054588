"""What the Python benchmark drivers (bench/driver.py, bench/redis/driver.py) share: the bound
on every wait, the clock (CLOCK_MONOTONIC nanoseconds: time.monotonic_ns on Linux), CPU time,
the output, the timed window and the serve command."""
import resource
import sys
import time

WAIT_LIMIT = 120  # seconds: no wait in a benchmark lasts longer


def out(*words):
    print(*words, flush=True)


def cpu_ns():
    """The process's CPU time, user and system, of every thread (a library's too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return int((usage.ru_utime + usage.ru_stime) * 1e9)


def sleep_until(t_ns):
    while time.monotonic_ns() < t_ns:
        time.sleep(max(0, t_ns - time.monotonic_ns()) / 1e9)


def read_window():
    """Says "ready" and reads the window's start and end times from stdin."""
    out("ready")
    start, end = sys.stdin.readline().split()
    return int(start), int(end)


def serve_stdin(acquire, release):
    """Says "ready", then acquires or releases at each line of stdin ("acquire", "release"),
    saying when; any other line ends it."""
    out("ready")
    for line in sys.stdin:
        if line.strip() == "acquire":
            acquire()
            out("acquired", time.monotonic_ns())
        elif line.strip() == "release":
            t = time.monotonic_ns()
            release()
            out("released", t)
        else:
            break
