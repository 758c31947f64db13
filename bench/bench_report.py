"""make bench's outputs: the goals (each a ratio from one run, met or not), the Markdown
tables and the gnuplot plots. docs/bench.md explains every column and plot."""
import os
import shutil
import subprocess
import tempfile

MUX, POOL, EPOLL = "sockpool-mux", "sockpool", "epoll-c"
CPU, CCPU, MSGS, MB = ("server_cpu_us_per_msg", "client_cpu_us_per_msg", "msgs_per_s",
                       "mb_per_s")
FIGURE = {CPU: "server CPU/msg", CCPU: "client CPU/msg", MSGS: "msgs/s", MB: "MB/s"}


def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float) and v.is_integer() and nd == 0:
        v = int(v)
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}"


def nd(v):
    """Decimals for a figure in a goal: none for thousands (msgs/s), two for small ones."""
    return 0 if abs(v) >= 1000 else 2


def get(res, server, case, key):
    return (res.get(server, {}).get(case) or {}).get(key)


# ----------------------------------------------------------------------------- goals

def goal(text, case, a, b, rule, limit, how=None):
    """One goal row: ratio a / b against limit (None when a figure is missing)."""
    ok = a is not None and b
    ratio = a / b if ok else None
    met = None if ratio is None else (ratio <= limit if rule == "<=" else ratio >= limit)
    return {"goal": text, "case": case, "rule": rule, "limit": limit, "value": ratio,
            "how": how or (f"{fmt(a, nd(a))} / {fmt(b, nd(b))}" if ok else "not measured"),
            "met": met}


def lim(x):
    """1 -> "1.0", 0.65 -> "0.65": goals read as plain ratios."""
    s = f"{x:.2f}".rstrip("0")
    return s + "0" if s.endswith(".") else s


def ratio_goal(res, case, key, rule, limit, other, a_srv=MUX):
    return goal(f"{a_srv} {FIGURE[key]} {rule} {lim(limit)}x {other}'s", case,
                get(res, a_srv, case, key), get(res, other, case, key), rule, limit)


def targets(res, side):
    """The goals of the multiplexing mode (and the client's own), each as measured."""
    t = []
    for c in ("rr 64 B x64", "rr 64 B x256"):
        t.append(ratio_goal(res, c, CPU, "<=", 1.0, EPOLL))
        t.append(ratio_goal(res, c, CPU, "<=", 0.65, "go"))
        t.append(ratio_goal(res, c, CPU, "<=", 0.65, "node"))
        t.append(ratio_goal(res, c, MSGS, ">=", 1.0, EPOLL))
    base = get(res, MUX, "rr 64 B x64", CPU)
    for c in ("rr 64 B x1000", "rr 64 B x10000"):
        t.append(goal(f"{MUX} server CPU/msg <= 1.2x its own at rr 64 B x64", c,
                      get(res, MUX, c, CPU), base, "<=", 1.2))
        t.append(ratio_goal(res, c, MSGS, ">=", 1.0, EPOLL))
    t.append(ratio_goal(res, "rr 4 KiB x64", MSGS, ">=", 1.0, EPOLL))
    ipf = side.get("iperf3_1_stream_mb_s")
    t.append(goal(f"{MUX} MB/s >= 0.9x iperf3's one stream (one-direction bulk transfer)",
                  "stream 64 KiB x1", get(res, MUX, "stream 64 KiB x1", MB), ipf, ">=", 0.9))
    mem = side.get("memory", {}).get(MUX)
    if mem:
        t.append(goal(f"{MUX} RSS per held idle connection <= 2 KiB",
                      f"{mem['connections']:,} held", mem["kib_per_conn"], 1.0, "<=", 2.0,
                      f"({fmt(mem['rss_held_kib'], 0)} - {fmt(mem['rss_idle_kib'], 0)}) KiB / "
                      f"{mem['connections']:,} (RSS at N / N: "
                      f"{fmt(mem['total_kib_per_conn'], 2)} KiB)"))
    else:
        t.append(goal(f"{MUX} RSS per held idle connection <= 2 KiB", "10,000 held", None,
                      None, "<=", 2.0))
    sc = side.get("syscalls", {}).get(MUX)
    t.append(goal(f"{MUX} syscalls per message <= 2.3", "rr 64 B x64",
                  sc["per_msg"] if sc else None, 1.0, "<=", 2.3,
                  f"{sc['syscalls']:,} / {sc['messages']:,} ({sc['tool']})" if sc else None))
    for c in ("rr 64 B x64", "rr 64 B x256"):
        t.append(goal("sockpool (pool) server CPU/msg <= 1.05x pool-before's (no regression)",
                      c, get(res, POOL, c, CPU), get(res, "pool-before", c, CPU), "<=", 1.05))
    for c in ("rr 64 B x64", "rr 64 B x10000"):
        t.append(goal("client CPU/msg <= 0.9x epoll-c's server CPU/msg (same runs)", c,
                      get(res, EPOLL, c, CCPU), get(res, EPOLL, c, CPU), "<=", 0.9))
    return t


