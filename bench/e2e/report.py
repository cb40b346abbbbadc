#!/usr/bin/env python3
"""Turns bench/e2e/run.sh's raw results (round, phase, target, metric, value rows) into one
Markdown table: the median over rounds per target, and the median over rounds of the ratio to
the best reference proxy (nginx or HAProxy) measured in the same round."""
import statistics
import sys
import time

TARGET_ORDER = ["direct", "floor", "tokentap", "tokentap-base", "tokentap-fleet", "tokentap-t2",
                "nginx", "haproxy"]
TARGETS = list(TARGET_ORDER)  # narrowed to the targets a run measured
# The references of every (×r): never "floor", which is a lower bound, not a competitor.
PEERS = ["nginx", "haproxy"]
# Pages a proxy touches once stay resident, so only its first rounds show growth: take the
# largest per-round value, not the median.
AGG_MAX = {"KiB_per_stream"}
# A metric whose ratio is taken against another metric of the best peer: the kernel part of a
# proxy's CPU over the best peer's *whole* CPU is the ratio that proxy would reach with no
# user-space cost at all (the floor of "CPU per request" on this kernel).
RATIO_REF = {"cpu_sys_us": "cpu_us"}
# metric: (label, higher_is_better)
METRICS = {
    "rps": ("req/s ↑", True),
    "p50_ms": ("p50 ms ↓", False),
    "p99_ms": ("p99 ms ↓", False),
    "p999_ms": ("p99.9 ms ↓", False),
    "cpu_us": ("proxy CPU µs/req ↓", False),
    "cpu_sys_us": ("of it in the kernel (stime), µs/req ↓", False),
    "down_MBps": ("download MB/s ↑", True),
    "down_cpu_ms_GiB": ("proxy CPU ms/GiB down ↓", False),
    "up_MBps": ("upload MB/s ↑", True),
    "up_cpu_ms_GiB": ("proxy CPU ms/GiB up ↓", False),
    "rss_before_MiB": ("RSS before, MiB ↓", False),
    "rss_open_MiB": ("RSS while open, MiB ↓", False),
    "KiB_per_stream": ("KiB per open stream ↓", False),
    "errors": ("errors (sum of rounds)", False),
}


def phase_title(phase, meta):
    if phase.startswith("gen"):
        return f"POST /api/generate, stream:false, {phase[3:]} conns (wrk)"
    sc = meta.get("stream_conns", "?")
    return {
        "ndjson32": f"/api/generate stream, 32 NDJSON lines, {sc} conns (wrk)",
        "sse_usage": f"/v1/chat/completions SSE, 32 tokens, include_usage, {sc} conns (wrk)",
        "sse_plain": f"/v1/chat/completions SSE, 32 tokens, no include_usage, {sc} conns (wrk)",
        "paced": f"paced {meta.get('paced_rate')} req/s open loop, {meta.get('paced_conns')} conns,"
        " non-stream (e2e_client)",
        "bulk": f"bulk {meta.get('bulk_MiB')} MiB via curl (MB = 10^6 B)",
        "first_line": "first NDJSON line, upstream 50 ms/token, "
        f"{meta.get('first_conns')} conns (e2e_client)",
        "streams": f"{meta.get('streams')} slow streams held open (1 line/s each),"
        f" {meta.get('streams_rounds')} round(s)",
    }.get(phase, phase)


def fmt(v):
    if v != v:  # nan
        return "nan"
    a = abs(v)
    if a >= 1000:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 0.1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def load(path):
    data = {}  # (phase, metric) -> target -> round -> value
    phases = []
    with open(path) as f:
        for line in f:
            rnd, phase, target, metric, value = line.rstrip("\n").split("\t")
            try:
                val = float(value)
            except ValueError:
                val = float("nan")
            if phase not in phases:
                phases.append(phase)
            data.setdefault((phase, metric), {}).setdefault(target, {})[rnd] = val
    return data, phases


def ratios(per_target, target, higher, metric, ref):
    if metric in AGG_MAX:
        peers = [max(per_target[p].values()) for p in PEERS if per_target.get(p)]
        v = max(per_target.get(target, {}).values(), default=float("nan"))
        peers = [p for p in peers if p == p and p > 0]
        return [v / min(peers)] if peers and v == v else []
    out = []
    for rnd, v in per_target.get(target, {}).items():
        peers = [ref[p][rnd] for p in PEERS if rnd in ref.get(p, {})]
        peers = [p for p in peers if p == p and p > 0]
        if not peers or v != v:
            continue
        out.append(v / (max(peers) if higher else min(peers)))
    return out


def cell(per_target, target, metric, ref):
    vals = [v for v in per_target.get(target, {}).values() if v == v]
    if not vals:
        return "—"
    if metric == "errors":
        return f"{sum(vals):.0f}"
    text = fmt(max(vals) if metric in AGG_MAX else statistics.median(vals))
    r = ratios(per_target, target, METRICS[metric][1], metric, ref)
    if r:
        text += f" (×{statistics.median(r):.2f})"
    return text


