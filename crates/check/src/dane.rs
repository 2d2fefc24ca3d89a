//! DANE (RFC 7672; catalogue D01–D04 in docs/requirements.md): the TLSA RRset of every MX
//! host, its DNSSEC proof, and whether each probed address serves a chain it authenticates.
//!
//! The lookups ([`observe`]) need only the MX host names, so they run next to the MX probes:
//! a validated MX lookup, then every host's `_25._tcp` TLSA RRset at once. Matching
//! ([`apply`]) waits for the chains the probes captured.

use crate::Env;
use crate::model::{
    DaneAddressReport, DaneHostReport, DaneHostState, DaneReport, DnssecState, Finding,
};
use crate::mx::Served;
use futures_util::future::join_all;
use mtasts_core::Severity;
use mtasts_net::dane::{
    ChainMatch, DaneState, HostLookups, SMTP_PORT, match_chain, record_for, usability,
};
use mtasts_net::dns::{DnsError, Lookup, Mx, Proof, Tlsa};

/// What the DANE lookups found, before any chain is matched.
#[derive(Debug)]
pub(crate) struct Observed {
    domain: String,
    mx: Result<Proof, DnsError>,
    /// Why the MX answer could not be validated, when it is indeterminate.
    why: Option<String>,
    hosts: Vec<(String, HostLookups)>,
}

/// The validated MX lookup of `domain`, then the TLSA RRsets of its hosts, all at once. The
/// TLSA lookups wait for the MX proof on purpose: when it is insecure (most domains), a TLSA name
/// below the domain is known insecure without another chain of queries (`Resolver` remembers
/// insecure zones), and the MX probes, which the matching waits for anyway, take longer than the
/// one extra round trip. `None` when there is nothing DANE could apply to (no such domain, null
/// MX).
///
/// `plain` is the (unvalidated) MX answer the MX stage uses: when it says the domain does not
/// exist or has a null MX, no DANE lookup is made at all.
pub(crate) async fn observe(
    domain: &str,
    env: &Env,
    plain: impl Future<Output = Result<Lookup<Mx>, DnsError>>,
) -> Option<Observed> {
    if let Ok(answer) = plain.await {
        hosts_of(domain, &answer)?;
    }
    let r = &env.resolver;
    let validated = r.mx_validated(domain).await;
    let why = validated.as_ref().ok().and_then(|v| v.why.clone());
    let (mx, hosts) = match validated {
        Err(e) => (Err(e), Vec::new()),
        // A bogus or indeterminate answer carries no records: it is not "no MX" (which would
        // make the domain its own MX host), it is an MX RRset nobody can use.
        Ok(v)
            if matches!(v.proof, Proof::Bogus | Proof::Indeterminate)
                && v.lookup.records().is_empty() =>
        {
            (Ok(v.proof), Vec::new())
        }
        Ok(v) => (Ok(v.proof), hosts_of(domain, &v.lookup)?),
    };
    let mx_secure = matches!(mx, Ok(Proof::Secure));
    let hosts = join_all(hosts.into_iter().map(|host| async move {
        let lookups = HostLookups::run(r, &host, SMTP_PORT, mx_secure).await;
        (host, lookups)
    }))
    .await;
    Some(Observed {
        domain: domain.to_owned(),
        mx,
        why,
        hosts,
    })
}

/// The hosts an MX answer sends mail to; `None` for no domain or a null MX.
fn hosts_of(domain: &str, answer: &Lookup<Mx>) -> Option<Vec<String>> {
    let hosts: Vec<String> = match answer {
        Lookup::NxDomain => return None,
        Lookup::NoData => vec![domain.to_owned()],
        Lookup::Records { records, .. } => records.iter().map(|m| m.host.clone()).collect(),
    };
    if hosts.iter().any(|h| h == ".") {
        return None;
    }
    Some(hosts)
}

