"""Child processes that bench/run drives, the holders of a lock built on them, and how long
a holder holds before a timed release."""
import os
import queue
import random
import signal
import subprocess
import threading

LINE_TIMEOUT = 60  # seconds: no driver stays silent longer than this
CHILDREN = []

# How long the holder holds before a timed release: the same for every implementation, since
# how long a waiter has slept changes how fast this virtual machine wakes it (raw flock(2):
# about 20 µs after 5 ms, 60 µs after 130 ms, measured), and spread over the longest default
# polling period of the peers (0.25 s) so that a polling waiter is met at every phase.
HOLD_MIN = 0.005
HOLD_SPREAD = 0.25


def hold_time():
    """Long enough for the waiter to be waiting; random over the longest polling period."""
    return HOLD_MIN + random.uniform(0, HOLD_SPREAD)


def hold_text():
    return f"{HOLD_MIN * 1e3:g} ms + U(0, {HOLD_SPREAD * 1e3:g} ms)"


class Proc:
    """A child whose stdout lines arrive on a queue (read by a thread), so reads time out."""

    def __init__(self, argv, env=None, session=False):
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            env=env, start_new_session=session)
        CHILDREN.append(self.popen)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.popen.stdout:
            self.lines.put(line.split())
        self.lines.put(None)

    @property
    def pid(self):
        return self.popen.pid

    def wait(self):
        return self.popen.wait(timeout=LINE_TIMEOUT)

    def send(self, text):
        self.popen.stdin.write(text + "\n")
        self.popen.stdin.flush()

    def expect(self, word, timeout=LINE_TIMEOUT):
        fields = self.lines.get(timeout=timeout)
        if not fields or fields[0] != word:
            raise RuntimeError(f"pid {self.pid}: expected {word!r}, got {fields!r}")
        return fields[1:]

    def kill(self, group=False):
        if self.popen.poll() is None:
            if group:
                os.killpg(self.pid, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=LINE_TIMEOUT)

    def close(self):
        if self.popen.poll() is None:
            try:
                self.popen.stdin.close()
                self.popen.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()


def kill_stragglers():
    for popen in CHILDREN:
        if popen.poll() is None:
            popen.kill()
            popen.wait()


def cpu_ns_of(pid):
    """CPU time a process has used: /proc/PID/schedstat (ns), else /proc/PID/stat ticks."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0])
    except OSError:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1e9 / os.sysconf("SC_CLK_TCK")


class DriverHolder:
    """A driver in `serve` mode: one process that acquires and releases on command."""

    def __init__(self, impl, path, env):
        self.proc = Proc(impl.argv + ["serve", impl.impl, path, impl.ci, impl.wait], env=env)
        self.proc.expect("ready")

    def acquire(self):
        self.proc.send("acquire")

    def acquired(self):
        return int(self.proc.expect("acquired")[0])

    def release(self):
        self.proc.send("release")
        return int(self.proc.expect("released")[0])

    @property
    def pid(self):
        return self.proc.pid

    def cpu_ns(self):
        return cpu_ns_of(self.proc.pid)

    def kill(self):
        self.proc.kill()

    def close(self):
        self.proc.close()


class FlockHolder:
    """flock(1) running the C driver's `held`: a new flock process for every hold."""

    def __init__(self, cbin, path):
        self.argv = ["flock", path, cbin, "held"]
        self.proc = None

    def acquire(self):
        self.proc = Proc(self.argv, session=True)

    def acquired(self):
        return int(self.proc.expect("acquired")[0])

    def release(self):
        self.proc.send("release")
        t = int(self.proc.expect("released")[0])
        self.proc.popen.wait(timeout=LINE_TIMEOUT)
        return t

    def cpu_ns(self):
        return cpu_ns_of(self.proc.pid)

    def kill(self):
        self.proc.kill(group=True)

    def close(self):
        if self.proc:
            self.proc.close()
