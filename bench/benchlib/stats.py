"""Statistics of samples and their formatting as Markdown."""
import math


def median(xs):
    s = sorted(xs)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def quantile(xs, q):
    """The smallest sample with at least a share q of the samples at or below it."""
    s = sorted(xs)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def p95(xs):
    return quantile(xs, 0.95)


def fmt_ns(ns):
    if ns is None:
        return "n/a"
    if ns >= 1e6:
        return f"{ns / 1e6:.1f} ms"
    return f"{ns / 1e3:.1f} µs"


def fmt_ratio(value, ref):
    if value is None or not ref:
        return "n/a"
    return f"{value / ref:.2f}×"


def fmt_rate(rate):
    return "n/a" if rate is None else f"{rate:,.0f}"


def table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def latency_row(label, samples, ref):
    """A row of a latency table: label, median, p95 and the median's ratio to `ref`'s."""
    med = median(samples) if samples else None
    return [label, fmt_ns(med), fmt_ns(p95(samples) if samples else None), fmt_ratio(med, ref)]