/// Matches the served chains and turns everything into the report and findings D01–D04.
pub(crate) fn apply(
    obs: Option<Observed>,
    served: &[Served],
    findings: &mut Vec<Finding>,
) -> Option<DaneReport> {
    let obs = obs?;
    let (mx_proof, error) = match &obs.mx {
        Ok(p) => (Some(*p), None),
        Err(e) => {
            findings.push(Finding::untested(
                "dane.untested",
                format!(
                    "could not make the DNSSEC-validated MX lookup of {}: {e}",
                    obs.domain
                ),
                "check that the domain's name servers answer, then run again",
            ));
            (None, Some(e.to_string()))
        }
    };
    match mx_proof {
        Some(Proof::Bogus) if obs.hosts.is_empty() => findings.push(Finding::new(
            "dane.dnssec.bogus",
            Severity::Error,
            format!("DNSSEC validation of the MX records of {} fails: validating senders cannot use them, so they cannot deliver mail to {}", obs.domain, obs.domain),
            Some(format!("MX {}: bogus", obs.domain)),
            format!("re-sign the zone of {} and check that the DS record at its parent matches its DNSKEY", obs.domain),
        )),
        Some(Proof::Indeterminate) if obs.hosts.is_empty() => findings.push(Finding::untested(
            "dane.untested",
            format!(
                "could not validate the MX records of {}: {}",
                obs.domain,
                obs.why.as_deref().unwrap_or("the DNSSEC chain of trust could not be fetched")
            ),
            "check that the resolver passes DNSSEC records (DO bit, RRSIG, DNSKEY, DS) and that the name servers answer, then run again",
        )),
        _ => {}
    }
    let mx_secure = mx_proof == Some(Proof::Secure);
    let mut hosts = Vec::with_capacity(obs.hosts.len());
    for (host, lookups) in obs.hosts {
        let served: Vec<&Served> = served.iter().filter(|s| s.host == host).collect();
        hosts.push(one_host(
            &obs.domain,
            host,
            lookups,
            mx_secure,
            &served,
            findings,
        ));
    }
    Some(DaneReport {
        mx_dnssec: mx_proof.map(DnssecState::from),
        adopted: hosts.iter().any(|h| h.usable),
        hosts,
        error,
    })
}