def base_comparison(data, phases, other="tokentap-base", title="tokentap vs tokentap-base"):
    """tokentap vs tokentap-base (E2E_BASE_BIN) or tokentap-fleet (E2E_FLEET): the median over
    rounds of the per-round ratio of CPU per request, so a before/after of one change (or one
    upstream against N) is read from one alternating run."""
    rows = []
    for phase in phases:
        per_target = data.get((phase, "cpu_us"), {})
        base, now = per_target.get("tokentap", {}), per_target.get(other, {})
        if other == "tokentap-base":
            now, base = base, now
        ratios = [now[r] / base[r] for r in now if r in base and base[r] > 0 and now[r] == now[r]]
        if ratios:
            rows.append(
                f"| {phase} | {statistics.median(base.values()):.2f} |"
                f" {statistics.median(now.values()):.2f} | ×{statistics.median(ratios):.3f} |"
                f" ×{min(ratios):.3f}–×{max(ratios):.3f} |"
            )
    if not rows:
        return []
    return [
        "",
        f"{title} (CPU µs per request, median of the per-round ratio):",
        "",
        "| workload | reference µs | compared µs | ratio | per-round range |",
        "|---|---:|---:|---:|---|",
    ] + rows


def main():
    global TARGETS
    data, phases = load(sys.argv[1])
    present = {t for per_target in data.values() for t in per_target}
    TARGETS = [t for t in TARGET_ORDER if t in present]
    meta = {}
    with open(sys.argv[2]) as f:
        for line in f:
            for kv in line.split():
                k, _, v = kv.partition("=")
                meta[k] = v.replace("_", " ") if k in ("cpu_model", "tokentap") else v
    rounds = meta.get("rounds", "?")
    out = [
        f"# tokentap end-to-end comparison ({meta.get('mode')} run, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"Machine: Linux {meta.get('kernel')}, {meta.get('cpus')} CPUs ({meta.get('cpu_model')}),"
        " shared with other work (see Noise below). Nothing pinned.",
        f"Versions: {meta.get('tokentap')}, nginx {meta.get('nginx')}, HAProxy "
        f"{meta.get('haproxy')}, wrk {meta.get('wrk')}, curl {meta.get('curl')}; "
        "upstream: fake_upstream --threads 1.",
        f"Each cell is the median of {rounds} rounds; (×r) is the median of the per-round ratio"
        " to the best of nginx/HAProxy in the same round (↑: >1 is better, ↓: <1 is better)."
        " tokentap-t2 is `--threads 2`; every other proxy runs 1 worker/thread."
        " floor is bench/e2e/floor_proxy.c, a bare epoll forwarder with no HTTP parsing"
        " (recv/send, splice for big transfers): the least CPU and latency any proxy can add on"
        " this machine."
        f" wrk phases {meta.get('wrk_s')} s, paced {meta.get('paced_s')} s, first line"
        f" {meta.get('first_s')} s per target per round; run took {meta.get('elapsed_s')} s.",
        "",
        "| workload | figure | " + " | ".join(TARGETS) + " |",
        "|---|---|" + "---:|" * len(TARGETS),
    ]
    for phase in phases:
        first = True
        for metric in METRICS:
            per_target = data.get((phase, metric))
            if not per_target:
                continue
            if metric == "errors" and not any(
                v for t in per_target.values() for v in t.values() if v == v
            ):
                continue
            title = phase_title(phase, meta) if first else ""
            first = False
            ref = data.get((phase, RATIO_REF[metric]), {}) if metric in RATIO_REF else per_target
            cells = [cell(per_target, t, metric, ref) for t in TARGETS]
            out.append(f"| {title} | {METRICS[metric][0]} | " + " | ".join(cells) + " |")
    spreads = []
    for (phase, metric), per_target in data.items():
        if metric not in ("rps", "down_MBps", "up_MBps") or phase == "paced":
            continue
        for t in per_target.values():
            vals = [v for v in t.values() if v == v and v > 0]
            if len(vals) >= 2:
                spreads.append(max(vals) / min(vals) - 1)
    if spreads:
        out += [
            "",
            f"Noise: the round-to-round spread (max/min − 1) of one target's throughput in one"
            f" workload is {100 * statistics.median(spreads):.0f} % at the median and"
            f" {100 * max(spreads):.0f} % at worst in this run. KiB per open stream is the"
            " largest per-round RSS growth ÷ streams (pages touched once stay resident).",
        ]
    out += base_comparison(data, phases)
    out += base_comparison(data, phases, "tokentap-fleet", "One upstream vs several (tokentap-fleet)")
    print("\n".join(out))


if __name__ == "__main__":
    main()
