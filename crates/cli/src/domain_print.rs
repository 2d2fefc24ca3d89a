//! What `mtasts domain ...` prints: the JSON the operation answered (`--format json`, the admin
//! API's bodies, docs/serve.md), or text made from it. Every foreign string (host names from
//! DNS, fetch errors, reasons) is escaped.

use crate::output::Format;
use anyhow::Result;
use mtasts_core::text::escape_lines;
use mtasts_server::domains::DomainView;
use mtasts_server::ops::Failure;
use serde_json::Value;
use std::fmt::Write as _;
use std::io::Write as _;

/// Prints an operation's answer.
pub(crate) fn print(action: &str, out: &Value, format: Format) -> Result<()> {
    if format == Format::Json {
        return crate::output::print_json(out);
    }
    let mut text = String::new();
    match action {
        "list" => list(&mut text, out),
        "show" => view(&mut text, out),
        "check" => check(&mut text, out),
        "cert" => {
            let _ = writeln!(
                text,
                "installed a certificate for {} ({} in the chain), expires {}",
                s(&out["name"]),
                out["chain_len"],
                s(&out["not_after"])
            );
        }
        _ => op(&mut text, out),
    }
    print!("{}", escape_lines(&text));
    Ok(())
}

/// The exit status of a successful operation: `check` says 1 for drift, 4 when some kind could
/// not be looked at; everything else 0.
pub(crate) fn exit_code(action: &str, out: &Value) -> u8 {
    if action != "check" {
        return crate::EXIT_OK;
    }
    let statuses: Vec<&str> = out["kinds"]
        .as_array()
        .map(|k| k.iter().filter_map(|k| k["status"].as_str()).collect())
        .unwrap_or_default();
    if statuses.contains(&"drift") {
        crate::EXIT_FINDINGS
    } else if statuses.contains(&"unknown") {
        crate::EXIT_INCOMPLETE
    } else {
        crate::EXIT_OK
    }
}

/// Prints a refusal or failure; 1 when the rules refused, 3 when the store or server could not
/// be reached.
pub(crate) fn failure(f: &Failure, format: Format) -> Result<u8> {
    if format == Format::Json {
        crate::output::print_json(&serde_json::json!({ "error": f }))?;
    }
    let mut text = format!("mtasts: {} ({})\n", f.message, f.code);
    if let Some(d) = &f.details {
        for m in d["messages"].as_array().into_iter().flatten() {
            let _ = writeln!(text, "  - {}", s(m));
        }
        for h in d["hosts"].as_array().into_iter().flatten() {
            let _ = writeln!(text, "  - {} (confirm with --confirm HOST, or --yes)", s(h));
        }
        if let Some(at) = d["safe_at"].as_str() {
            let _ = writeln!(text, "  removal is safe at {at}");
        }
    }
    eprint!("{}", escape_lines(&text));
    Ok(if f.is_refusal() {
        crate::EXIT_FINDINGS
    } else {
        crate::EXIT_UNREADABLE
    })
}

/// Asks whether an unexplained MX host should be covered.
pub(crate) fn confirm(host: &str) -> Result<bool> {
    eprint!(
        "{} is not a known provider's MX host. Cover it in the policy (it must offer STARTTLS with a valid certificate)? [y/N] ",
        escape_lines(host)
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn view(text: &mut String, v: &Value) {
    match serde_json::from_value::<DomainView>(v.clone()) {
        Ok(d) => {
            let _ = write!(text, "{d}");
        }
        Err(_) => {
            let _ = writeln!(text, "{v:#}");
        }
    }
}

fn op(text: &mut String, out: &Value) {
    for m in out["messages"].as_array().into_iter().flatten() {
        let _ = writeln!(text, "note: {}", s(m));
    }
    for l in out["lint"].as_array().into_iter().flatten() {
        let _ = writeln!(text, "lint: {}", s(l));
    }
    for h in out["live_check"]["hosts"].as_array().into_iter().flatten() {
        for a in h["addresses"].as_array().into_iter().flatten() {
            let _ = writeln!(
                text,
                "checked: {} {} {}",
                s(&h["host"]),
                s(&a["address"]),
                s(&a["probe"]["result"])
            );
        }
    }
    match &out["domain"] {
        Value::Null => {
            let _ = writeln!(text, "removed");
        }
        d => view(text, d),
    }
}

fn list(text: &mut String, out: &Value) {
    let rows = out["domains"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        let _ = writeln!(text, "no hosted domains");
        return;
    }
    let mut table = vec![[
        "DOMAIN".to_owned(),
        "STATE".into(),
        "MODE".into(),
        "MAX_AGE".into(),
        "ID".into(),
        "CERTIFICATE".into(),
    ]];
    for d in &rows {
        let cert = match &d["certificate"] {
            Value::Null => "none".to_owned(),
            c => format!("expires {}", s(&c["not_after"])),
        };
        table.push([
            s(&d["domain"]),
            s(&d["state"]),
            s(&d["mode"]),
            s(&d["max_age"]),
            s(&d["policy_id"]),
            cert,
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(text, "{}", line.join("  ").trim_end());
    }
}

fn check(text: &mut String, out: &Value) {
    let _ = writeln!(
        text,
        "{} checked at {}",
        s(&out["domain"]),
        s(&out["checked_at"])
    );
    for k in out["kinds"].as_array().into_iter().flatten() {
        match k["status"].as_str() {
            Some("drift") => {
                let _ = writeln!(text, "DRIFT   {}: {}", s(&k["kind"]), s(&k["detail"]));
                let _ = writeln!(text, "        fix: {}", s(&k["fix"]));
            }
            Some("unknown") => {
                let _ = writeln!(text, "UNKNOWN {}: {}", s(&k["kind"]), s(&k["reason"]));
            }
            _ => {
                let _ = writeln!(text, "fine    {}", s(&k["kind"]));
            }
        }
    }
}
