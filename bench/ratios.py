#!/usr/bin/env python3
"""SDK/raw ratios per row of one sandbox_bench run, as a Markdown table.

    python3 bench/ratios.py results.json
    python3 bench/ratios.py --run build/bench-dev/bench/sandbox_bench [sandbox_bench flags]

`--run` runs the binary with 3 interleaved repetitions and JSON output first. With several
repetitions, every number is the median over them. A ratio is the SDK's performance over
the raw client's (throughput / throughput, or latency_raw / latency_sdk), so 1.0 is parity,
above 1 the SDK is faster, and the stage target is >= 0.8 against raw_callback on every row.
"""

import json
import statistics
import subprocess
import sys
from collections import defaultdict

TARGET = 0.8

# row prefix -> (metric, unit, higher_is_better, extra metrics to show)
METRICS = [
    ("tiny_exec", ("real_time", "us/exec", False, ["p50_us", "p99_us", "cpu_us_per_exec", "server_cpu_us_per_exec"])),
    ("concurrent", ("items_per_second", "execs/s", True, ["cpu_us_per_exec", "server_cpu_us_per_exec"])),
    ("bulk_", ("MB_per_s", "MB/s", True, ["cpu_us_per_MiB", "server_cpu_us_per_MiB"])),
]


CLIENT_ORDER = {"raw_callback": 0, "raw_callback_collect": 1, "raw_sync": 2, "sdk_exec": 3, "sdk_stream": 4}


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


def ratio(sdk, raw, higher_is_better):
    if not sdk or not raw:
        return None
    return sdk / raw if higher_is_better else raw / sdk


def table(order, medians, reps):
    lines = [
        f"Medians of {reps} repetition(s). Ratio = SDK performance / raw client performance "
        f"(>= {TARGET} is the target against raw_callback).",
        "",
        "| row | client | result | other | vs raw_callback | vs raw_sync | vs raw_callback_collect |",
        "|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for row in order:
        metric, unit, higher, extras = metric_for(row)
        clients = medians[row]
        raw_cb = clients.get("raw_callback", {}).get(metric)
        raw_sync = clients.get("raw_sync", {}).get(metric)
        raw_collect = clients.get("raw_callback_collect", {}).get(metric)
        for client, values in sorted(clients.items(), key=lambda kv: CLIENT_ORDER.get(kv[0], 9)):
            value = values.get(metric)
            if value is None:
                continue
            other = ", ".join(f"{k} {fmt(values[k])}" for k in extras if k in values)
            cells = []
            for raw in (raw_cb, raw_sync, raw_collect):
                r = ratio(value, raw, higher) if client.startswith("sdk") else None
                # Only exec() collects: the collecting baseline is for sdk_exec alone.
                if raw is raw_collect and client != "sdk_exec":
                    r = None
                cells.append(f"{r:.2f}" if r is not None else "")
            lines.append(f"| {row} | {client} | {fmt(value)} {unit} | {other} | " + " | ".join(cells) + " |")
            if client.startswith("sdk") and raw_cb:
                r = ratio(value, raw_cb, higher)
                verdicts.append((row, client, r))
    lines.append("")
    missed = [v for v in verdicts if v[2] < TARGET]
    if not verdicts:
        verdict = "no SDK rows in this run"
    elif not missed:
        verdict = f"met (lowest {min(v[2] for v in verdicts):.2f})"
    else:
        verdict = "missed on " + ", ".join(f"{r}/{c} ({x:.2f})" for r, c, x in missed)
    lines.append(f"Target SDK >= {TARGET}x raw_callback on every row: {verdict}")
    return "\n".join(lines)


def main(argv):
    if len(argv) >= 2 and argv[1] == "--run":
        if len(argv) < 3:
            raise SystemExit(__doc__)
        command = argv[2:] + [
            "--benchmark_format=json",
            "--benchmark_repetitions=3",
            "--benchmark_enable_random_interleaving=true",
        ]
        data = json.loads(subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout)
    elif len(argv) == 2:
        with open(argv[1], encoding="utf-8") as f:
            data = json.load(f)
    else:
        raise SystemExit(__doc__)
    order, medians = load(data)
    reps = max(
        (b.get("repetitions", 1) for b in data["benchmarks"] if b.get("run_type", "iteration") == "iteration"),
        default=1,
    )
    context = data.get("context", {})
    print(
        f"host {context.get('host_name', '?')}, {context.get('num_cpus', '?')} CPUs, "
        f"load average {context.get('load_avg', '?')}, server {context.get('server', '?')}, "
        f"mode {context.get('mode', '?')}, bulk {context.get('bulk_bytes', '?')} bytes"
    )
    print()
    print(table(order, medians, reps))


if __name__ == "__main__":
    main(sys.argv)
