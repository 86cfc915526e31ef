#!/usr/bin/env python3
"""Issue 7's table: every benchmark row, the memory rows, and each target with its verdict.

    python3 bench/ratios.py --run BIN [--short] [--placement pinned|free|both] [--reps N]
                            [--extra FILE] [--save FILE]
    python3 bench/ratios.py SAVED.json [--extra FILE]

`--run` runs everything, one process after another, so every ratio comes from one sitting:
  1. the rows (tiny, concurrent64, bulk) with N interleaved repetitions (default 3,
     `--short`: 1), the server in a child process (so cpu_us_per_* is the client's CPU
     alone), once per placement: "pinned" (BIN --pin: the server on CPU 1, the client on
     CPU 0, a core each as a client and its remote agent have) and "free" (BIN
     --separate_server: the scheduler places both); each gets its own target table;
  2. BIN --memory stream ...: peak RSS (VmHWM) of a client process streaming 1 GiB
     (`--short`: 64 MiB), the server in a child process;
  3. BIN --memory inflight ...: RSS growth per call with 10,000 calls (`--short`: 1,000)
     held open by the server at once, for the raw callback client and the SDK.
`--short` is what CTest's bench_short runs: it fails only when a row errs, never on timing.
`--save` keeps the raw results (bench JSON + memory rows) for a later look without --run.
`--extra` adds target rows measured elsewhere (e.g. the agent against `cat`), a JSON list of
{"target": ..., "measured": ..., "ratio": float, "goal": ">= 0.8" or "<= 1.1", "note": ...}.

A "cost" ratio (latency, CPU) is SDK / raw: 1.0 is parity, lower is better. A throughput
ratio is SDK / raw: higher is better. Numbers are medians over the repetitions.
"""

import json
import os
import statistics
import subprocess
import sys
from collections import defaultdict

# row prefix -> (metric, unit, higher_is_better, extra metrics to show)
METRICS = [
    ("tiny_exec", ("real_time", "us/exec", False, ["p50_us", "p99_us", "cpu_us_per_exec", "server_cpu_us_per_exec"])),
    ("concurrent", ("items_per_second", "execs/s", True, ["cpu_us_per_exec", "server_cpu_us_per_exec"])),
    ("bulk_", ("MB_per_s", "MB/s", True, ["cpu_us_per_MiB", "server_cpu_us_per_MiB"])),
]

CLIENT_ORDER = {
    "raw_callback": 0,
    "raw_callback_collect": 1,
    "raw_sync": 2,
    "sdk_exec": 3,
    "sdk_stream": 4,
    "sdk_exec_noop_tracer": 5,
    "sdk_exec_otel_tracer": 6,
    "sdk_exec_callback": 7,
}

GIB = 1 << 30


def memory_plan(short):
    stream_bytes = (64 << 20) if short else GIB
    calls = 1000 if short else 10000
    return [
        ["stream", "raw_callback", str(stream_bytes), str(64 << 10)],
        ["stream", "sdk_stream", str(stream_bytes), str(64 << 10)],
        ["stream", "sdk_stream", str(stream_bytes), str(4 << 10)],
        # The SDK with gRPC's BDP probing off and a 1 MiB window: memory over throughput.
        ["stream", "sdk_stream_fixed_window", str(stream_bytes), str(64 << 10)],
        ["inflight", "raw_callback", str(calls)],
        ["inflight", "sdk_exec", str(calls)],
        ["inflight", "sdk_stream", str(calls)],
    ]


def metric_for(row):
    for prefix, metric in METRICS:
        if row.startswith(prefix):
            return metric
    return ("real_time", "time", False, [])