# ----------------------------------------------------------------------------- Markdown

def method(meta):
    reps = f"{meta['reps']} run{'s' if meta['reps'] > 1 else ''} of {meta['seconds']:g} s"
    return [f"Each figure is the median of {reps} (rr 64 B x10000: 1 s of warm-up, then 3 s; "
            "error counts: the worst run), servers interleaved. Load: `sockpool-client load`, "
            "every reply byte verified; rr x1 runs with the server on one core and the client "
            "on the other. CPU per message: the server's process CPU clock (all threads, and "
            "fork mode's children) and the client's, read as the client reports each interval "
            "of its measured run, so connects, warm-up and the graceful end are left out (in "
            "crr, connect + one 64 B round trip + close is the message, and msgs/s are "
            "connections/s). softirq: the machine's interrupt time per message, mostly "
            "loopback TCP's receive work, which is charged to no process (so to neither CPU "
            "figure). What every figure means: docs/bench.md.", ""]


def main_table(res, cases):
    lines = ["| case | server | msgs/s | MB/s | p50 us | p99 us | p99.9 us "
             "| server CPU us/msg | client CPU us/msg | softirq us/msg | wrong | errors "
             "| starved |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in cases:
        for name, srv in res.items():
            r = srv.get(c.name)
            if r:
                starved = fmt(r["starved"], 0) + (f" of {c.conns:,}" if r["starved"] else "")
                lines.append(
                    f"| {c.name} | {name} | {fmt(r[MSGS], 0)} | {fmt(r[MB])} | "
                    f"{fmt(r['p50_us'])} | {fmt(r['p99_us'])} | {fmt(r['p999_us'])} | "
                    f"{fmt(r[CPU], 2)} | {fmt(r.get(CCPU), 2)} | "
                    f"{fmt(r.get('irq_us_per_msg'), 2)} | {fmt(r['wrong'], 0)} | "
                    f"{fmt(r['errors'], 0)} | {starved} |")
    return lines


def syscall_table(sc):
    if not sc:
        return []
    lines = ["", "Syscalls per message, rr 64 B x64 (UDP servers: udp rr 64 B x64), a separate "
             "1 s run of a fresh instance under the counting tool:", "",
             "| server | syscalls/msg | the most frequent (per message) | tool |",
             "|---|---:|---|---|"]
    for name, s in sc.items():
        top = ", ".join(f"{k} {v:.2f}" for k, v in list(s["by_call"].items())[:5])
        lines.append(f"| {name} | {s['per_msg']:.2f} | {top} | {s['tool']} |")
    return lines


def memory_table(mem):
    if not mem:
        return []
    lines = ["", "Memory with N idle connections held (each made one round trip first), on a "
             "fresh instance. RSS from /proc; the charge is what a container's memory limit "
             "sees: the child cgroup's own figure where one could be made, else PSS + kernel "
             "stacks (threads x 16 KiB) + page tables. Per connection = (at N - idle) / N; "
             "RSS at N / N also spreads what the server holds before any connection.", "",
             "| server | N held | threads at N | RSS idle MiB | RSS at N MiB | RSS at N / N KiB "
             "| RSS KiB/conn | PSS KiB/conn | charge at N MiB | charge KiB/conn | charge from |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, m in mem.items():
        lines.append(
            f"| {name} | {m['connections']:,} | {m['held']['threads']:,} | "
            f"{fmt(m['rss_idle_kib'] / 1024)} | {fmt(m['rss_held_kib'] / 1024)} | "
            f"{fmt(m['total_kib_per_conn'], 2)} | {fmt(m['kib_per_conn'], 2)} | "
            f"{fmt((m['held']['pss'] - m['idle']['pss']) / m['connections'], 2)} | "
            f"{fmt((m['charge_held_kib'] or 0) / 1024)} | "
            f"{fmt(m['charge_kib_per_conn'], 2)} | {m['charge_source']} |")
    why = {m["cgroup_note"] for m in mem.values() if m.get("cgroup_note")}
    if why:
        lines += ["", "No child cgroup: " + "; ".join(sorted(why)) + "."]
    return lines


def other_tables(side):
    lines = ["", "| iperf3, one-direction bulk transfer (not a limit on an echo) | MB/s |",
             "|---|---:|",
             f"| 1 stream | {fmt(side.get('iperf3_1_stream_mb_s'))} |",
             f"| 2 streams | {fmt(side.get('iperf3_2_streams_mb_s'))} |"]
    if side.get("startup"):
        lines += ["", "| start-up with default options, exec to port file | median ms | min "
                  "| max | runs |", "|---|---:|---:|---:|---:|"]
        for name, s in side["startup"].items():
            lines.append(f"| {name} | {fmt(s['median_ms'], 2)} | {fmt(s['min_ms'], 2)} | "
                         f"{fmt(s['max_ms'], 2)} | {s['runs']} |")
    return lines


def goal_table(tgt):
    lines = ["", "| goal | case | measured | ratio | met |", "|---|---|---|---:|---|"]
    for t in tgt:
        met = "not measured" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['goal']} | {t['case']} | {t['how']} | {fmt(t['value'], 2)} | "
                     f"{met} |")
    return lines


