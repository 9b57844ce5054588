"""The instrumented split of a handoff, from outside the library: the role-alternating rounds
(roles.py) run with bench/split_shim.c preloaded into both agents, which records when each
poll/ppoll/select, flock, fcntl, read, close, thread join, sem_clockwait and sleep enters
and returns. For every measured handoff, from the waiter's records:

  release  the holder's stamp, just before it releases
  wake     the earliest return of a call that was blocked across the release (the waiter's
           blocking call returning: poll on inotify, flock, a join, ...)
  attempt  the return of the first flock(2)/fcntl(2) at or after the wake that took a lock
  return   the waiter's stamp, right after its acquire call returned to the caller
"""
import os
import shutil
import tempfile
from collections import Counter, namedtuple

from . import roles
from .stats import fmt_ns, median, table

Call = namedtuple("Call", "name tid enter leave result arg")

LOCK_SH, LOCK_EX = 1, 2
F_UNLCK = 2
LOCKING_FCNTL = {6, 7, 37, 38}  # F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW

KEYS = ["ref", "pl-c-default", "pl-c-forever", "pl-lua-default", "pl-lua-forever",
        "pl-lua-fd"]
SEGMENTS = ["release → wake", "wake → attempt", "attempt → return"]


def read_calls(path):
    with open(path) as f:
        return [Call(w[0], int(w[1]), int(w[2]), int(w[3]), int(w[4]), int(w[5]))
                for w in (line.split() for line in f)]


def takes_lock(call):
    if call.result != 0:
        return False
    if call.name == "flock":
        return call.arg & ~4 in (LOCK_SH, LOCK_EX)  # 4: LOCK_NB
    return call.name == "fcntl" and call.arg // 16 in LOCKING_FCNTL and call.arg % 16 != F_UNLCK


def split_one(calls, t_release, t_return):
    """(release→wake, wake→attempt, attempt→return in ns, the call that woke, the calls that
    returned from the wake to the return), or None."""
    across = [c for c in calls if c.enter < t_release < c.leave <= t_return]
    after = [c for c in calls if t_release < c.leave <= t_return]
    woke = min(across or after, key=lambda c: c.leave, default=None)
    if woke is None:
        return None
    attempt = min((c.leave for c in after if c.leave >= woke.leave and takes_lock(c)),
                  default=None)
    if attempt is None:
        return None
    path = " ".join(c.name for c in sorted(after, key=lambda c: c.leave)
                    if c.leave >= woke.leave)
    return woke.leave - t_release, attempt - woke.leave, t_return - attempt, woke.name, path


def instrumented(b, key, n_rounds, per_round):
    """The splits of the measured handoffs of `n_rounds` instrumented rounds."""
    logs = tempfile.mkdtemp(prefix="split-", dir=b.tmp)
    env = dict(b.env, LD_PRELOAD=b.shim, PORTALOCK_SPLIT_DIR=logs)
    path = b.path(f"s-{key}")
    splits = []
    try:
        for _ in range(roles.rounds(b, key, n_rounds)):
            stamps = roles.one_round(b, key, path, per_round, env)
            for t_release, t_return, pid in stamps:
                one = split_one(read_calls(os.path.join(logs, str(pid))), t_release, t_return)
                if one is None:
                    raise RuntimeError(f"no wake or no lock taken in pid {pid}'s records")
                splits.append(one)
            for name in os.listdir(logs):
                os.unlink(os.path.join(logs, name))
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    return splits


def bench_split(b):
    n_rounds, per_round = b.counts(1, 5), b.counts(1, 4)
    rows, ref = [], None
    for key in KEYS:
        splits = b.guarded(f"split {key}", instrumented, b, key, n_rounds, per_round)
        b.results[("split", key)] = splits
        if not splits:
            rows.append([b.label(key)] + ["n/a"] * 7)
            continue
        segments = [median([s[i] for s in splits]) for i in range(3)]
        total = median([sum(s[:3]) for s in splits])
        ref = ref if ref is not None else total
        woke = ", ".join(f"{name} {count}" for name, count in Counter(
            s[3] for s in splits).most_common())
        path, count = Counter(s[4] for s in splits).most_common(1)[0]
        plain = b.results.get(("alternating", key))
        rows.append([b.label(key)] + [fmt_ns(x) for x in segments]
                    + [fmt_ns(total), fmt_ns(median(plain) if plain else None), woke,
                       f"{path} ({count} of {len(splits)})"])
    b.add(f"Where a handoff's time goes ({n_rounds} role-alternating rounds of {per_round} "
          "measured handoffs, instrumented from outside the library)",
          table(["implementation"] + [f"{s} (median)" for s in SEGMENTS]
                + ["release → return (median)", "uninstrumented (role-alternating)",
                   "woken by (count)", "calls from the wake to the return (most often)"],
                rows)
          + "\n\nbench/split_shim.c, preloaded, stamps (CLOCK_MONOTONIC) the entry and return of "
          "the waiter's poll/ppoll/select, flock, fcntl, read, close, thread joins, "
          "sem_clockwait and sleeps. wake: the earliest return of a call blocked across the "
          "holder's release; attempt: the return of the first flock/fcntl at or after it that "
          "took the lock; return: the waiter's stamp after its acquire call returned. Each "
          "column is a median on its own, so they need not add up to the total. A waiter "
          "blocked in flock(2) itself wakes by taking the lock (wake → attempt is 0). The "
          "uninstrumented column is the role-alternating table's median (when that ran): the "
          "shim's own cost is the difference, two clock reads per recorded call. The last "
          "column lists the recorded calls that returned between the wake and the return "
          "(those of every thread), in order.")