fn one_host(
    domain: &str,
    host: String,
    lookups: HostLookups,
    mx_secure: bool,
    served: &[&Served],
    findings: &mut Vec<Finding>,
) -> DaneHostReport {
    let tlsa_name = format!("_{SMTP_PORT}._tcp.{}", lookups.base);
    let proof = lookups.tlsa.as_ref().ok().map(|v| v.proof);
    let address_proof = lookups
        .addresses
        .as_ref()
        .and_then(|a| a.as_ref().ok().map(|a| a.proof));
    let records: Vec<Tlsa> = lookups
        .tlsa
        .as_ref()
        .map(|v| v.lookup.records().to_vec())
        .unwrap_or_default();
    // Which lookup decided the state, for the finding's wording. A failed or bogus TLSA lookup
    // decides before the addresses are looked at (`HostLookups::state`), so with secure TLSA
    // records a failed, bogus or insecure state comes from the address records.
    let tlsa_secure = proof == Some(Proof::Secure);
    let state = lookups.state(mx_secure);
    // What to publish instead, computed from what the host serves.
    let leaf = served.iter().find_map(|s| s.chain.first());
    let suggest = |usage: u8, cert: Option<&rustls_pki_types::CertificateDer<'static>>| {
        cert.and_then(|c| record_for(c, usage, 1, 1))
            .map(|t| format!("`{tlsa_name}. IN TLSA {t}`"))
    };
    let ee_fix = suggest(3, leaf).unwrap_or_else(|| {
        format!("`{tlsa_name}. IN TLSA 3 1 1 <SHA-256 of the server's public key>`")
    });
    let mut report = DaneHostReport {
        host: host.clone(),
        tlsa_name: tlsa_name.clone(),
        state: DaneHostState::NoTlsa,
        dnssec: proof.map(DnssecState::from),
        address_dnssec: address_proof.map(DnssecState::from),
        tlsa: records.iter().map(ToString::to_string).collect(),
        usable: false,
        error: None,
        addresses: Vec::new(),
    };
    let listed = report.tlsa.join("\n");
    match &state {
        DaneState::LookupFailed(e) => {
            report.state = DaneHostState::LookupFailed;
            report.error = Some(e.to_string());
            let what = if proof.is_some() {
                "address records" // the TLSA lookup answered
            } else {
                "TLSA records"
            };
            findings.push(Finding::untested(
                "dane.untested",
                format!("could not look up the {what} of MX {host}: {e}"),
                "check that the name servers of the MX host answer, then run again",
            ));
            return report;
        }
        DaneState::NoTlsa => return report,
        DaneState::Indeterminate(why) => {
            // Could not validate: not a broken zone (no advice to remove the DS record), and
            // not a pass either.
            report.state = DaneHostState::Indeterminate;
            report.error = Some(why.clone());
            findings.push(Finding::untested(
                "dane.untested",
                format!("could not validate the DNSSEC records of MX {host}: {why}"),
                "check that the resolver passes DNSSEC records (DO bit, RRSIG, DNSKEY, DS) and that the name servers answer, then run again",
            ));
            return report;
        }
        DaneState::Bogus if tlsa_secure => {
            // The TLSA records validate; the host's address records do not.
            report.state = DaneHostState::Bogus;
            findings.push(Finding::new(
                "dane.dnssec.bogus",
                Severity::Error,
                format!("DNSSEC validation of the address records of MX {host} fails ({}): DANE senders will not deliver to it", address_proof.map_or("bogus", Proof::as_str)),
                Some(format!("A/AAAA {host}: {}", address_proof.map_or("bogus", Proof::as_str))),
                format!("re-sign the zone that serves the A and AAAA records of {host} (the target of its CNAME, if it has one) and check its DS record at the parent"),
            ));
            return report;
        }
        DaneState::Bogus => {
            report.state = DaneHostState::Bogus;
            findings.push(Finding::new(
                "dane.dnssec.bogus",
                Severity::Error,
                format!("DNSSEC validation of the TLSA records of MX {host} fails ({}): DANE senders will not deliver to it", proof.map_or("bogus", Proof::as_str)),
                Some(format!("{tlsa_name}: {}", if listed.is_empty() { "no records usable" } else { &listed })),
                format!("re-sign the zone of {host} and check that the DS record at its parent matches its DNSKEY; until then, remove the TLSA records and the DS record"),
            ));
            return report;
        }
        DaneState::Insecure(_) => {
            report.state = DaneHostState::Insecure;
            // Signed TLSA records behind an MX RRset that is not secure (a DANE provider's MX for
            // an unsigned customer domain) are a missed chance, not a broken setup: a note.
            // Signed TLSA records of a host whose own addresses are unsigned (a CNAME into an
            // unsigned zone) are a DANE setup that does not work: a warning.
            let (severity, message, fix) = if tlsa_secure && mx_secure {
                (
                    Severity::Warning,
                    format!(
                        "MX {host} has DNSSEC-signed TLSA records, but its address records are not DNSSEC-signed: senders ignore the TLSA records (RFC 7672 §2.2.2)"
                    ),
                    format!(
                        "serve the A and AAAA records of {host} from a DNSSEC-signed zone (if {host} is a CNAME, its target's zone), or name a host whose addresses are signed in the MX records"
                    ),
                )
            } else if tlsa_secure {
                (
                    Severity::Info,
                    format!(
                        "MX {host} has TLSA records, but the MX records of {domain} are not DNSSEC-signed: senders ignore them (RFC 7672 §2.2.1)"
                    ),
                    format!(
                        "sign the zone of {domain} with DNSSEC and publish its DS record at the parent"
                    ),
                )
            } else {
                (
                    Severity::Warning,
                    format!(
                        "MX {host} has TLSA records that are not DNSSEC-signed: senders ignore them, so DANE does not protect mail to it"
                    ),
                    format!(
                        "sign the zone of {host} with DNSSEC and publish its DS record at the parent, or remove the TLSA records"
                    ),
                )
            };
            let addresses = address_proof
                .filter(|p| *p != Proof::Secure)
                .map(|p| format!("; A/AAAA {host}: {}", p.as_str()))
                .unwrap_or_default();
            findings.push(Finding::new(
                "dane.tlsa.insecure",
                severity,
                message,
                Some(format!("{tlsa_name}: {listed}{addresses}")),
                fix,
            ));
        }
        DaneState::Usable(_) => {
            report.state = DaneHostState::Usable;
            report.usable = true;
        }
        DaneState::Unusable(_) => report.state = DaneHostState::Unusable,
    }
    unusable_records(&host, &tlsa_name, &records, &ee_fix, findings);
    if !report.usable {
        return report;
    }
    let mut mismatched = Vec::new();
    for s in served {
        let (matched, record) = match match_chain(&records, &s.chain, &host, s.at) {
            ChainMatch::Matched(i) => (true, records.get(i).map(ToString::to_string)),
            ChainMatch::NoMatch(_) | ChainMatch::NoUsableRecord => {
                mismatched.push(s.ip.clone());
                (false, None)
            }
        };
        report.addresses.push(DaneAddressReport {
            ip: s.ip.clone(),
            matched,
            record,
        });
    }
    if !mismatched.is_empty() {
        let served_rec = leaf
            .and_then(|c| record_for(c, 3, 1, 1))
            .map(|t| format!("\nserved: {t}"))
            .unwrap_or_default();
        findings.push(Finding::new(
            "dane.tlsa.mismatch",
            Severity::Error,
            format!(
                "no usable TLSA record of MX {host} matches the certificate served at {}: DANE senders will not deliver to it",
                mismatched.join(", ")
            ),
            Some(format!("{tlsa_name}: {listed}{served_rec}")),
            format!("publish {ee_fix} for the key the server uses now (keep the old record until every server has switched)"),
        ));
    }
    no_rollover(&host, &tlsa_name, &records, served, &ee_fix, findings);
    report
}

