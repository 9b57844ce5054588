"""The role-alternating harness: two agents of one implementation take turns holding and
waiting, fresh agents every round, each round opened by warm-up handoffs; and its crash
variant, in which the holder is SIGKILLed instead of releasing.

Both stamps come from CLOCK_MONOTONIC: the holder's just before it releases (the crash
variant: the harness's, just before the kill), the waiter's right after its acquire returns.
Before every measured release the waiter has been blocked for procs.hold_time()."""
import time

from .procs import HOLD_MIN, hold_text, hold_time

WARMUPS = 2  # handoffs at the start of every round that are not measured
PEERS = {"portalocker-default", "filelock-default"}  # slow: fewer rounds

# The implementations, each as a program uses it by default (see run's Bench.impls).
KEYS = ["ref", "pl-c-default", "pl-c-forever", "pl-lua-default", "pl-lua-forever", "pl-lua-fd",
        "portalocker-default", "filelock-default"]


def rounds(b, key, full):
    return b.counts(1, max(1, full // 3) if key in PEERS else full)


def handoff(a, w, hold):
    """a holds, w waits `hold` seconds, a releases: (a's release stamp, w's acquire stamp)."""
    w.acquire()
    time.sleep(hold)
    t_release = a.release()
    return t_release, w.acquired()


def warm_up(a, w):
    """WARMUPS handoffs with the shortest hold, back and forth: returns who holds now."""
    for _ in range(WARMUPS):
        handoff(a, w, HOLD_MIN)
        a, w = w, a
    return a, w


def one_round(b, key, path, measured, env=None):
    """One round with two fresh agents: [(release, acquired, waiter's pid)] for `measured`
    handoffs after the warm-ups."""
    a, w = b.holder(key, path, env), b.holder(key, path, env)
    stamps = []
    try:
        a.acquire()
        a.acquired()
        a, w = warm_up(a, w)
        for _ in range(measured):
            t_release, t_acquired = handoff(a, w, hold_time())
            stamps.append((t_release, t_acquired, w.pid))
            a, w = w, a
        a.release()
    finally:
        a.close()
        w.close()
    return stamps


def handoffs(b, key, n_rounds, per_round):
    path = b.path(f"r-{key}")
    return [acq - rel for _ in range(rounds(b, key, n_rounds))
            for rel, acq, _ in one_round(b, key, path, per_round)]


def crash_round(b, key, path):
    """Two fresh agents, the warm-ups, then the holder is killed: kill to acquire (ns)."""
    a, w = b.holder(key, path), b.holder(key, path)
    try:
        a.acquire()
        a.acquired()
        a, w = warm_up(a, w)
        w.acquire()
        time.sleep(hold_time())
        t_kill = time.monotonic_ns()
        a.kill()
        latency = w.acquired() - t_kill
        w.release()
    finally:
        a.close()
        w.close()
    return latency


def crashes(b, key, n_rounds):
    path = b.path(f"rc-{key}")
    return [crash_round(b, key, path) for _ in range(rounds(b, key, n_rounds))]


def bench_alternating(b):
    n_rounds, per_round = b.counts(1, 10), b.counts(1, 4)
    b.add(f"Handoff latency, role-alternating agents ({n_rounds} rounds of two fresh agents, "
          f"{WARMUPS} warm-up handoffs then {per_round} measured, each after a hold of "
          f"{hold_text()}: holder's release to waiter's acquire)",
          b.latency_table("alternating", KEYS, handoffs, n_rounds, per_round)
          + f"\n\nThe peers (Python) run a third of the rounds. The warm-ups hold "
          f"{HOLD_MIN * 1e3:g} ms. Each implementation waits as a program does by default: "
          "portalock C with portalock_lock_acquire (the handle's default timeout) or with no "
          "timeout; portalock Lua with Lock:acquire(), Lock:acquire{timeout=math.huge}, or "
          "portalock.lock(fh, LOCK_EX) on a file it keeps open (blocking in the kernel); "
          "portalocker and py-filelock with their default settings.")


def bench_alternating_crash(b):
    n_rounds = b.counts(1, 15)
    b.add(f"Crash recovery, role-alternating agents ({n_rounds} rounds of two fresh agents, "
          f"{WARMUPS} warm-up handoffs, then the holder is SIGKILLed after a hold of "
          f"{hold_text()}: kill to waiter's acquire)",
          b.latency_table("alternating-crash", KEYS, crashes, n_rounds)
          + "\n\nThe kill is stamped by the harness just before kill(2); the peers run a third "
          "of the rounds.")
