#!/usr/bin/env python3
"""The report of a scripts/bench.sh run: markdown tables (printed, and written with the machine,
the commands and the targets to --md) and a chart of throughput against concurrency (--svg).

    python3 bench/report.py RUN_DIR --md docs/benchmarks.md --svg docs/benchmarks.svg

RUN_DIR holds what bench.sh wrote: results.jsonl, meta.tsv, versions.tsv, commands.txt.
Standard library only.
"""

import argparse
import json
import math
import os
import re
import sys
from collections import OrderedDict

BACKENDS = ["sqlite", "postgres", "mysql", "mongodb"]
SQL_BACKENDS = ["sqlite", "postgres", "mysql"]
NAMES = {
    "sqlite": "SQLite",
    "postgres": "PostgreSQL",
    "mysql": "MariaDB",
    "mongodb": "MongoDB-compatible (jongodb)",
}
SHORT = {"sqlite": "SQLite", "postgres": "PostgreSQL", "mysql": "MariaDB", "mongodb": "jongodb"}
OPS = [
    ("get", "getOwnIDDataByLoginId"),
    ("set", "setOwnIDDataByLoginId"),
    ("session", "getSessionByLoginId"),
]
COLORS = {"sqlite": "#4e79a7", "postgres": "#e15759", "mysql": "#59a14f", "mongodb": "#b07aa1"}

# The targets the issue set; the report says which were met.
TARGET_GET_RPS = 20_000
TARGET_GET_P99_MS = 5.0
TARGET_SET_RPS = 10_000
TARGET_RSS_MB = 30.0
TARGET_SIZE_RATIO = 1.2
TARGET_SERVER_RAW = 0.5


def load(run):
    results = []
    with open(os.path.join(run, "results.jsonl")) as f:
        for line in f:
            if line.strip():
                results.append(json.loads(line))
    meta = OrderedDict()
    with open(os.path.join(run, "meta.tsv")) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("\t")
            meta[key] = value
    versions = OrderedDict()
    path = os.path.join(run, "versions.tsv")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition("\t")
                versions[key] = value
    commands = []
    path = os.path.join(run, "commands.txt")
    if os.path.exists(path):
        with open(path) as f:
            commands = [line.rstrip("\n") for line in f if line.strip()]
    return results, meta, versions, commands


class Results:
    def __init__(self, rows):
        self.http = {}
        self.raw = {}
        self.rss = {}
        self.seed = {}
        for r in rows:
            key = (r.get("backend"), r.get("users"))
            if r["kind"] == "http":
                self.http[key + (r["op"], r["concurrency"])] = r
            elif r["kind"] == "raw":
                self.raw[key + (r["op"], r["concurrency"])] = r
            elif r["kind"] == "rss":
                self.rss[key] = r
            elif r["kind"] == "seed":
                self.seed[key] = r

    def backends(self):
        present = {k[0] for k in self.http} | {k[0] for k in self.raw}
        return [b for b in BACKENDS if b in present]

    def sizes(self, backend):
        return sorted({k[1] for k in list(self.http) + list(self.raw) if k[0] == backend})

    def concurrencies(self):
        return sorted({k[3] for k in list(self.http) + list(self.raw)})

    def ratio(self, key):
        http, raw = self.http.get(key), self.raw.get(key)
        if not http or not raw or not raw["rps"]:
            return None
        return http["rps"] / raw["rps"]

    def rss_mb(self, backend, users):
        """The server's highest peak RSS over the runs of one backend and size."""
        r = self.rss.get((backend, users))
        return r["vmhwm_kb"] * 1024 / 1e6 if r else None

    def run_rss_mb(self, key):
        """The server's peak RSS during one measured HTTP run (older results: the whole server's)."""
        http = self.http.get(key)
        if http and "rss_kb" in http:
            return http["rss_kb"] * 1024 / 1e6
        return self.rss_mb(key[0], key[1]) if http else None