/// D04: usages 0 and 1, matching type 0 and unknown parameters.
fn unusable_records(
    host: &str,
    tlsa_name: &str,
    records: &[Tlsa],
    ee_fix: &str,
    findings: &mut Vec<Finding>,
) {
    let flagged: Vec<String> = records
        .iter()
        .filter_map(|t| match usability(t) {
            Err(why) => Some(format!("{t}: {why}")),
            Ok(()) if t.matching == 0 => Some(format!(
                "{t}: matching type 0 publishes the whole {} instead of a digest (RFC 7672 §3.1.3 recommends SHA-256)",
                if t.selector == 0 { "certificate" } else { "key" }
            )),
            Ok(()) => None,
        })
        .collect();
    if flagged.is_empty() {
        return;
    }
    findings.push(Finding::new(
        "dane.tlsa.unusable",
        Severity::Warning,
        format!(
            "{} TLSA record(s) of MX {host} are unusable or discouraged for SMTP: SMTP senders ignore usages 0 and 1 (PKIX) and unknown parameters (RFC 7672 §3.1.3)",
            flagged.len()
        ),
        Some(format!("{tlsa_name}:\n{}", flagged.join("\n"))),
        format!("replace them with DANE-EE or DANE-TA records with SHA-256, e.g. {ee_fix}"),
    ));
}

/// D03: a single DANE-EE record and no DANE-TA record: the next certificate change breaks
/// delivery from DANE senders unless the new record is published first.
fn no_rollover(
    host: &str,
    tlsa_name: &str,
    records: &[Tlsa],
    served: &[&Served],
    ee_fix: &str,
    findings: &mut Vec<Finding>,
) {
    let usable: Vec<&Tlsa> = records.iter().filter(|t| usability(t).is_ok()).collect();
    let ee = usable.iter().filter(|t| t.usage == 3).count();
    let ta = usable.iter().filter(|t| t.usage == 2).count();
    if ee != 1 || ta != 0 {
        return;
    }
    let issuer = served
        .iter()
        .find_map(|s| s.chain.get(1))
        .and_then(|c| record_for(c, 2, 1, 1))
        .map(|t| format!(", or add `{tlsa_name}. IN TLSA {t}` for the issuing CA"))
        .unwrap_or_default();
    findings.push(Finding::new(
        "dane.tlsa.no-rollover",
        Severity::Warning,
        format!("MX {host} has a single DANE-EE TLSA record and no DANE-TA record: the next key change breaks delivery from DANE senders unless a new record is published beforehand"),
        Some(format!("{tlsa_name}: {}", records.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))),
        format!("publish a second `3 1 1` record for the next key before each change (\"current + next\"){issuer}; the current record is {ee_fix}"),
    ));
}
