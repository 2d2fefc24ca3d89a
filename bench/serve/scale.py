#!/usr/bin/env python3
"""`mtasts serve` hosting 10 vs 10,000 domains, through the binary and the SQLite store
(BENCHMARKS.md, "10 vs 10,000 hosted domains through `mtasts serve`"). Run through
bench/serve/scale.sh, which builds the tools, populates one store per domain count (not timed) and
enters a private network namespace (only loopback).

Per run and domain count (the counts interleaved, their order alternating from run to run):
start `mtasts serve` on CPU 1 (one thread: a current-thread runtime); start-up time from the
process spawn to `/health` reporting every domain loaded; VmRSS and VmHWM then; a curl fetch of
the first and the last domain verified against the test PKI's root; a warm-up, then the
new-TLS-connection fetch load (serve_bench handshakes on CPU 0, spread over every hosted name,
connecting to the server's address itself) with the server's CPU time per fetch
(/proc/PID/stat, utime + stime); VmRSS and VmHWM after it; stop (SIGTERM).

With --floor, each run then measures the same load against `serve_bench raw` (plain tokio-rustls,
a HashMap from name to certificate and body, no hyper, no store) with the smallest count, the
largest with a key and chain per name, and the largest with one key and chain shared by all
names: what the TLS handshakes themselves cost at each size. Prints Markdown. Every wait and every
load is bounded in time.
"""
import argparse
import json
import os
import select
import signal
import statistics
import subprocess
import time
import urllib.request

HTTPS_PORT = 8443
ADMIN_PORT = 8444
PATH = "/.well-known/mta-sts.txt"
STARTUP_LIMIT_S = 120


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def status_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(line.split()[1])
    return out


def health():
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ADMIN_PORT}/health", timeout=1) as r:
            return json.loads(r.read())
    except Exception:  # refused while starting, or 503: not yet
        return None