def users_label(n):
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def num(x, digits=0):
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def tables(res):
    out = []
    for backend in res.backends():
        for op, endpoint in OPS:
            rows = []
            for users in res.sizes(backend):
                for c in res.concurrencies():
                    key = (backend, users, op, c)
                    http, raw = res.http.get(key), res.raw.get(key)
                    if not http and not raw:
                        continue
                    ratio = res.ratio(key)
                    rows.append(
                        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                            users_label(users),
                            c,
                            num(http and http["rps"]),
                            num(http and http["p50_ms"], 2),
                            num(http and http["p99_ms"], 2),
                            num(http and http["errors"]),
                            num(raw and raw["rps"]),
                            num(raw and raw["p99_ms"], 2),
                            num(ratio, 2),
                            num(res.run_rss_mb(key), 1),
                        )
                    )
            if not rows:
                continue
            out.append(f"### {NAMES[backend]}: {endpoint}\n")
            out.append(
                "| users | connections | req/s | p50 ms | p99 ms | errors | raw req/s | raw p99 ms "
                "| server/raw | server peak RSS MB |"
            )
            out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            out.extend(rows)
            out.append("")
    return "\n".join(out)


def verdict(ok):
    if ok is None:
        return "not measured"
    if ok == "info":
        return f"above {TARGET_RSS_MB:g} MB (not one of the target's runs)"
    return "**met**" if ok else "**missed**"


def size_ratios(runs, concurrencies, backend, small, large):
    """(req/s at `small` users / req/s at `large` users, op, concurrency) for every row that has
    both sizes, from `runs` (Results.http or Results.raw)."""
    ratios = []
    for op, _ in OPS:
        for c in concurrencies:
            a, b = runs.get((backend, small, op, c)), runs.get((backend, large, op, c))
            if a and b and b["rps"]:
                ratios.append((a["rps"] / b["rps"], op, c))
    return ratios


