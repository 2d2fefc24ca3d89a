#!/usr/bin/env python3
"""mtasts serve vs nginx serving the same policy bytes with the same certificate (BENCHMARKS.md,
"serve"). Run through bench/serve/run.sh, which builds the tools and enters a private network and
mount namespace (only loopback; /etc/hosts bound to a file naming mta-sts.d0.test).

Servers on CPU 1 (ours: a current-thread tokio runtime, OURS_THREADS=N for N workers; nginx: one
worker process), load on CPU 0.
Per rep, both servers in alternating order: keep-alive requests/s (wrk) and new TLS connections
per second (serve_bench handshakes: one fresh connection per fetch). Then ours alone: start-up and
memory with 10 and 10,000 domains and the handshake p99 across all names, and 10,000 idle
connections held while fetching. Prints Markdown; every run is bounded in time.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time

OURS_PORT = 8443
OURS_THREADS = int(os.environ.get("OURS_THREADS", "0"))  # 0: a current-thread runtime
NGINX_PORT = 9443
PATH = "/.well-known/mta-sts.txt"

NGINX_CONF = """
user root;
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  client_body_temp_path {dir}/tmp;
  keepalive_requests 1000000;
  keepalive_timeout 30s;
  server {{
    listen 127.0.0.1:{port} ssl http2;
    server_name mta-sts.d0.test;
    ssl_certificate {dir}/cert.pem;
    ssl_certificate_key {dir}/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets off;
    root {dir}/www;
    location = {path} {{
      types {{ }}
      default_type "text/plain; charset=utf-8";
      add_header Cache-Control no-store;
    }}
    location / {{ return 404; }}
  }}
}}
"""


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_ours(tool, dir_, domains):
    p = subprocess.Popen(
        ["taskset", "-c", "1", tool, "serve", "--domains", str(domains),
         "--https", f"127.0.0.1:{OURS_PORT}", "--dir", dir_, "--threads", str(OURS_THREADS)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    stats = json.loads(p.stdout.readline())
    assert p.stdout.readline().strip() == "ready"
    return p, stats


def stop_ours(p):
    p.stdin.close()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()


def start_nginx(dir_):
    os.makedirs(f"{dir_}/www/.well-known", exist_ok=True)
    os.makedirs(f"{dir_}/tmp", exist_ok=True)
    shutil.copy(f"{dir_}/policy.txt", f"{dir_}/www{PATH}")
    conf = f"{dir_}/nginx.conf"
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(dir=dir_, port=NGINX_PORT, path=PATH))
    p = subprocess.Popen(["taskset", "-c", "1", "nginx", "-c", conf, "-e", f"{dir_}/nginx-error.log"])
    for _ in range(100):
        if subprocess.run(["curl", "-sk", "-o", "/dev/null", f"https://mta-sts.d0.test:{NGINX_PORT}{PATH}"]).returncode == 0:
            return p
        time.sleep(0.05)
    raise SystemExit("nginx did not start: " + open(f"{dir_}/nginx-error.log").read())


def check_same_bytes(dir_):
    want = open(f"{dir_}/policy.txt", "rb").read()
    for port in (OURS_PORT, NGINX_PORT):
        out = subprocess.run(["curl", "-sk", "-D", "-", f"https://mta-sts.d0.test:{port}{PATH}"],
                             capture_output=True, timeout=10).stdout
        head, _, body = out.partition(b"\r\n\r\n")
        assert body == want, (port, body)
        assert b"text/plain; charset=utf-8" in head, (port, head)


def to_ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)\b", v)
    if m is None:
        raise SystemExit(f"cannot read a latency from {v!r}")
    n, unit = float(m.group(1)), m.group(2)
    return {"us": n / 1000, "ms": n, "s": n * 1000, "m": n * 60_000}[unit]


def wrk(port, conns, secs):
    out = subprocess.run(
        ["taskset", "-c", "0", "wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--latency",
         f"https://mta-sts.d0.test:{port}{PATH}"],
        capture_output=True, text=True, timeout=secs + 30).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.M)
    if rps is None or p99 is None:
        raise SystemExit("unexpected wrk output:\n" + out)
    rps, p99 = float(rps.group(1)), to_ms(p99.group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    assert non2xx is None, out
    return {"per_sec": rps, "p99_ms": p99, "errors": errors.group(1) if errors else ""}


def handshakes(tool, port, conns, secs, names=1):
    out = subprocess.run(
        ["taskset", "-c", "0", tool, "handshakes", "--addr", f"127.0.0.1:{port}",
         "--names", str(names), "--conns", str(conns), "--secs", str(secs), "--threads", "1"],
        capture_output=True, text=True, timeout=secs + 30).stdout
    return json.loads(out)


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--keepalive-conns", type=int, default=64)
    ap.add_argument("--handshake-conns", type=int, default=32)
    ap.add_argument("--idle", type=int, default=10_000)
    ap.add_argument("--only", choices=["compare", "domains", "idle"], help="run one part")
    a = ap.parse_args()
    dir_ = tempfile.mkdtemp(prefix="serve-bench-")
    os.chmod(dir_, 0o755)
    if a.only in (None, "compare"):
        compare(a, dir_)
    if a.only in (None, "domains"):
        domains(a, dir_)
    if a.only in (None, "idle"):
        idle(a, dir_)
    shutil.rmtree(dir_, ignore_errors=True)


def compare(a, dir_):
    results = {"ours": {"keepalive": [], "handshake": []}, "nginx": {"keepalive": [], "handshake": []}}
    ours, _ = start_ours(a.tool, dir_, 1)
    nginx = start_nginx(dir_)
    try:
        check_same_bytes(dir_)
        for rep in range(a.reps):
            order = [("ours", OURS_PORT), ("nginx", NGINX_PORT)]
            if rep % 2:
                order.reverse()
            for name, port in order:
                results[name]["keepalive"].append(wrk(port, a.keepalive_conns, a.secs))
                results[name]["handshake"].append(handshakes(a.tool, port, a.handshake_conns, a.secs))
    finally:
        stop_ours(ours)
        nginx.terminate()
        nginx.wait(timeout=10)
    print(f"### Keep-alive and new connections (medians of {a.reps} runs of {a.secs} s)\n")
    print("| test | mtasts serve | nginx | ratio |")
    print("|---|---|---|---|")
    for kind, label in (("keepalive", f"keep-alive requests/s (wrk, {a.keepalive_conns} connections)"),
                        ("handshake", f"new TLS connections/s, one fetch each ({a.handshake_conns} at a time)")):
        o, n = results["ours"][kind], results["nginx"][kind]
        print(f"| {label} | {med(o, 'per_sec'):,.0f} | {med(n, 'per_sec'):,.0f} | "
              f"{med(o, 'per_sec') / med(n, 'per_sec'):.2f}x |")
        print(f"| {kind} p99 (ms) | {med(o, 'p99_ms'):.2f} | {med(n, 'p99_ms'):.2f} | |")
    print("\nraw:", json.dumps(results))


def domains(a, dir_):

    print("\n### 10 vs 10,000 hosted domains (ours)\n")
    print("| domains | load (ms) | resident after load (MiB) | handshake fetches/s | p50 (ms) | p99 (ms) |")
    print("|---|---|---|---|---|---|")
    for n in (10, 10_000):
        ours, stats = start_ours(a.tool, dir_, n)
        try:
            runs = [handshakes(a.tool, OURS_PORT, a.handshake_conns, a.secs, names=n) for _ in range(a.reps)]
            rss = rss_kib(ours.pid)
        finally:
            stop_ours(ours)
        print(f"| {n:,} | {stats['load_ms']:.0f} | {rss / 1024:.1f} (before the load test: "
              f"{stats['rss_after_kib'] / 1024:.1f}; the certificates as DER before building: "
              f"{stats['rss_before_kib'] / 1024:.1f}) | {med(runs, 'per_sec'):,.0f} | "
              f"{med(runs, 'p50_ms'):.2f} | {med(runs, 'p99_ms'):.2f} |")


def idle(a, dir_):

    print(f"\n### {a.idle:,} idle connections (ours)\n")
    ours, _ = start_ours(a.tool, dir_, 1)
    try:
        base = rss_kib(ours.pid)
        holder = subprocess.Popen(
            ["taskset", "-c", "0", a.tool, "idle", "--addr", f"127.0.0.1:{OURS_PORT}",
             "--count", str(a.idle), "--hold", str(a.secs), "--threads", "1"],
            stdout=subprocess.PIPE, text=True)
        opened = json.loads(holder.stdout.readline())
        assert holder.stdout.readline().strip() == "holding"
        time.sleep(1)
        held_rss = rss_kib(ours.pid)
        fetches = json.loads(holder.stdout.readline())
        still = json.loads(holder.stdout.readline())
        holder.wait(timeout=30)
    finally:
        stop_ours(ours)
    print(f"- opened {opened['opened']:,} ({opened['failed']} failed) in {opened['open_s']:.2f} s; "
          f"server resident {base / 1024:.1f} MiB before, {held_rss / 1024:.1f} MiB holding them "
          f"({(held_rss - base) * 1024 / max(opened['opened'], 1):,.0f} bytes each)")
    print(f"- fetches on fresh connections meanwhile: {fetches['ok']} ok, {fetches['errors']} failed, "
          f"p50 {fetches['p50_ms']:.2f} ms, p99 {fetches['p99_ms']:.2f} ms; "
          f"{still['still_open']:,} idle connections still open at the end")


if __name__ == "__main__":
    main()
