//! `mtasts check` end to end: the real binary against worlds of the test internet, with text and
//! JSON snapshots of a clean, a broken and a mixed domain.

use assert_cmd::Command;
use mtasts_testnet::https::HttpResponse;
use mtasts_testnet::pki::Defect;
use mtasts_testnet::smtp::Behaviour;
use mtasts_testnet::tlsa::{Matching, Selector, Usage, tlsa_data};
use mtasts_testnet::world::{DOMAIN, Dnssec, World};

const POLICY: &str = "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 1209600\n";

async fn clean(net: u8) -> World {
    let mut w = World::with_net(net).await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=20240101T000000\"\n_smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@reports.example.net\"\nmta-sts 300 IN AAAA ::1");
    w.policy_host(Defect::Valid, HttpResponse::policy(POLICY))
        .await;
    w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    w
}

async fn broken(net: u8) -> World {
    let mut w = World::with_net(net).await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=2024-01-01\"");
    w.policy_host(Defect::Valid, HttpResponse::status(404))
        .await;
    w.mx("mx1", 10, 1, Behaviour::NoStartTls).await;
    w
}

async fn mixed(net: u8) -> World {
    let mut w = World::with_net(net).await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"\n_smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@example.test\"\nmta-sts 300 IN AAAA ::1");
    w.policy_host(Defect::Valid, HttpResponse::policy("version: STSv1\nmode: testing\nmx: mx1.example.test\nmx: mx2.example.test\nmax_age: 86400\n")).await;
    w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    w.mx_with_cert("mx2", 20, 2, Defect::Expired).await;
    w.mx_with_cert("mx3", 30, 3, Defect::Valid).await;
    w
}

/// Runs `mtasts check` against `w` (off the async runtime, which serves the world).
async fn run(w: &World, extra: &[&str]) -> (i32, String, String) {
    run_with_stdin(w, extra, "").await
}