def targets(res):
    rows = []
    sizes = res.sizes("postgres")
    for users in sizes:
        http = res.http.get(("postgres", users, "get", 32))
        rps = http and http["rps"]
        rows.append((
            f"getOwnIDDataByLoginId, PostgreSQL, {users_label(users)} users, 32 connections: "
            f"≥ {TARGET_GET_RPS:,} req/s",
            f"{num(rps)} req/s",
            None if rps is None else rps >= TARGET_GET_RPS,
        ))
        p99 = http and http["p99_ms"]
        rows.append((
            f"… and p99 ≤ {TARGET_GET_P99_MS:g} ms",
            f"{num(p99, 2)} ms",
            None if p99 is None else p99 <= TARGET_GET_P99_MS,
        ))
    for users in sizes:
        http = res.http.get(("postgres", users, "set", 32))
        rps = http and http["rps"]
        rows.append((
            f"setOwnIDDataByLoginId, PostgreSQL, {users_label(users)} users, 32 connections: "
            f"≥ {TARGET_SET_RPS:,} req/s",
            f"{num(rps)} req/s",
            None if rps is None else rps >= TARGET_SET_RPS,
        ))
    # The target's "those runs": PostgreSQL, get and set, 32 connections.
    pg_rss = [((u, op), m) for u in sizes for op in ("get", "set")
              if (m := res.run_rss_mb(("postgres", u, op, 32))) is not None]
    if pg_rss:
        rows.append((
            f"server peak RSS ≤ {TARGET_RSS_MB:g} MB during the PostgreSQL get and set runs at 32 "
            "connections",
            ", ".join(f"{users_label(u)} {op}: {m:.1f} MB" for (u, op), m in pg_rss),
            all(m <= TARGET_RSS_MB for _, m in pg_rss),
        ))
    rss = [(b, u, res.rss_mb(b, u)) for (b, u) in res.rss]
    if rss:
        worst = max(rss, key=lambda r: r[2])
        rows.append((
            "server peak RSS, highest of any run of each backend and size (256 connections "
            "included)",
            "highest: {:.1f} MB ({} {}); ".format(worst[2], SHORT[worst[0]], users_label(worst[1]))
            + ", ".join(f"{SHORT[b]} {users_label(u)}: {m:.1f}" for b, u, m in rss),
            "info" if worst[2] > TARGET_RSS_MB else True,
        ))
    for backend in SQL_BACKENDS:
        bsizes = res.sizes(backend)
        if len(bsizes) < 2:
            continue
        small, large = bsizes[0], bsizes[-1]
        ratios = size_ratios(res.http, res.concurrencies(), backend, small, large)
        if not ratios:
            continue
        worst = max(ratios)
        # The same ratio for the raw driver: how much of the slowdown is the database's own.
        raw_ratios = size_ratios(res.raw, res.concurrencies(), backend, small, large)
        raw_note = ""
        if raw_ratios:
            raw_worst = max(raw_ratios)
            raw_note = "; raw driver, same runs: worst {:.2f}× ({} c={})".format(
                raw_worst[0], dict(OPS)[raw_worst[1]], raw_worst[2])
        rows.append((
            f"{NAMES[backend]}: {users_label(large)}-user run within {TARGET_SIZE_RATIO:g}× of the "
            f"{users_label(small)}-user run (req/s, every endpoint and concurrency)",
            "worst {:.2f}× ({} c={}); ".format(worst[0], dict(OPS)[worst[1]], worst[2])
            + ", ".join(f"{op} c={c}: {r:.2f}×" for r, op, c in ratios) + raw_note,
            worst[0] <= TARGET_SIZE_RATIO,
        ))
    for backend in SQL_BACKENDS:
        ratios = [(res.ratio(k), k) for k in res.http if k[0] == backend and res.ratio(k) is not None]
        if not ratios:
            continue
        worst = min(ratios)
        below = [r for r in ratios if r[0] < TARGET_SERVER_RAW]
        rows.append((
            f"{NAMES[backend]}: server/raw ≥ {TARGET_SERVER_RAW:g} on every row",
            "lowest {:.2f} ({}, {} users, c={}); {} of {} rows below".format(
                worst[0], dict(OPS)[worst[1][2]], users_label(worst[1][1]), worst[1][3],
                len(below), len(ratios)),
            not below,
        ))
    out = ["| target | measured | |", "|---|---|---|"]
    for target, measured, ok in rows:
        out.append(f"| {target} | {measured} | {verdict(ok)} |")
    return "\n".join(out) + "\n"


def nice_step(span, ticks=5):
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * power:
            return m * power
    return 10 * power