def load(data):
    """{row: {client: {metric: median}}} from the iteration runs of a JSON report."""
    samples = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    order = []
    for bench in data["benchmarks"]:
        if bench.get("run_type", "iteration") != "iteration":
            continue
        if bench.get("error_occurred"):
            raise SystemExit(f"{bench['name']}: {bench.get('error_message', 'error')}")
        row, client = bench["name"].split("/")[:2]
        if row not in order:
            order.append(row)
        for key, value in bench.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                samples[row][client][key].append(float(value))
    rank = {prefix: i for i, (prefix, _) in enumerate(METRICS)}

    def row_key(row):
        prefix = next((p for p, _ in METRICS if row.startswith(p)), "")
        digits = "".join(c for c in row if c.isdigit())
        return (rank.get(prefix, len(METRICS)), int(digits or 0), row)

    order.sort(key=row_key)
    medians = {
        row: {client: {k: statistics.median(v) for k, v in metrics.items()} for client, metrics in clients.items()}
        for row, clients in samples.items()
    }
    return order, medians


def fmt(value):
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}"


def perf_ratio(sdk, raw, higher_is_better):
    if not sdk or not raw:
        return None
    return sdk / raw if higher_is_better else raw / sdk


def rows_table(order, medians):
    lines = [
        "| row | client | result | other | vs raw_callback | vs raw_sync | vs raw_callback_collect |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in order:
        metric, unit, higher, extras = metric_for(row)
        clients = medians[row]
        raws = [clients.get(c, {}).get(metric) for c in ("raw_callback", "raw_sync", "raw_callback_collect")]
        for client, values in sorted(clients.items(), key=lambda kv: CLIENT_ORDER.get(kv[0], 9)):
            value = values.get(metric)
            if value is None:
                continue
            other = ", ".join(f"{k} {fmt(values[k])}" for k in extras if k in values)
            cells = []
            for i, raw in enumerate(raws):
                r = perf_ratio(value, raw, higher) if client.startswith("sdk") else None
                # Only exec() collects: the collecting baseline is for sdk_exec alone.
                if i == 2 and client != "sdk_exec":
                    r = None
                cells.append(f"{r:.2f}" if r is not None else "")
            lines.append(f"| {row} | {client} | {fmt(value)} {unit} | {other} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def memory_table(memory):
    lines = ["| memory row (median of runs) | client | result |", "|---|---|---|"]
    for m in memory:
        if m["memory"] == "stream":
            lines.append(
                f"| stream {int(m['total_bytes']) >> 20} MiB in {int(m['chunk_bytes']) >> 10} KiB messages | {m['client']} | "
                f"peak RSS {m['hwm_kib'] / 1024:.1f} MiB (before the stream {m['hwm_before_kib'] / 1024:.1f} MiB), "
                f"{m['MB_per_s']:.0f} MB/s, {m.get('runs', 1)} run(s) |"
            )
        else:
            lines.append(
                f"| {int(m['calls']):,} calls in flight | {m['client']} | {m['kib_per_call']:.1f} KiB/call "
                f"(RSS {m['rss_before_kib'] / 1024:.1f} -> {m['rss_held_kib'] / 1024:.1f} MiB), "
                f"{m.get('runs', 1)} run(s) |"
            )
    return "\n".join(lines)


def verdict(ratio, goal):
    if ratio is None:
        return "not measured"
    if not goal:
        return "reported"
    op, bound = goal.split()
    bound = float(bound)
    ok = ratio <= bound if op == "<=" else ratio >= bound
    return "met" if ok else "**missed**"


def targets(medians, memory, context, extra):
    """[(target, measured, ratio, goal, verdict)] for every target of issue 7."""
    out = []

    def get(row_prefix, client, key):
        for row, clients in medians.items():
            if row.startswith(row_prefix) and client in clients:
                return clients[client].get(key)
        return None

    def cost(row, key, label, goal, sdk_clients=("sdk_exec", "sdk_stream"), unit="us"):
        raw = get(row, "raw_callback", key)
        for client in sdk_clients:
            sdk = get(row, client, key)
            r = sdk / raw if sdk and raw else None
            measured = f"{fmt(sdk)} vs {fmt(raw)} {unit}" if r is not None else ""
            out.append((f"{label} ({client})", measured, r, goal))

    # Tracing (issue 6): what a tracer adds to the untraced exec() of the same run. No goal:
    # the untraced path's own cost is counted in instructions (bench/instructions.sh --tracing).
    for client, label in (("sdk_exec_noop_tracer", "a no-op sandbox::Tracer"), ("sdk_exec_otel_tracer", "the OTel SDK")):
        for key, unit in (("cpu_us_per_exec", "us CPU"), ("p50_us", "us p50")):
            traced = get("tiny_exec", client, key)
            plain = get("tiny_exec", "sdk_exec", key)
            r = traced / plain if traced and plain else None
            measured = f"{fmt(traced)} vs {fmt(plain)} {unit}" if r is not None else ""
            out.append((f"tiny exec traced with {label} / untraced sdk_exec ({key})", measured, r, ""))

    cost("tiny_exec", "p50_us", "tiny exec latency p50 / raw_callback", "<= 1.10")
    cost("tiny_exec", "p99_us", "tiny exec latency p99 / raw_callback", "<= 1.10")
    separate = str(context.get("server", "")).startswith("child process")
    if separate:
        cost("concurrent", "cpu_us_per_exec", "client CPU per exec, 64 in flight / raw_callback", "<= 1.15")
        # No goal: the same exec() with a plain callback as its completion token, which shows
        # what of the coroutine row is Asio's coroutine machinery rather than the SDK's.
        cost("concurrent", "cpu_us_per_exec", "client CPU per exec, 64 in flight / raw_callback", "",
             sdk_clients=("sdk_exec_callback",))
    else:
        out.append(("client CPU per exec, 64 in flight", "server in-process: not client-only", None, "<= 1.15"))

    for chunk in (4, 64):
        row = f"bulk_{chunk}KiB_chunks"
        sdk = get(row, "sdk_stream", "MB_per_s")
        for raw_client, goal, label in (("raw_callback", ">= 0.9", ""), ("raw_sync", ">= 0.8", " (stretch)")):
            raw = get(row, raw_client, "MB_per_s")
            r = sdk / raw if sdk and raw else None
            measured = f"{fmt(sdk)} vs {fmt(raw)} MB/s" if r is not None else ""
            out.append((f"stream() {chunk} KiB chunks MB/s / {raw_client}{label}", measured, r, goal))

    for m in memory:
        if m["memory"] == "stream" and m["client"] in ("sdk_stream", "sdk_stream_fixed_window"):
            mib = m["hwm_kib"] / 1024
            fixed = m["client"] == "sdk_stream_fixed_window"
            out.append(
                (
                    f"peak RSS streaming {int(m['total_bytes']) >> 20} MiB through stream(), "
                    f"{int(m['chunk_bytes']) >> 10} KiB messages (MiB)"
                    + (", BDP probing off, 1 MiB window" if fixed else ""),
                    f"{mib:.1f} MiB" + (f" at {m['MB_per_s']:.0f} MB/s" if fixed else ""),
                    mib,
                    # Reported: a setting a user may choose (guide.md), not the default.
                    "" if fixed else "<= 32",
                )
            )
    raw_inflight = next((m for m in memory if m["memory"] == "inflight" and m["client"] == "raw_callback"), None)
    for m in memory:
        if m["memory"] == "inflight" and m["client"] != "raw_callback" and raw_inflight:
            above = m["kib_per_call"] - raw_inflight["kib_per_call"]
            out.append(
                (
                    f"memory per in-flight call above raw_callback, {int(m['calls']):,} in flight ({m['client']}, KiB)",
                    f"{m['kib_per_call']:.1f} vs {raw_inflight['kib_per_call']:.1f} KiB/call",
                    above,
                    "<= 32",
                )
            )
    agent_rows = [e for e in extra if "agent" in e.get("target", "").lower()]
    if not agent_rows:
        out.append(("agent throughput / cat", "not measured by this command (the agent's benchmark)", None, ">= 0.8"))
    for e in extra:
        out.append((e["target"], e.get("measured", ""), e.get("ratio"), e["goal"]))
    return [(t, m, r, g, verdict(r, g)) for t, m, r, g in out]


def targets_table(rows):
    lines = ["| target | measured | ratio | goal | verdict |", "|---|---|---|---|---|"]
    for t, m, r, g, v in rows:
        lines.append(f"| {t} | {m} | {'' if r is None else f'{r:.2f}'} | {g} | {v} |")
    return "\n".join(lines)


PLACEMENTS = {"pinned": "--pin", "free": "--separate_server"}


def run_rows(binary, short, reps, bench_flags, placement):
    command = [binary, PLACEMENTS[placement]] + (["--short"] if short else []) + bench_flags + [
        "--benchmark_format=json",
        f"--benchmark_repetitions={reps}",
        "--benchmark_enable_random_interleaving=true",
    ]
    print("running:", " ".join(command), file=sys.stderr, flush=True)
    return json.loads(subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout)


def run_memory(binary, short, reps):
    memory = []
    # Peak RSS depends on which of gRPC's threads allocated what (one malloc arena each), so
    # it varies from process to process: each memory row runs `reps` times, in fresh
    # processes, and the median is kept.
    for args in memory_plan(short):
        command = [binary, "--memory"] + args
        samples = []
        for _ in range(reps):
            print("running:", " ".join(command), file=sys.stderr, flush=True)
            result = subprocess.run(command, stdout=subprocess.PIPE, text=True)
            if result.returncode != 0:
                raise SystemExit(f"memory row {' '.join(args)} failed: {result.stdout.strip()}")
            samples.append(json.loads(result.stdout))
        row = dict(samples[0])
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                row[key] = statistics.median(s[key] for s in samples)
        row["runs"] = len(samples)
        memory.append(row)
    return memory


def report(data, memory, extra):
    """Prints one placement's rows, the memory rows and the targets; returns the misses."""
    order, medians = load(data)
    context = data.get("context", {})
    reps_seen = max(
        (b.get("repetitions", 1) for b in data["benchmarks"] if b.get("run_type", "iteration") == "iteration"),
        default=1,
    )
    print(
        f"host {context.get('host_name', '?')}, {context.get('num_cpus', '?')} CPUs, "
        f"load average {context.get('load_avg', '?')}, server {context.get('server', '?')}, "
        f"mode {context.get('mode', '?')}, bulk {context.get('bulk_bytes', '?')} bytes, "
        f"medians of {reps_seen} repetition(s)"
    )
    print()
    print(rows_table(order, medians))
    if memory:
        print()
        print(memory_table(memory))
    print()
    rows = targets(medians, memory, context, extra)
    print(targets_table(rows))
    missed = [t for t, _, _, _, v in rows if v not in ("met", "not measured", "reported")]
    print()
    print(f"{len(rows) - len(missed)} of {len(rows)} target rows met, reported or not measured here; missed: {len(missed)}")
    return missed


def main(argv):
    args = argv[1:]
    short = "--short" in args
    args = [a for a in args if a != "--short"]

    def option(name, default=None):
        if name in args:
            i = args.index(name)
            value = args[i + 1]
            del args[i : i + 2]
            return value
        return default

    reps = int(option("--reps", "1" if short else "3"))
    extra_file = option("--extra")
    save = option("--save")
    binary = option("--run")
    placements = option("--placement", "both")
    placements = list(PLACEMENTS) if placements == "both" else [placements]
    if any(p not in PLACEMENTS for p in placements):
        raise SystemExit("--placement: pinned, free or both")
    if binary:
        runs = {p: run_rows(binary, short, reps, args, p) for p in placements}
        memory = run_memory(binary, short, reps)
        if save:
            with open(save, "w", encoding="utf-8") as f:
                json.dump({"runs": runs, "memory": memory}, f)
    elif len(args) == 1:
        with open(args[0], encoding="utf-8") as f:
            saved = json.load(f)
        if "runs" in saved:
            runs, memory = saved["runs"], saved["memory"]
        else:  # an older save: one placement
            runs = {"saved": saved.get("bench", saved)}
            memory = saved.get("memory", [])
    else:
        raise SystemExit(__doc__)
    extra = []
    if extra_file and os.path.exists(extra_file):
        with open(extra_file, encoding="utf-8") as f:
            extra = json.load(f)

    for i, (placement, data) in enumerate(runs.items()):
        if i:
            print()
        print(f"## placement: {placement}")
        report(data, memory, extra)


if __name__ == "__main__":
    main(sys.argv)
