#!/usr/bin/env python3
"""Fills an SQLite store (made by `mtasts store migrate`) with a year of synthetic TLS-RPT reports.

    python3 bench/report-summary/gen.py STORE.db [--domains 10000] [--days 365] [--reporters 2]

Every domain gets, every day, one report from each reporter (organization `Reporter N`):
sessions in the hundreds, and on one report in twenty a failure detail (a result type, an MX,
a sending IP). The rows are what `Store::insert_report` writes (reports, report_policies,
report_failures), with a small raw JSON and normalised text, so the table and index sizes are
those of real use. Deterministic (seeded). Prints the counts and the time taken.
"""
import argparse
import random
import sqlite3
import time

RESULTS = ["certificate-expired", "starttls-not-supported", "validation-failure",
           "sts-policy-fetch-error", "certificate-host-mismatch"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("--domains", type=int, default=10000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--reporters", type=int, default=2)
    a = ap.parse_args()
    rnd = random.Random(1)
    db = sqlite3.connect(a.db)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    start = time.time()
    first_day = 20454 - a.days  # days since 1970: the year before 2026-01-01
    rid = 0
    reports, policies, failures = [], [], []
    raw = b'{"organization-name":"x","report-id":"y"}'

    def flush():
        db.executemany(
            "INSERT INTO reports (id, organization, report_id, policy_domain, contact, begin_at, "
            "end_at, success, failure, received_at, via, source, raw_json, raw_size, normalised) "
            "VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, 'file', NULL, ?, ?, '{}')", reports)
        db.executemany(
            "INSERT INTO report_policies (report, idx, policy_domain, policy_type, day, success, "
            "failure) VALUES (?, 0, ?, 'sts', ?, ?, ?)", policies)
        db.executemany(
            "INSERT INTO report_failures (report, idx, policy_domain, day, result_type, "
            "receiving_mx, sending_ip, receiving_ip, sessions) VALUES (?, 0, ?, ?, ?, ?, ?, '', ?)",
            failures)
        reports.clear(); policies.clear(); failures.clear()

    for day in range(first_day, first_day + a.days):
        begin = day * 86400
        for d in range(a.domains):
            domain = f"d{d}.example"
            for r in range(a.reporters):
                rid += 1
                ok = rnd.randint(50, 900)
                bad = rnd.randint(1, 40) if rnd.random() < 0.05 else 0
                reports.append((rid, f"Reporter {r}", f"{day}-{d}-{r}", domain, begin,
                                begin + 86399, ok, bad, begin + 90000, len(raw), raw))
                policies.append((rid, domain, day, ok, bad))
                if bad:
                    failures.append((rid, domain, day, rnd.choice(RESULTS), f"mx{rnd.randint(1, 2)}.{domain}",
                                     f"192.0.2.{rnd.randint(1, 254)}", bad))
        if len(reports) >= 200000:
            flush()
            db.commit()
    flush()
    db.commit()
    n_f = db.execute("SELECT count(*) FROM report_failures").fetchone()[0]
    print(f"{rid} reports, {rid} policy rows, {n_f} failure rows in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