/// [`run`] with `stdin` as standard input.
async fn run_with_stdin(w: &World, extra: &[&str], stdin: &str) -> (i32, String, String) {
    let stdin = stdin.to_owned();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("root.pem");
    std::fs::write(&pem, w.pki.root_pem()).unwrap();
    let anchor = dir.path().join("root.key");
    std::fs::write(&anchor, w.trust_anchor()).unwrap();
    let mut args: Vec<String> = vec![
        "check".into(),
        DOMAIN.into(),
        "--nameserver".into(),
        w.dns.addr().to_string(),
        "--ca-file".into(),
        pem.display().to_string(),
        "--smtp-port".into(),
        w.smtp_port.to_string(),
        "--https-port".into(),
        w.https_port.to_string(),
        "--timeout".into(),
        "2".into(),
    ];
    if !extra.contains(&"--trust-anchor") {
        args.extend(["--trust-anchor".into(), anchor.display().to_string()]);
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let out = tokio::task::spawn_blocking(move || {
        Command::cargo_bin("mtasts")
            .unwrap()
            .env("NO_COLOR", "1")
            .args(&args)
            .write_stdin(stdin)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    drop(dir);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The JSON `mtasts check` printed reads into the typed reports and writes out again byte for
/// byte (the schema round-trips; stored history can be read back).
fn assert_json_reads_back(json: &str) {
    let reports: Vec<mtasts_check::DomainReport> = serde_json::from_str(json).unwrap();
    let again = serde_json::to_string_pretty(&reports).unwrap() + "\n";
    assert_eq!(again, json);
}

/// Removes what changes from run to run: days left and dates of generated certificates.
fn stable_text(s: &str) -> String {
    let re_days = |s: &str| -> String {
        s.split('\n')
            .map(|line| {
                for phrase in ["certificate expires in ", "certificate expired "] {
                    if let Some(i) = line.find(phrase) {
                        let rest = &line[i + phrase.len()..];
                        let end = rest.find(" day").unwrap_or(0);
                        let rest = rest[end..]
                            .replacen(" days", " day", 1)
                            .replacen(" day", " day(s)", 1);
                        return format!("{}{phrase}[N]{rest}", &line[..i]);
                    }
                }
                line.to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let s = re_days(s);
    s.split('\n')
        .map(|l| {
            if let Some(i) = l.find("expires 20") {
                format!("{}expires [DATE]", &l[..i])
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// [`stable_text`] on every string of a JSON report (the `observed` texts carry dates).
fn stable_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.contains("expires 20") => *s = stable_text(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(stable_json),
        serde_json::Value::Object(o) => o.values_mut().for_each(stable_json),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_domain_text_and_json() {
    let w = clean(41).await;
    let (code, text, err) = run(&w, &[]).await;
    assert_eq!(code, 0, "{text}\n{err}");
    insta::assert_snapshot!("check_clean_text", stable_text(&text));
    let (code, json, _) = run(&w, &["--format", "json"]).await;
    assert_eq!(code, 0);
    assert_json_reads_back(&json);
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    stable_json(&mut v);
    insta::assert_json_snapshot!("check_clean_json", v, {
        "[].**.not_after" => "[DATE]",
        "[].**.days_left" => "[N]",
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_domain_text_and_json() {
    let w = broken(42).await;
    let (code, text, _) = run(&w, &[]).await;
    assert_eq!(code, 1);
    insta::assert_snapshot!("check_broken_text", stable_text(&text));
    let (_, json, _) = run(&w, &["--format", "json"]).await;
    assert_json_reads_back(&json);
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    stable_json(&mut v);
    insta::assert_json_snapshot!("check_broken_json", v, {
        "[].**.not_after" => "[DATE]",
        "[].**.days_left" => "[N]",
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_domain_text_and_json_and_fail_on() {
    let w = mixed(43).await;
    let (code, text, _) = run(&w, &[]).await;
    assert_eq!(code, 1, "an expired MX certificate is an error");
    insta::assert_snapshot!("check_mixed_text", stable_text(&text));
    let (_, json, _) = run(&w, &["--format", "json"]).await;
    assert_json_reads_back(&json);
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    stable_json(&mut v);
    insta::assert_json_snapshot!("check_mixed_json", v, {
        "[].**.not_after" => "[DATE]",
        "[].**.days_left" => "[N]",
    });
    let (code, _, _) = run(&w, &["--fail-on", "never"]).await;
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_on_warning_and_no_smtp() {
    let mut w = World::with_net(44).await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"\nmta-sts 300 IN AAAA ::1");
    w.policy_host(Defect::Valid, HttpResponse::policy(POLICY))
        .await;
    w.mx("mx1", 10, 1, Behaviour::NoStartTls).await;
    // Only a warning (no TLS-RPT record) once the probe is skipped.
    let (code, text, _) = run(&w, &["--no-smtp"]).await;
    assert_eq!(code, 0, "{text}");
    let (code, _, _) = run(&w, &["--no-smtp", "--fail-on", "warning"]).await;
    assert_eq!(code, 1);
    // The multi-threaded runtime (the default for long lists) gives the same answer.
    let (code, threaded, _) = run(&w, &["--no-smtp", "--threads", "2"]).await;
    assert_eq!((code, threaded), (0, text));
}

#[test]
fn usage_errors() {
    let out = Command::cargo_bin("mtasts")
        .unwrap()
        .args(["check", "example.test", "--nameserver", "not-an-ip"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--nameserver not-an-ip"));
    let out = Command::cargo_bin("mtasts")
        .unwrap()
        .args(["check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::cargo_bin("mtasts")
        .unwrap()
        .args(["check", "example.test", "--threads", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--threads 0 is a usage error");
}

/// `--timeout 0` (or a negative, infinite or over-long budget) is refused as a usage error
/// with the real range, before anything is looked up.
#[test]
fn timeout_out_of_range_is_a_usage_error() {
    for bad in ["0", "-1", "601", "inf", "NaN", "soon"] {
        let out = Command::cargo_bin("mtasts")
            .unwrap()
            .args(["check", "example.test", &format!("--timeout={bad}")])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--timeout {bad}: {err}");
        assert!(
            err.contains("more than 0") && err.contains("at most 600"),
            "--timeout {bad}: {err}"
        );
    }
}

/// M43: example.test enforces its policy on mx1.example.test, and shared.test uses the same MX
/// host with no policy: two treatments meet on one host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_names_mx_hosts_shared_by_disagreeing_policies() {
    let w = clean(46).await;
    w.dns
        .set_zone("shared.test.", "@ 300 IN MX 10 mx1.example.test.")
        .unwrap();
    let (_, out, err) = run(&w, &["shared.test", "--summary"]).await;
    assert!(
        out.contains(
            "MX hosts shared by domains whose policies disagree (M43): 1 of 1 shared host(s)"
        ),
        "{out}{err}"
    );
    assert!(
        out.contains("mx1.example.test (2 domains): enforce 1, enforce but not covered 0, testing 0, none or no policy 1; e.g. "),
        "{out}"
    );
    // One domain alone shares nothing.
    let (_, out, _) = run(&w, &["--summary"]).await;
    assert!(out.contains("(M43): 0 of 0 shared host(s)"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_input_jsonl_csv_and_summary() {
    let w = clean(45).await;
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("domains.txt");
    // example.test is served; the others are refused by the test DNS server (untested).
    std::fs::write(
        &list,
        "# a list\nexample.test\n\nother.test, with a comment\nthird.test\n",
    )
    .unwrap();
    let input = list.display().to_string();
    let (code, jsonl, err) = run(
        &w,
        &[
            "--input",
            &input,
            "--format",
            "jsonl",
            "--summary",
            "--concurrency",
            "2",
        ],
    )
    .await;
    assert_eq!(
        code, 4,
        "two domains could not be tested: incomplete. {err}"
    );
    for line in jsonl.lines() {
        let r: mtasts_check::DomainReport = serde_json::from_str(line).unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), line, "jsonl reads back");
    }
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // example.test twice: once from the argument, once from the list.
    assert_eq!(lines.len(), 4, "{jsonl}");
    let mut domains: Vec<&str> = lines
        .iter()
        .map(|v| v["domain"].as_str().unwrap())
        .collect();
    domains.sort_unstable();
    assert_eq!(
        domains,
        ["example.test", "example.test", "other.test", "third.test"]
    );
    let other = lines.iter().find(|v| v["domain"] == "other.test").unwrap();
    assert_eq!(
        other["verdict"], "incomplete",
        "a refused lookup is untested, not a failure"
    );
    assert!(err.contains("summary of 4 domain(s)"), "{err}");
    assert!(
        !err.contains("ETA") && !err.contains("domains checked"),
        "no progress bar when standard error is not a terminal: {err}"
    );
    assert!(
        err.contains("MTA-STS record               2   50.0 %"),
        "{err}"
    );

    // The same list on standard input, read by the input thread.
    let (code, jsonl, err) = run_with_stdin(
        &w,
        &["--input", "-", "--format", "jsonl"],
        &std::fs::read_to_string(&list).unwrap(),
    )
    .await;
    assert_eq!((code, jsonl.lines().count()), (4, 4), "{err}");

    let (_, csv, _) = run(&w, &["--input", &input, "--format", "csv"]).await;
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 5, "header and 4 rows: {csv}");
    assert!(rows[0].starts_with("domain,verdict,sts_id,policy_mode"));
    assert!(rows.iter().any(|r| r.starts_with("example.test,pass,20240101T000000,enforce,,1209600,mx1.example.test,,,mailto:tlsrpt@reports.example.net,0,0,,no")), "{csv}");
    assert!(rows[0].ends_with(",finding_ids,dane"), "{csv}");
    let other = rows.iter().find(|r| r.starts_with("other.test,")).unwrap();
    assert!(
        other.ends_with(",untested"),
        "the DANE lookups were refused: {other}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dane_in_text_json_and_summary() {
    let mut w = World::with_net(46).await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=20240101T000000\"\n_smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@reports.example.net\"\nmta-sts 300 IN AAAA ::1");
    w.policy_host(Defect::Valid, HttpResponse::policy(POLICY))
        .await;
    let chain = w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    let ee = tlsa_data(&chain[0], Usage::DaneEe, Selector::Spki, Matching::Sha256).unwrap();
    w.zone(&format!("_25._tcp.mx1 300 IN TLSA {ee}"));
    w.dnssec(Dnssec::Signed);
    let (code, text, err) = run(&w, &["--summary"]).await;
    assert_eq!(code, 0, "{text}\n{err}");
    assert!(
        text.contains("        DANE _25._tcp.mx1.example.test: 1 TLSA record, DNSSEC secure, usable; 1/1 address(es) matched"),
        "{text}"
    );
    assert!(text.contains("[dane.tlsa.no-rollover]"), "{text}");
    assert!(
        text.contains("  DANE (usable TLSA)           1  100.0 %"),
        "{text}"
    );
    let (_, json, err) = run(&w, &["--format", "json", "--summary"]).await;
    assert_json_reads_back(&json);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        err.contains("  DANE (usable TLSA)           1  100.0 %"),
        "the summary goes to standard error, so standard output stays JSON: {err}"
    );
    let dane = &v[0]["dane"];
    assert_eq!(dane["mx_dnssec"], "secure");
    assert_eq!(dane["adopted"], true);
    assert_eq!(dane["hosts"][0]["tlsa"][0], ee.as_str());
    assert_eq!(dane["hosts"][0]["addresses"][0]["matched"], true);
    let (_, csv, _) = run(&w, &["--format", "csv"]).await;
    let row = csv.lines().nth(1).unwrap();
    assert!(row.ends_with(",adopted"), "{csv}");
    let (_, csv, _) = run(&w, &["--format", "csv", "--no-dane"]).await;
    let row = csv.lines().nth(1).unwrap();
    assert!(row.ends_with(','), "not checked: empty: {csv}");
    let (_, json, _) = run(&w, &["--format", "json", "--no-dane"]).await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v[0]["dane"].is_null(), "{json}");
    // Without the test root's key, the IANA root keys cannot validate the test zones: bogus.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "not a key").unwrap();
    let (code, _, err) = run(&w, &["--trust-anchor", &bad.display().to_string()]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--trust-anchor"), "{err}");
}

#[test]
fn jsonl_and_csv_are_only_for_check() {
    let out = Command::cargo_bin("mtasts")
        .unwrap()
        .args(["--format", "csv", "policy", "lint"])
        .write_stdin("x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only for `mtasts check`"));
}

/// Must-show: on a machine whose DNS answers NXDOMAIN for every name, `check example.com` says
/// only that the domain does not exist, exits 1, and takes well under a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_everywhere_prints_only_that_the_domain_does_not_exist() {
    let dns = mtasts_testnet::dns::DnsServer::start("127.0.0.1".parse().unwrap())
        .await
        .unwrap();
    dns.set_outside(Some(mtasts_testnet::dns::Fault::NxDomain));
    let addr = dns.addr().to_string();
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        Command::cargo_bin("mtasts")
            .unwrap()
            .env("NO_COLOR", "1")
            .args(["check", "example.com", "--nameserver", &addr])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(took < std::time::Duration::from_secs(1), "{took:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("example.com: FAIL"), "{text}");
    assert!(text.contains("[domain.nxdomain]"), "{text}");
    assert!(
        !text.contains("MTA-STS record") && !text.contains("DANE"),
        "{text}"
    );
    assert_eq!(text.matches(" [").count(), 1, "one finding only: {text}");
}

/// A check with an untested step and no error exits 4 (incomplete), not 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_check_exits_4() {
    let mut w = World::with_net(47).await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"\n_smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:r@reports.example.net\"\nmta-sts 300 IN AAAA ::1");
    w.policy_host(Defect::Valid, HttpResponse::policy(POLICY))
        .await;
    w.mx("mx1", 10, 1, Behaviour::Banner("421 4.7.0 try again later"))
        .await;
    let (code, text, _) = run(&w, &[]).await;
    assert_eq!(code, 4, "{text}");
    assert!(text.contains("INCOMPLETE"), "{text}");
    let (code, _, _) = run(&w, &["--fail-on", "never"]).await;
    assert_eq!(code, 0);
    let (code, _, _) = run(&w, &["--fail-on", "warning"]).await;
    assert_eq!(code, 1);
}
