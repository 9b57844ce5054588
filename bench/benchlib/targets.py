"""The targets of issue 15 (deliver item 4) against what this run measured: one row per
target and implementation, with the measured value, its ratio and whether it is met."""
from . import firstwait
from .stats import fmt_ns, fmt_ratio, median, p95, table

PORTALOCK_HANDOFFS = {
    "handoff": ["pl-c", "pl-lua"],
    "alternating": ["pl-c-default", "pl-c-forever", "pl-lua-default", "pl-lua-forever",
                    "pl-lua-fd"],
    "first-wait": ["pl-c-default", "pl-c-forever", "pl-lua-default", "pl-lua-forever"],
}
MODE_NAMES = {"handoff": "persistent", "alternating": "role-alternating",
              "first-wait": "first wait", "crash": "persistent",
              "alternating-crash": "role-alternating"}
CONTENTION = [("pl-c", "window"), ("pl-c", "forever"), ("pl-lua", "window"),
              ("pl-lua", "forever")]
P95_LIMIT = 1e6  # ns


class Targets:
    def __init__(self, b):
        self.b = b
        self.rows = []

    def samples(self, *key):
        return self.b.results.get(key) or None

    def label(self, section, key):
        """The row's label, also for a section that did not run."""
        own = firstwait.LABELS.get(key) if section == "first-wait" else None
        return self.b.labels.get((section, key)) or own or self.b.label(key)

    def row(self, target, who, measured, ratio, met):
        self.rows.append([target, who, measured, ratio,
                          "not run" if met is None else ("met" if met else "**missed**")])

    def ratio_row(self, target, who, value, ref, limit, fmt=fmt_ns):
        """A row for value/ref ≤ limit; value and ref None when not measured."""
        if value is None or not ref:
            self.row(target, who, "n/a", "n/a", None)
        else:
            self.row(target, who, fmt(value), fmt_ratio(value, ref), value / ref <= limit)

    def latency_ratio(self, target, section, keys, ref_section, ref_key, limit):
        ref = self.samples(ref_section, ref_key)
        for key in keys:
            s = self.samples(section, key)
            self.ratio_row(target, self.label(section, key), s and median(s),
                           ref and median(ref), limit)

    def handoffs(self):
        for section, keys in PORTALOCK_HANDOFFS.items():
            if section == "first-wait":
                self.latency_ratio("first wait ≤ 2× an exec'd C waiter's", section, keys,
                                   section, "ref", 2.0)
                self.latency_ratio("CLI first wait ≤ 2× flock(1)'s", section, ["cli"],
                                   section, "flock1", 2.0)
            else:
                self.latency_ratio(f"handoff median ≤ 1.5× C limit, {MODE_NAMES[section]}",
                                   section, keys, section, "ref", 1.5)
        for section, keys in PORTALOCK_HANDOFFS.items():
            for key in keys + (["cli"] if section == "first-wait" else []):
                s = self.samples(section, key)
                who = f"{self.label(section, key)} ({MODE_NAMES[section]})"
                self.row("handoff p95 ≤ 1 ms", who, fmt_ns(s and p95(s)), "",
                         s and p95(s) <= P95_LIMIT)
        self.latency_ratio("crash recovery ≤ 1.5× C limit, persistent", "crash",
                           ["pl-c", "pl-lua"], "crash", "ref", 1.5)
        self.latency_ratio("crash recovery ≤ 1.5× C limit, role-alternating",
                           "alternating-crash", PORTALOCK_HANDOFFS["alternating"],
                           "alternating-crash", "ref", 1.5)

    def uncontended(self):
        for mode, target, limit in [("fd", "Lua lock()/unlock() on an open file ≤ 1.3× C", 1.3),
                                    ("open", "Lua Lock acquire+release ≤ 1.5× C open+flock+"
                                     "unlock+close", 1.5)]:
            s, ref = self.samples("uncontended", mode, "pl-lua"), \
                self.samples("uncontended", mode, "ref")
            self.ratio_row(target, self.b.label("pl-lua"), s and median(s), ref and median(ref),
                           limit)

    def semaphore(self):
        for key in ["pl-c", "pl-lua"]:
            r = self.samples("semaphore", key)
            who = f"portalock {'C' if key == 'pl-c' else 'Lua'} NamedBoundedSemaphore"
            if r is None:
                self.row("semaphore makespan ≤ 1.03× ideal, concurrency = maximum", who, "n/a",
                         "n/a", None)
                continue
            self.row("semaphore makespan ≤ 1.03× ideal, concurrency = maximum", who,
                     f"highest concurrency {r['peak']} of {r['slots']}",
                     f"{r['ratio to ideal']:.2f}× ideal",
                     r["ratio to ideal"] <= 1.03 and r["peak"] == r["slots"])

    def contention(self):
        ref_rate, ref_cpu = self.samples("contention", "ref", "forever", 256) or (None, None)
        for key, timeout in CONTENTION:
            rate, cpu = self.samples("contention", key, timeout, 256) or (None, None)
            who = self.b.label(key) + (", no timeout" if timeout == "forever" else ", timeout")
            if rate is None or not ref_rate:
                self.row("256 processes: handoffs/s ≥ 0.8× the kernel's", who, "n/a", "n/a",
                         None)
            else:
                self.row("256 processes: handoffs/s ≥ 0.8× the kernel's", who, f"{rate:,.0f}/s",
                         fmt_ratio(rate, ref_rate), rate / ref_rate >= 0.8)
            self.ratio_row("256 processes: CPU per handoff ≤ 1.5× the kernel's", who, cpu,
                           ref_cpu, 1.5)

    def waiter_cpu(self):
        for key in ["pl-c", "pl-lua"]:
            share = self.samples("waiter-cpu", key)
            self.row("blocked waiter < 1 % of a core", self.b.label(key),
                     "n/a" if share is None else f"{share * 100:.3f} %", "",
                     None if share is None else share < 0.01)


def bench_targets(b):
    t = Targets(b)
    t.handoffs()
    t.uncontended()
    t.semaphore()
    t.contention()
    t.waiter_cpu()
    b.add("Targets of issue 15 against this run",
          table(["target", "implementation", "measured", "ratio", "met?"], t.rows)
          + "\n\nGenerated by bench/run from this run's figures; \"not run\": the benchmark "
          "that measures it was not part of this run (--only), or failed.")
