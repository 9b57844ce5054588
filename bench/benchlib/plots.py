"""Plots of a run, drawn by gnuplot beside the results file: the contention scaling
(handoffs/s and CPU per handoff against the number of processes, one line per
implementation) and the handoff latency distributions (one CDF per implementation, one panel
per harness mode)."""
import os
import shutil
import subprocess
import tempfile

LATENCY_PANELS = [("handoff", "handoff, persistent agents"),
                  ("alternating", "handoff, role-alternating agents"),
                  ("first-wait", "a process's first wait"),
                  ("crash", "crash recovery, persistent waiter"),
                  ("alternating-crash", "crash recovery, role-alternating agents")]
CONTENTION_FILE, LATENCY_FILE = "contention.png", "handoff-latency.png"


def quoted(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_columns(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(" ".join(str(x) for x in row) + "\n")


def latency_panels(b, data):
    """gnuplot commands for one CDF panel per mode that ran; writes their data under `data`."""
    panels = []
    for section, title in LATENCY_PANELS:
        curves = []
        for (sec, *key), samples in b.results.items():
            if sec != section or not samples:
                continue
            path = os.path.join(data, f"{section}-{key[0]}.dat")
            s = sorted(samples)
            write_columns(path, [(x / 1e3, (i + 1) / len(s)) for i, x in enumerate(s)])
            curves.append(f"{quoted(path)} using 1:2 with steps lw 2 "
                          f"title {quoted(b.labels[(sec, key[0])])}")
        if curves:
            panels.append(f"set title {quoted(title)}\nplot " + ", \\\n  ".join(curves))
    return panels


def contention_curves(b, data, column):
    """One curve per implementation of column 0 (handoffs/s) or 1 (CPU per handoff, in µs)
    of the contention results against the number of processes; writes their data."""
    lines = {}
    for key, result in b.results.items():
        if key[0] == "contention" and result and result[column]:
            _, impl, timeout, n = key
            lines.setdefault((impl, timeout), []).append((n, result[column]))
    curves = []
    for (impl, timeout), points in lines.items():
        path = os.path.join(data, f"contention-{impl}-{timeout}-{column}.dat")
        scale = 1 if column == 0 else 1e-3
        write_columns(path, [(n, v * scale) for n, v in sorted(points)])
        label = b.labels[("contention", impl, timeout)]
        curves.append(f"{quoted(path)} using 1:2 with linespoints lw 2 title {quoted(label)}")
    return curves


def gnuplot(script):
    # Its standard output is not read: a PNG lands there when the output file cannot be opened.
    done = subprocess.run(["gnuplot"], input=script.encode(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=60, check=False)
    if done.returncode != 0:  # its warnings (a one-point range in --quick) are left unsaid
        raise RuntimeError(f"gnuplot failed: {done.stderr.decode(errors='replace').strip()}")


def draw(b, directory):
    """Draws the plots of what ran into `directory`: the PNG files' names, [] without
    gnuplot (the run says so)."""
    if not shutil.which("gnuplot"):
        print("plots: gnuplot is not installed (tools/ensure-packages gnuplot-nox)")
        return []
    data = tempfile.mkdtemp(prefix="plots-", dir=b.tmp)
    common = "set termoption noenhanced\nset key outside right top\nset grid\nset lmargin 12\n"
    drawn = []
    panels = latency_panels(b, data)
    if panels:
        out = os.path.join(directory, LATENCY_FILE)
        gnuplot(f"set terminal pngcairo size 1400,{430 * len(panels)} font ',10'\n"
                f"set output {quoted(out)}\n{common}"
                "set logscale x\nset xrange [10:1e6]\nset xlabel 'latency (log scale)'\n"
                "set xtics ('10 µs' 10, '100 µs' 100, '1 ms' 1e3, '10 ms' 1e4, '100 ms' 1e5,"
                " '1 s' 1e6)\n"
                "set ylabel 'fraction of handoffs at or below'\nset yrange [0:1]\n"
                f"set multiplot layout {len(panels)},1\n" + "\n".join(panels)
                + "\nunset multiplot\n")
        drawn.append(LATENCY_FILE)
    rates, cpus = contention_curves(b, data, 0), contention_curves(b, data, 1)
    if rates:
        out = os.path.join(directory, CONTENTION_FILE)
        gnuplot("set terminal pngcairo size 1400,1000 font ',10'\n"
                f"set output {quoted(out)}\n{common}"
                "set logscale xy\nset xrange [1.6:320]\nset xlabel 'processes (log scale)'\n"
                "set xtics (2, 8, 64, 256)\n"
                "set multiplot layout 2,1\n"
                "set title 'Contention: handoffs per second'\nset ylabel 'handoffs/s'\n"
                "plot " + ", \\\n  ".join(rates) + "\n"
                "set title 'Contention: CPU per handoff (all processes)'\n"
                "set ylabel 'CPU per handoff'\nset ytics ('10 µs' 10, '100 µs' 100,"
                " '1 ms' 1e3, '10 ms' 1e4, '100 ms' 1e5, '1 s' 1e6, '10 s' 1e7)\n"
                "plot " + ", \\\n  ".join(cpus) + "\nunset multiplot\n")
        drawn.append(CONTENTION_FILE)
    return drawn