def esc(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chart(res):
    """Two rows of three panels (one per endpoint): req/s against connections (log scale), a line
    per backend. Top: the server over HTTP (solid: the smallest data set, dashed: the largest).
    Bottom: the raw driver without HTTP (solid: smallest, dashed: largest), on its own scale."""
    concurrencies = res.concurrencies()
    backends = res.backends()
    pw, ph = 330, 220  # plot area of one panel
    left, top, gap, row_gap = 80, 100, 40, 92
    width = left + len(OPS) * pw + (len(OPS) - 1) * gap + 30
    height = top + 2 * ph + row_gap + 110
    lx = [math.log2(c) if c > 0 else 0 for c in concurrencies]
    lmin, lmax = min(lx), max(lx)

    def x_of(panel, c):
        x0 = left + panel * (pw + gap)
        t = 0.5 if lmax == lmin else (math.log2(c) - lmin) / (lmax - lmin)
        return x0 + 15 + t * (pw - 30)

    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" '
        'font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="24" font-size="16" font-weight="bold">ownid-bridge: throughput '
        'against concurrency</text>',
        f'<text x="{left}" y="42" fill="#555">requests/s (y) at each number of connections (x, log '
        'scale); wrk, server and database share 2 cores</text>',
    ]
    rows = [(res.http, "server over HTTP (wrk)"), (res.raw, "raw driver, no HTTP (ownid-bench raw)")]
    for row, (source, row_title) in enumerate(rows):
        y0 = top + row * (ph + row_gap)
        ymax = max([r["rps"] for r in source.values()] or [1])
        step = nice_step(ymax * 1.05 or 1)
        ytop = step * math.ceil(ymax * 1.05 / step)

        def y_of(v, y0=y0, ytop=ytop):
            return y0 + ph - v / ytop * ph

        svg.append(f'<text x="{left}" y="{y0 - 26}" font-size="13" font-weight="bold" '
                   f'fill="#333">{esc(row_title)}</text>')
        for panel, (op, endpoint) in enumerate(OPS):
            x0 = left + panel * (pw + gap)
            svg.append(f'<text x="{x0 + pw / 2}" y="{y0 - 8}" text-anchor="middle">'
                       f'{endpoint}</text>')
            svg.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" '
                       'stroke="#999"/>')
            v = 0
            while v <= ytop + 1e-9:
                y = y_of(v)
                svg.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{y:.1f}" y2="{y:.1f}" '
                           'stroke="#e5e5e5"/>')
                if panel == 0:
                    svg.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">'
                               f'{v:,.0f}</text>')
                v += step
            for c in concurrencies:
                x = x_of(panel, c)
                svg.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0 + ph}" y2="{y0 + ph + 4}" '
                           'stroke="#999"/>')
                svg.append(f'<text x="{x:.1f}" y="{y0 + ph + 18}" text-anchor="middle">{c}'
                           '</text>')
            svg.append(f'<text x="{x0 + pw / 2}" y="{y0 + ph + 34}" text-anchor="middle" '
                       'fill="#555">connections</text>')
            for backend in backends:
                sizes = res.sizes(backend)
                styles = [(sizes[0], "")] + ([(sizes[-1], "7,4")] if len(sizes) > 1 else [])
                for users, dash in styles:
                    points = [(x_of(panel, c), y_of(source[(backend, users, op, c)]["rps"]))
                              for c in concurrencies if (backend, users, op, c) in source]
                    if not points:
                        continue
                    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
                    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
                    svg.append(f'<polyline points="{path}" fill="none" '
                               f'stroke="{COLORS[backend]}" stroke-width="2"{dash_attr}/>')
                    for x, y in points:
                        fill = COLORS[backend] if not dash else "white"
                        svg.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{fill}" '
                                   f'stroke="{COLORS[backend]}"/>')
    # Legend.
    ly = top + 2 * ph + row_gap + 62
    x = left
    for backend in backends:
        sizes = res.sizes(backend)
        label = f"{SHORT[backend]} ({' and '.join(users_label(u) for u in sizes)} users)"
        svg.append(f'<line x1="{x}" x2="{x + 24}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{COLORS[backend]}" stroke-width="3"/>')
        svg.append(f'<text x="{x + 30}" y="{ly}">{esc(label)}</text>')
        x += 40 + 7 * len(label)
    if any(len(res.sizes(b)) > 1 for b in backends):
        ly += 22
        x = left
        for dash, label in [("", "smallest data set"), ("7,4", "largest data set (1M users)")]:
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            svg.append(f'<line x1="{x}" x2="{x + 24}" y1="{ly - 4}" y2="{ly - 4}" '
                       f'stroke="#333" stroke-width="2"{dash_attr}/>')
            svg.append(f'<text x="{x + 30}" y="{ly}">{esc(label)}</text>')
            x += 50 + 7 * len(label)
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


def shorten(command, meta):
    for key, name in (("out", "$RUN"), ("work", "$WORK")):
        if meta.get(key):
            command = command.replace(meta[key], name)
    command = re.sub(r"--secret \S+", '--secret "$SECRET"', command)
    command = re.sub(r"--config \S+/bridge-(\w+)\.yaml", r"--config $WORK/bridge-\1.yaml", command)
    return command