def start(a, n, log):
    store = f"sqlite:{a.dir}/store-{n}.db"
    t0 = time.monotonic()
    p = subprocess.Popen(
        ["taskset", "-c", a.server_cpu, a.mtasts, "serve", "--store", store,
         "--https", f"127.0.0.1:{HTTPS_PORT}", "--http", "none", "--admin", f"127.0.0.1:{ADMIN_PORT}",
         "--threads", "1", "--log", "json",
         # No drift rounds (they would look up every domain's DNS), no system resolver.
         "--set", "check.drift_interval=0", "--nameserver", "127.0.0.1:1"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    while True:
        h = health()
        if h is not None and h.get("serving", {}).get("domains") == n:
            return p, time.monotonic() - t0, h
        if p.poll() is not None:
            raise SystemExit(f"mtasts serve exited ({p.returncode}); see {log.name}")
        if time.monotonic() - t0 > STARTUP_LIMIT_S:
            p.kill()
            raise SystemExit(f"{n} domains not loaded within {STARTUP_LIMIT_S} s (last /health: {h})")
        time.sleep(0.002)


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=5)


def check_fetch(a, n, i):
    name = f"mta-sts.d{i}.test"
    out = subprocess.run(
        ["taskset", "-c", a.load_cpu, "curl", "-sS", "--max-time", "5", "--cacert", f"{a.dir}/pki-{n}/root.pem",
         "--resolve", f"{name}:{HTTPS_PORT}:127.0.0.1", f"https://{name}:{HTTPS_PORT}{PATH}"],
        capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("version: STSv1") and f"mx: mx.d{i}.test" in out.stdout, out.stdout


def handshakes(a, n, secs):
    out = subprocess.run(
        ["taskset", "-c", a.load_cpu, a.tool, "handshakes", "--addr", f"127.0.0.1:{HTTPS_PORT}",
         "--names", str(n), "--conns", str(a.conns), "--secs", str(secs), "--threads", "1"],
        capture_output=True, text=True, timeout=secs + 30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def measured_load(a, n, pid):
    """The warm-up, then the measured load with the server's CPU time per fetch."""
    if a.warmup > 0:
        handshakes(a, n, a.warmup)
    t0, w0 = cpu_ticks(pid), time.monotonic()
    load = handshakes(a, n, a.secs)
    cpu_s = (cpu_ticks(pid) - t0) * TICK_S
    load["cpu_us_per_fetch"] = cpu_s * 1e6 / max(load["ok"], 1)
    # Below 1.0 the server was not the bottleneck (other processes on its CPU, or the load tool).
    load["server_cpu_share"] = cpu_s / (time.monotonic() - w0)
    assert load["errors"] == 0, load
    return load


def one(a, n, log):
    p, startup, h = start(a, n, log)
    try:
        started = status_kib(p.pid)
        check_fetch(a, n, 0)
        check_fetch(a, n, n - 1)
        load = measured_load(a, n, p.pid)
        after = status_kib(p.pid)
    finally:
        stop(p)
    return {"domains": n, "generation": h["serving"]["generation"], "startup_s": startup,
            "rss_start_kib": started["VmRSS"], "hwm_start_kib": started["VmHWM"],
            "rss_after_kib": after["VmRSS"], "hwm_after_kib": after["VmHWM"], **load}


def one_raw(a, n, shared):
    cmd = ["taskset", "-c", a.server_cpu, a.tool, "raw", "--domains", str(n),
           "--https", f"127.0.0.1:{HTTPS_PORT}", "--threads", "0"]
    p = subprocess.Popen(cmd + (["--shared-key"] if shared else []),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([p.stdout], [], [], STARTUP_LIMIT_S)
        assert ready and p.stdout.readline().strip() == "ready", "serve_bench raw did not start"
        load = measured_load(a, n, p.pid)
        after = status_kib(p.pid)
    finally:
        p.stdin.close()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
    return {"domains": n, "shared_key": shared, "rss_after_kib": after["VmRSS"], **load}


def mib(kib):
    return f"{kib / 1024:.1f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mtasts", required=True)
    ap.add_argument("--tool", required=True)
    ap.add_argument("--dir", required=True, help="holds store-N.db and pki-N/root.pem per count")
    ap.add_argument("--domains", default="10,10000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--secs", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--server-cpu", default="1")
    ap.add_argument("--load-cpu", default="0")
    ap.add_argument("--floor", action="store_true", help="also serve_bench raw, each run")
    a = ap.parse_args()
    counts = [int(c) for c in a.domains.split(",")]
    results = {n: [] for n in counts}
    lo, hi = min(counts), max(counts)
    floors = [(lo, False), (hi, False), (hi, True)]
    floor = {f: [] for f in floors}
    with open(f"{a.dir}/serve.log", "a") as log:
        for run in range(a.runs):
            order = counts if run % 2 == 0 else counts[::-1]
            for n in order:
                r = one(a, n, log)
                r["run"] = run + 1
                r["load_average"] = os.getloadavg()[0]
                results[n].append(r)
                print(json.dumps(r), flush=True)
            if a.floor:
                for f in (floors if run % 2 == 0 else floors[::-1]):
                    r = one_raw(a, *f)
                    r["run"] = run + 1
                    r["load_average"] = os.getloadavg()[0]
                    floor[f].append(r)
                    print(json.dumps(r), flush=True)

    print(f"\nPer run ({a.secs:g} s of load after {a.warmup:g} s of warm-up, {a.conns} fetches at a time; "
          "server CPU share: the server's CPU time over the load's wall time, below 100 % when other "
          "processes had its CPU):\n")
    print("| run | domains | start-up (s) | VmRSS after start (MiB) | VmRSS / VmHWM after load (MiB) "
          "| fetches/s | p50 (ms) | p99 (ms) | server CPU per fetch (µs) | server CPU share | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for run in range(a.runs):
        for n in counts:
            r = results[n][run]
            print(f"| {run + 1} | {n:,} | {r['startup_s']:.2f} | {mib(r['rss_start_kib'])} | "
                  f"{mib(r['rss_after_kib'])} / {mib(r['hwm_after_kib'])} | {r['per_sec']:,.0f} | "
                  f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['cpu_us_per_fetch']:.1f} | "
                  f"{r['server_cpu_share']:.0%} | {r['load_average']:.2f} |")

    def med(n, key):
        return statistics.median(r[key] for r in results[n])

    print(f"\nMedians of {a.runs} runs:\n")
    print("| domains | start-up (s) | VmRSS after start (MiB) | VmRSS after load (MiB) | VmHWM (MiB) "
          "| fetches/s | p50 (ms) | p99 (ms) | server CPU per fetch (µs) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in counts:
        print(f"| {n:,} | {med(n, 'startup_s'):.2f} | {mib(med(n, 'rss_start_kib'))} | "
              f"{mib(med(n, 'rss_after_kib'))} | {mib(med(n, 'hwm_after_kib'))} | "
              f"{med(n, 'per_sec'):,.0f} | {med(n, 'p50_ms'):.2f} | {med(n, 'p99_ms'):.2f} | "
              f"{med(n, 'cpu_us_per_fetch'):.1f} |")
    if lo != hi:
        print(f"\n{hi:,} / {lo:,} domains, ratio of the medians (per run in brackets):\n")
        for key, label in (("p99_ms", "p99"), ("p50_ms", "p50"), ("per_sec", "fetches/s"),
                           ("cpu_us_per_fetch", "server CPU per fetch"), ("startup_s", "start-up"),
                           ("rss_after_kib", "VmRSS after load")):
            per_run = [results[hi][i][key] / results[lo][i][key] for i in range(a.runs)]
            print(f"- {label}: **{med(hi, key) / med(lo, key):.3f}** "
                  f"({', '.join(f'{x:.3f}' for x in per_run)})")
    if a.floor:
        print(f"\nThe floor, serve_bench raw (plain tokio-rustls), same load; per run, then the median:\n")
        print("| server | domains | keys and chains | fetches/s | p50 (ms) | p99 (ms) "
              "| server CPU per fetch (µs) | VmRSS (MiB) |")
        print("|---|---|---|---|---|---|---|---|")
        rows = [(f"`mtasts serve`", n, "one per domain", results[n]) for n in (lo, hi)]
        rows += [("raw rustls", n, "one shared" if sh else "one per domain", floor[(n, sh)])
                 for n, sh in floors]
        for label, n, keys, rs in rows:
            def m(key):
                return statistics.median(r[key] for r in rs)
            def runs(key, fmt):
                return " / ".join(format(r[key], fmt) for r in rs)
            print(f"| {label} | {n:,} | {keys} | {runs('per_sec', ',.0f')} → **{m('per_sec'):,.0f}** | "
                  f"{runs('p50_ms', '.2f')} → **{m('p50_ms'):.2f}** | "
                  f"{runs('p99_ms', '.2f')} → **{m('p99_ms'):.2f}** | "
                  f"{runs('cpu_us_per_fetch', '.1f')} → **{m('cpu_us_per_fetch'):.1f}** | "
                  f"{mib(m('rss_after_kib'))} |")
        for key, label in (("p99_ms", "p99"), ("cpu_us_per_fetch", "server CPU per fetch")):
            def ratio(x, y):
                return statistics.median(r[key] for r in x) / statistics.median(r[key] for r in y)
            print(f"\n{label}, {hi:,} / {lo:,}: `mtasts serve` {ratio(results[hi], results[lo]):.3f}; "
                  f"raw, a key per domain {ratio(floor[(hi, False)], floor[(lo, False)]):.3f}; "
                  f"raw, one shared key {ratio(floor[(hi, True)], floor[(lo, False)]):.3f}")


if __name__ == "__main__":
    main()