def markdown(res, side, tgt, meta, cases):
    lines = [f"sockpool benchmark, {meta['date']}{' (QUICK smoke run)' if meta['quick'] else ''}",
             "", f"Machine: {meta['machine']}.", ""] + method(meta)
    ol = meta.get("other_load")
    if ol:
        lines += [f"Other processes on the machine used {ol['median']:.2f} cores (median; worst "
                  f"run {ol['max']:.2f}) during the runs"
                  + (": **the machine was busy, figures are unreliable**." if ol["median"] > 0.15
                     else "."), ""]
    lines += main_table(res, cases) + syscall_table(side.get("syscalls"))
    lines += memory_table(side.get("memory")) + other_tables(side) + goal_table(tgt)
    if meta["failures"]:
        lines += ["", "FAILURES: " + "; ".join(meta["failures"])]
    if meta["notes"]:
        lines += ["", "Notes: " + "; ".join(meta["notes"]) + "."]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- plots

def conns_of(case_name):
    return int(case_name.rsplit("x", 1)[1])


# One colour per server in every plot (gnuplot's default cycle repeats after eight).
COLOURS = {"sockpool": "#9400d3", "sockpool-mux": "#009e73", "sockpool-thread": "#56b4e9",
           "sockpool-fork": "#e69f00", "pool-before": "#888888", "epoll-c": "#0072b2",
           "go": "#d55e00", "node": "#000000", "python": "#cc79a7", "sockpool-udp": "#7f7f00",
           "epoll-udp": "#00bfbf"}
SPARE = ["#8c564b", "#bcbd22", "#17becf", "#ff1493", "#2f4f4f"]


def colour(name, i):
    return COLOURS.get(name) or SPARE[i % len(SPARE)]


def line_series(res, tmp, key):
    """Per server, a data file of rr 64 B (TCP) points: `conns value`, with a blank line
    where the server skipped a measured point (gnuplot draws no line across it); and one
    file of the points where connections starved, with their label."""
    xs = sorted({conns_of(c) for cs in res.values() for c in cs if c.startswith("rr 64 B x")})
    series, starved = [], []
    for i, (name, cases) in enumerate(res.items()):
        pts = {conns_of(c): r for c, r in cases.items() if c.startswith("rr 64 B x")}
        if not pts:
            continue
        path = os.path.join(tmp, f"{name}.{key}.dat")
        with open(path, "w") as f:
            for x in xs:
                r = pts.get(x)
                if r is None or r.get(key) is None:
                    f.write("\n")
                    continue
                f.write(f"{x} {r[key]}\n")
                if r.get("starved"):
                    starved.append(f'{x} {r[key]} "{name}: {r["starved"]:g} of {x:,} starved"')
        series.append((colour(name, i), name, path))
    spath = os.path.join(tmp, f"starved.{key}.dat")
    with open(spath, "w") as f:
        f.write("\n".join(starved) + "\n" if starved else "")
    return xs, series, spath if starved else None


def line_plot(res, tmp, key, out, title, ylabel):
    xs, series, spath = line_series(res, tmp, key)
    if not series:
        return ""
    tics = ", ".join(f'"{x:,}" {x}' for x in xs)
    span = f"set xrange [{xs[0] / 1.6}:{xs[-1] * 1.6}]"  # no measured point on an edge
    curves = [f"'{p}' using 1:2 with linespoints lw 2 pt 7 lc rgb '{c}' "
              f"dt {2 if n == 'pool-before' else 1} title '{n}'" for c, n, p in series]
    if spath:
        curves += [f"'{spath}' using 1:2 with points pt 6 ps 3 lw 2 lc rgb 'red' "
                   "title 'some connections starved (never answered)'",
                   f"'{spath}' using 1:2:3 with labels offset 0,1.5 tc rgb 'red' notitle"]
    return f"""
set output '{out}'
set title '{title}'
set ylabel '{ylabel}'
set xtics ({tics})
{span}
set yrange [0:*]
plot {', '.join(curves)}
"""


