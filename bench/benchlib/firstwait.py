"""The first-wait harness: the waiter is a process exec'd just before (a cron job, a CLI, a
new worker) that starts, opens the file, finds it held and waits. The harness releases
procs.hold_time() after the waiter is seen blocked; the latency runs from the holder's
release stamp to the waiter's acquire stamp, or, for the lock commands, to the stamp their
command (bench/stamp.c) takes as it starts.

Seen blocked: the driver waiters print "waiting" just before their acquire call (the lock
commands cannot); then, for all of them, the harness polls /proc/PID/task/*/syscall until no
thread of the waiter is running and one sleeps in a wait: poll, ppoll, select, pselect6,
epoll_wait or epoll_pwait, flock without LOCK_NB, or fcntl F_SETLKW / F_OFD_SETLKW."""
import os
import platform
import time

from .procs import LINE_TIMEOUT, Proc, hold_text, hold_time

LOCK_NB = 4
F_SETLKW, F_OFD_SETLKW = 7, 38
# System call numbers of the waits, per architecture: (polls, flock, fcntl).
WAIT_SYSCALLS = {
    "x86_64": ({7, 23, 232, 270, 271, 281}, 73, 72),
    "aarch64": ({22, 72, 73}, 32, 25),
}


def sleeps_in_wait(fields, polls, flock_nr, fcntl_nr):
    """Whether one thread's /proc/.../syscall fields show it blocked in a wait."""
    nr = int(fields[0])
    if nr in polls:
        return True
    if nr == flock_nr:
        return not int(fields[2], 16) & LOCK_NB
    return nr == fcntl_nr and int(fields[2], 16) in (F_SETLKW, F_OFD_SETLKW)


def blocked(pid, syscalls):
    """True when no thread of `pid` runs and one sleeps in a wait (module docstring)."""
    waiting = False
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                fields = f.read().split()
            if not fields or fields[0] in ("running", "-1"):
                return False
            waiting = waiting or sleeps_in_wait(fields, *syscalls)
    except FileNotFoundError:  # a thread that ended between the listing and the read
        return False
    return waiting


def wait_until_blocked(pid):
    syscalls = WAIT_SYSCALLS.get(platform.machine())
    if syscalls is None:
        raise RuntimeError(f"no wait system calls known for {platform.machine()}")
    deadline = time.monotonic() + LINE_TIMEOUT
    while not blocked(pid, syscalls):
        if time.monotonic() > deadline:
            raise RuntimeError(f"pid {pid} never blocked in a wait")
        time.sleep(0.0002)


def cases(b):
    """key: (holder's implementation, waiter's argv given the file, reports "waiting")."""
    impls = b.impls()

    def driver(key):
        impl = impls[key]
        return lambda path: impl.argv + ["firstwait", impl.impl, path, impl.wait]

    return {
        "ref": ("ref", driver("ref"), True),
        "pl-c-default": ("pl-c-default", driver("pl-c-default"), True),
        "pl-c-forever": ("pl-c-forever", driver("pl-c-forever"), True),
        "pl-lua-default": ("pl-lua-default", driver("pl-lua-default"), True),
        "pl-lua-forever": ("pl-lua-forever", driver("pl-lua-forever"), True),
        "flock1": ("ref", lambda path: ["flock", path, b.stamp], False),
        "cli": ("pl-lua-default", lambda path: b.portalock_cli + ["lock", path, "--", b.stamp],
                False),
    }


LABELS = {"ref": "C limit: exec'd open + flock(2)", "flock1": "flock(1) FILE stamp",
          "cli": "portalock lock FILE -- stamp (CLI)"}


def first_waits(b, key, n):
    holder_key, argv, reports = cases(b)[key]
    path = b.path(f"f-{key}")
    holder = b.holder(holder_key, path)
    latencies = []
    try:
        for _ in range(n):
            holder.acquire()
            holder.acquired()
            waiter = Proc(argv(path), env=b.env)
            if reports:
                waiter.expect("waiting")
            wait_until_blocked(waiter.pid)
            time.sleep(hold_time())
            t_release = holder.release()
            latencies.append(int(waiter.expect("acquired")[0]) - t_release)
            waiter.wait()
    finally:
        holder.close()
    return latencies


KEYS = ["ref", "pl-c-default", "pl-c-forever", "pl-lua-default", "pl-lua-forever", "flock1",
        "cli"]


def bench_first_wait(b):
    n = b.counts(1, 20)
    b.add(f"Handoff latency, a process's first wait ({n} waiters, each exec'd while the lock is "
          f"held and released {hold_text()} after it is seen blocked: holder's release to the "
          "waiter's acquire, for flock(1) and the CLI to their command's start)",
          b.latency_table("first-wait", KEYS, first_waits, n, labels=LABELS)
          + "\n\nSeen blocked: the driver waiters print \"waiting\" just before their acquire "
          "call; then the harness polls /proc/PID/task/*/syscall until no thread of the waiter "
          "runs and one sleeps in poll/ppoll/select/epoll_wait, in flock(2) without LOCK_NB or "
          "in fcntl(2) F_SETLKW/F_OFD_SETLKW. The holder is a driver agent of the same library "
          "(the C limit's for flock(1), portalock Lua's for the CLI). flock(1) and the CLI fork "
          "and exec their command (bench/stamp.c, which stamps as it starts), so their row "
          "includes that start: compare the CLI to flock(1), and the library waiters to the "
          "C limit.")
