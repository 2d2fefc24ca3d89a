#!/usr/bin/env python3
"""The resolver's CPU per request on the I/O path (see BENCHMARKS.md, "Resolver: the protocol
layer's floor").

    floor.py --load BIN [--mtasts BIN] [--reps 5] [--duration 3] [--connections 1,16,100]
             [--threads 1,2] [--phases floor,warm,probe] [--transport tcp|unix] [--raw FILE]

Two kinds of server, each pinned to CPU 1 (`taskset -c 1`) with the load tool on CPU 0:

- `floor`: the real `proto::socketmap` server with a handler that returns one fixed
  `OK secure match=...` reply (`socketmap_load --serve ADDR --reply TEXT`): what the connection
  loop, the codecs and the runtime cost per request, with no policy engine.
- `warm`, `probe`: the real daemon (`mtasts resolver`) started with a cache file of 2,000
  policies (written as the daemon writes it, see bench.py) and `--nameserver 127.0.0.1:9`, so
  nothing is fetched: `warm` asks for the 2,000 cached domains (every answer a cache hit: `OK`
  for enforce, `NOTFOUND` for testing and none with Postfix 3.7), `probe` for Postfix's parent
  probes (`.example-N.com`, answered `NOTFOUND` before the cache).

The load tool is `socketmap_load` (Postfix-like: persistent connections, one request in flight
each). Each (server, threads, C) is run `--reps` times; the tables give medians. "server CPU" is
the server's user+system CPU time over the run (`/proc/PID/stat`) per request answered, "user"
its user-space part (our code, the runtime, libc; the rest is the kernel's socket work); "tool
CPU" is the load tool's own. `--transport unix` serves a unix socket instead of 127.0.0.1 (both
Postfix and postfix-mta-sts-resolver support that). Only loopback is used; no root needed. `--legacy` runs servers built
before the `--threads`/`--reply` options existed (for before/after comparisons).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import addr_spec, make_cache_file, port_open, wait_for  # noqa: E402  (shared with the comparison)

DAEMON_CPU = "1"
CLIENT_CPU = "0"
ADDR = ("127.0.0.1", 18461)
SOCKET = None  # the unix socket path with --transport unix
FIXED = "secure match=mx1.example.com:.example.net servername=hostname"


def load_run(a, pid, keys_file, c, duration, label):
    cmd = ["taskset", "-c", CLIENT_CPU, a.load, "--addr", addr_spec(SOCKET or ADDR), "-c", str(c),
           "--keys", keys_file, "--duration", str(duration), "--requests", "50000000",
           "--pid", str(pid), "--label", label]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    if p.returncode != 0:
        sys.exit(f"load tool failed ({label}): {p.stderr[-2000:]}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    if r["errors"] or r["requests"] == 0:
        sys.exit(f"load run {label}: {r['errors']} errors, {r['requests']} answered: {p.stdout}")
    return r


def start_server(a, what, threads, d):
    log = open(os.path.join(d, f"{what}-{threads}.log"), "w")
    if what == "floor":
        cmd = [a.serve_bin or a.load, "--serve", addr_spec(SOCKET or ADDR), "--duration", "100000"]
        if not a.legacy:
            cmd += ["--reply", FIXED, "--threads", str(threads)]
    else:
        cache = os.path.join(d, "cache.sqlite")
        run_cache = os.path.join(d, f"cache-run-{threads}.sqlite")
        with open(cache, "rb") as src, open(run_cache, "wb") as dst:
            dst.write(src.read())
        cmd = [a.mtasts, "resolver", "--listen", addr_spec(SOCKET or ADDR), "--cache", run_cache,
               "--nameserver", "127.0.0.1:9", "--postfix-version", "3.7", "--log", "text"]
        if not a.legacy:
            cmd += ["--threads", str(threads)]
    proc = subprocess.Popen(["taskset", "-c", DAEMON_CPU] + cmd, stdout=log, stderr=log)
    wait_for(lambda: port_open(SOCKET or ADDR), f"{what} listening", proc)
    return proc, log


def stop_server(proc, log):
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--load", required=True, help="the socketmap_load example binary (the client)")
    ap.add_argument("--serve-bin", help="socketmap_load binary for the floor server (default: --load)")
    ap.add_argument("--mtasts", help="the mtasts binary (for the warm and probe phases)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--duration", type=float, default=3)
    ap.add_argument("--connections", default="1,16,100")
    ap.add_argument("--threads", default="1,2", help="server runtime threads to compare")
    ap.add_argument("--phases", default="floor,warm,probe")
    ap.add_argument("--legacy", action="store_true", help="servers without --threads/--reply")
    ap.add_argument("--transport", choices=["tcp", "unix"], default="tcp")
    ap.add_argument("--label", default="")
    ap.add_argument("--raw", help="write every run's JSON here")
    a = ap.parse_args()
    if os.cpu_count() < 2:
        sys.exit("needs CPUs 0 and 1 (the server and the load tool are pinned apart)")
    if port_open(ADDR):
        sys.exit(f"{ADDR} is already in use")
    phases = a.phases.split(",")
    if any(p != "floor" for p in phases) and not a.mtasts:
        sys.exit("--mtasts is needed for the warm and probe phases")
    conns = [int(c) for c in a.connections.split(",")]
    threads = [1] if a.legacy else [int(t) for t in a.threads.split(",")]
    load_before = os.getloadavg()
    rows, raw = [], []
    global SOCKET
    with tempfile.TemporaryDirectory(prefix="resolver-floor-") as d:
        if a.transport == "unix":
            SOCKET = os.path.join(d, "socketmap.sock")
        domains, _ = make_cache_file(os.path.join(d, "cache.sqlite"), 2000)
        keys = {
            "floor": [f"p{i}.example.com" for i in range(2000)],
            "warm": domains,
            # Postfix's parent probes for the cached domains' parents.
            "probe": sorted({"." + dom.split(".", 1)[1] for dom in domains}),
        }
        files = {}
        for phase, ks in keys.items():
            files[phase] = os.path.join(d, f"{phase}.keys")
            with open(files[phase], "w") as f:
                f.write("\n".join(ks) + "\n")
        for t in threads:
            for server in ["floor", "daemon"]:
                mine = [p for p in phases if (p == "floor") == (server == "floor")]
                if not mine:
                    continue
                proc, log = start_server(a, "floor" if server == "floor" else "daemon", t, d)
                try:
                    if server == "daemon":
                        # Warm-up: every key once (the runtime, the allocator and the caches).
                        load_run(a, proc.pid, files["warm"], 16, 30, "warm-up")
                    for phase in mine:
                        for c in conns:
                            runs = []
                            for rep in range(a.reps):
                                r = load_run(a, proc.pid, files[phase], c, a.duration, f"{phase}/t{t}/c{c}/{rep}")
                                runs.append(r)
                                raw.append(r)
                            med = lambda k: statistics.median(r[k] for r in runs)  # noqa: E731
                            rows.append((phase, t, c, med("rps"), med("p50_us"), med("p99_us"),
                                         med("server_cpu_us_per_req"), med("server_user_us_per_req"),
                                         med("client_cpu_us_per_req")))
                            print(f"{phase} threads={t} C={c}: {rows[-1][3]:.0f} req/s, server "
                                  f"{rows[-1][6]:.1f} µs/req (user {rows[-1][7]:.1f}), tool {rows[-1][8]:.1f} µs/req",
                                  file=sys.stderr)
                finally:
                    stop_server(proc, log)
    load_after = os.getloadavg()
    if a.raw:
        with open(a.raw, "w") as f:
            json.dump(raw, f, indent=1)
    print(f"\n{a.label} {a.transport}: medians of {a.reps} runs of {a.duration:g} s; load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after\n")
    print("| phase | threads | C | req/s | p50 µs | p99 µs | server CPU µs/req | of which user | tool CPU µs/req |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for phase, t, c, rps, p50, p99, cpu, user, tool in rows:
        tt = "main" if a.legacy else t
        print(f"| {phase} | {tt} | {c} | {rps:,.0f} | {p50:.0f} | {p99:.0f} | {cpu:.1f} | {user:.1f} | {tool:.1f} |"
              .replace(",", " "))


if __name__ == "__main__":
    main()