def latency_data(res, tmp):
    """Per connection count (1 and 64), `"label" p50 p99 p99.9` rows; the label says how many
    connections starved."""
    lat = {}
    for conns in (1, 64):
        rows = [(n, cs[f"rr 64 B x{conns}"]) for n, cs in res.items()
                if (cs.get(f"rr 64 B x{conns}") or {}).get("p50_us")]
        if not rows:
            continue
        lat[conns] = os.path.join(tmp, f"lat{conns}.dat")
        with open(lat[conns], "w") as f:
            for name, r in rows:
                label = name + (f" ({r['starved']:g}/{conns} starved)" if r["starved"] else "")
                f.write(f'"{label}" {r["p50_us"]} {r["p99_us"]} {r["p999_us"]}\n')
    return lat


def latency_plot(res, tmp, out):
    lat = latency_data(res, tmp)
    if not lat:
        return ""
    hist = lambda p: (f"plot '{p}' using 2:xtic(1) title 'p50', '' using 3 title 'p99', "
                      "'' using 4 title 'p99.9'")
    panels = "".join(f"set title '{c} connection{'s' if c > 1 else ''}'\n{hist(p)}\n"
                     for c, p in lat.items())
    return f"""
set output '{out}'
unset logscale
set autoscale
set xtics autofreq rotate by -35
set multiplot layout 1,{len(lat)} title 'latency percentiles, rr 64 B (lower is better)'
set xlabel ''
set ylabel 'us'
set logscale y
set format y '%.0f'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key inside top left
{panels}unset multiplot
set format y '% h'
"""


MEM_TITLE = ("memory with N idle connections held (N in brackets; lower is better)\\n"
             "PSS: RSS with shared pages split among the processes that share them")


def memory_plot(side, tmp, out):
    mem = side.get("memory") or {}
    if not mem:
        return ""
    path = os.path.join(tmp, "mem.dat")
    with open(path, "w") as f:
        for name, m in mem.items():
            pss = (m["held"]["pss"] - m["idle"]["pss"]) / m["connections"]
            f.write(f'"{name} ({m["connections"]:,})" {m["held"]["pss"] / 1024} '
                    f'{(m["charge_held_kib"] or 0) / 1024} {pss} '
                    f'{m["charge_kib_per_conn"] or 0}\n')
    return f"""
set output '{out}'
unset logscale
set autoscale
set xlabel ''
set yrange [0:*]
set xtics autofreq rotate by -35
set multiplot layout 1,2 title "{MEM_TITLE}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key inside top left Left reverse samplen 2
set offsets 0, 0, graph 0.3, 0
set title 'total at N connections'
set ylabel 'MiB'
plot '{path}' using 2:xtic(1) title 'PSS', '' using 3 title 'charge (container)'
set title 'per held connection: (at N - idle) / N'
set ylabel 'KiB / connection'
plot '{path}' using 4:xtic(1) title 'PSS', '' using 5 title 'charge (container)'
unset multiplot
set offsets 0, 0, 0, 0
"""


def plots(res, side, cases, outdir):
    """PNG plots through gnuplot: msgs/s and server CPU/msg against connections (rr 64 B),
    latency percentiles per server (x1 and x64), memory held. Returns the files written."""
    tmp = tempfile.mkdtemp(prefix="sockpool-plot-")
    names = ("throughput.png", "cpu_per_msg.png", "latency.png", "memory.png")
    files = [os.path.join(outdir, n) for n in names]
    try:
        parts = [
            line_plot(res, tmp, MSGS, files[0], "throughput: messages/s (higher is better)",
                      "messages / s"),
            line_plot(res, tmp, CPU, files[1], "server CPU per message (lower is better; "
                      "both cores are shared with the client)", "server CPU us / message"),
            latency_plot(res, tmp, files[2]),
            memory_plot(side, tmp, files[3])]
        if not any(parts):
            return []
        script = ("set terminal pngcairo size 1000,560 noenhanced font 'sans,10'\n"
                  "set grid\nset key outside right\nset logscale x 2\n"
                  "set xlabel 'connections (rr, 64 B messages); ticks at the measured points'\n"
                  + parts[0] + parts[1] + parts[2] + parts[3])
        p = subprocess.run(["gnuplot"], input=script.encode(), stderr=subprocess.PIPE,
                           timeout=60)
        if p.returncode != 0:
            raise RuntimeError("gnuplot: " + p.stderr.decode(errors="replace").strip())
        return [f for f, part in zip(files, parts) if part]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