def document(res, meta, versions, commands):
    quick = meta.get("quick") not in (None, "", "0")
    lines = ["# Benchmarks", ""]
    lines.append(
        "Generated by `scripts/bench.sh` (`bench/report.py`): the release server on each backend, "
        "driven over HTTP by wrk with correctly signed requests, next to the database's own limit "
        "(`ownid-bench raw`: the server's statements through the same driver at the same "
        "concurrency, no HTTP). "
        + ("**This is a quick run (BENCH_QUICK=1): 10,000 users, short runs.** " if quick else "")
    )
    lines.append("")
    lines.append("## Machine\n")
    lines.append("| | |\n|---|---|")
    for key, label in [("date", "date"), ("cores", "cores (nproc)"), ("cpu", "CPU"),
                       ("memory", "memory"), ("kernel", "kernel"), ("os", "OS"),
                       ("rustc", "rustc"), ("wrk", "load generator")]:
        if meta.get(key):
            lines.append(f"| {label} | {esc(meta[key])} |")
    for backend, version in versions.items():
        lines.append(f"| {NAMES.get(backend, backend)} | {esc(version)} |")
    if meta.get("db_settings"):
        lines.append("| database settings (as the servers report them) | "
                     + esc(meta["db_settings"]) + " |")
    if meta.get("cpu_probe_start_ms"):
        lines.append(
            "| CPU speed probe (`bench/probe.py`: a fixed Python loop; lower is faster) | "
            f"{meta['cpu_probe_start_ms']} ms before the run, "
            f"{meta.get('cpu_probe_end_ms', '?')} ms after |")
    if meta.get("wake_probe_start_us"):
        lines.append(
            "| wake-up probe (`bench/probe.py`: a round trip between two processes over a socket "
            "pair; lower is faster) | "
            f"{meta['wake_probe_start_us']} µs before the run, "
            f"{meta.get('wake_probe_end_us', '?')} µs after |")
    lines.append("")
    lines.append(
        "One machine runs everything: wrk, the server and the database share its cores, so each "
        "number is what the three achieve together. The databases are the test suite's throwaway "
        "servers (`scripts/servers/`), with the settings above."
    )
    lines.append("")
    lines.append("## How it was run\n")
    lines.append("```sh\n" + meta.get("invocation", "scripts/bench.sh") + "\n```\n")
    lines.append(
        "| setting | value |\n|---|---|\n"
        f"| measured seconds per run (wrk and raw) | {meta.get('seconds', '?')} |\n"
        f"| warm-up before each run (not measured) | {meta.get('warmup', '?')} s |\n"
        f"| server `storage.pool.max_connections` | {meta.get('pool', '?')} |\n"
        f"| raw pool size | min(concurrency, {meta.get('pool', '?')}); SQLite readers at most 2 per CPU, as in the server |\n"
        f"| wrk threads | {meta.get('wrk_threads', '?')} |\n"
        f"| pre-signed requests per endpoint | {meta.get('requests', '?')} "
        "(set: at most 30,000), each for a random user |\n"
        f"| whole run (after the build) | {meta.get('elapsed', '?')} s |\n"
    )
    lines.append(
        "Server configuration: `ownid.max_clock_skew: 1h` and `ownid.replay_protection: off` (the "
        "requests are signed before the run and replayed), `log.level: warn`, metrics on (the default), everything else default. "
        "Users are `user{i}@bench.example` with 1,024 characters of ownIdData; sets write "
        "another 1,024-character value. `errors` counts responses with a status of 400 or more "
        "and socket errors (wrk; the endpoints answer nothing but 2xx, 4xx and 5xx) or failed "
        "statements (raw). Latencies are wrk's (p50, p99 over every request of "
        "the measured run) and raw's (the same, per statement).\n"
    )
    configs = sorted((not f.startswith("config-postgres"), f)
                     for f in os.listdir(meta.get("run", ".")) if f.startswith("config-"))
    configs = [f for _, f in configs]
    if configs:
        with open(os.path.join(meta["run"], configs[0])) as f:
            example = f.read()
        lines.append(f"The server's configuration file (`{configs[0]}`; the other backends differ "
                     "in `storage.backend` and `storage.url`):\n")
        lines.append("```yaml\n" + example.rstrip() + "\n```\n")
    if commands:
        per_run = []
        first = None
        for command in commands:
            command = shorten(command, meta)
            m = re.search(r"seed --backend (\S+) --url \S+ --users (\d+)", command)
            if m:
                if first is not None:
                    break
                first = (m.group(1), m.group(2))
            if first is not None:
                per_run.append(command)
        if first:
            lines.append(
                f"The exact commands of one backend and size ({NAMES.get(first[0], first[0])}, "
                f"{int(first[1]):,} users); the others differ only in backend, URL, users and "
                "port. `$RUN` is the run directory (results and a copy of the binaries), `$WORK` "
                "a temporary directory, `$SECRET` the run's shared secret.\n"
            )
            lines.append("```sh\n" + "\n".join(per_run) + "\n```\n")
        lines.append("<details><summary>Every command of the run</summary>\n")
        lines.append("```sh\n" + "\n".join(shorten(c, meta) for c in commands) + "\n```\n")
        lines.append("</details>\n")
    mongo_sizes = res.sizes("mongodb")
    if mongo_sizes and "jongodb" in versions.get("mongodb", "") and max(mongo_sizes) < 100_000:
        lines.append(
            "The MongoDB backend ran against jongodb, the MongoDB-compatible server of the test "
            f"suite, with {max(mongo_sizes):,} users only: jongodb answers a lookup by scanning "
            "(its time grows with the collection) and an update in time that grows with the "
            "square of the collection (measured: 13 ms at 1,000 documents, 330 ms at 5,000, "
            "1.35 s at 10,000), so 100,000 users cannot be seeded or updated within a run. Its "
            "rows measure jongodb far more than ownid-bridge. Against a real MongoDB: "
            "`OWNID_TEST_MONGODB_URL=mongodb://HOST:PORT BENCH_MONGO_USERS=100000 "
            "scripts/bench.sh`.\n"
        )
    lines.append("## Throughput against concurrency\n")
    lines.append("![Throughput against concurrency per backend](benchmarks.svg)\n")
    lines.append("## Targets\n")
    lines.append(targets(res))
    analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis.md")
    if os.path.exists(analysis):
        # Written by hand from profiles (perf); it says when and on what it was measured.
        with open(analysis) as f:
            lines.append(f.read().rstrip() + "\n")
    lines.append("## Results\n")
    lines.append(
        "One table per backend and endpoint. `raw` is `ownid-bench raw` on the same data at the "
        "same concurrency; `server/raw` is the server's req/s divided by raw's. Peak RSS is the "
        "server's VmHWM during that measured run (reset through /proc/PID/clear_refs just before "
        "it; runs go by concurrency, lowest first, so a run never counts what a busier one left "
        "allocated).\n"
    )
    lines.append(tables(res))
    seeds = [r for r in res.seed.values()]
    if seeds:
        lines.append("Seeding (drop, create through the server's schema code, bulk insert, "
                     "ANALYZE where applicable):\n")
        lines.append("| backend | users | seconds |\n|---|---:|---:|")
        for r in seeds:
            lines.append(f"| {NAMES[r['backend']]} | {r['users']:,} | {r['seconds']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--md")
    parser.add_argument("--svg")
    args = parser.parse_args()
    rows, meta, versions, commands = load(args.run)
    meta["run"] = args.run
    res = Results(rows)
    print(tables(res))
    print(targets(res))
    if args.svg:
        with open(args.svg, "w") as f:
            f.write(chart(res))
        print(f"wrote {args.svg}", file=sys.stderr)
    if args.md:
        with open(args.md, "w") as f:
            f.write(document(res, meta, versions, commands))
        print(f"wrote {args.md}", file=sys.stderr)


if __name__ == "__main__":
    main()
