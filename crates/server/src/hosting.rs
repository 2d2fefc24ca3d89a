//! Where the hosted names must point, and the DNS records an owner must create for each
//! delegation model (issue 12, §2 and §3).
//!
//! `mtasts serve` records its [`Hosting`] facts in the store ([`record_hosting`]), so that
//! `mtasts domain add|show --store` and every instance print the same records, and check
//! whether they are in place, without a configuration of their own.
//!
//! - **host** delegation: the owner points `mta-sts.<d>` at us (a CNAME to `cname_target`, or A
//!   and AAAA records to `public_addresses`) and publishes `_mta-sts.<d>` (the policy id) and
//!   `_smtp._tls.<d>` (TLS-RPT) in their own zone;
//! - **full** delegation: the owner also makes `_mta-sts.<d>` a CNAME to
//!   `<d>._mta-sts.<zone>` and `_smtp._tls.<d>` one to `<d>._smtp._tls.<zone>`, names in the zone
//!   we control, whose TXT records we publish by RFC 2136 update ([`crate::publish`]).

use std::net::IpAddr;
use std::time::Duration;

use mtasts_net::dns::{DnsError, Lookup, Resolver};
use mtasts_store::{Delegation, Store};
use serde::{Deserialize, Serialize};

/// The `[hosting]` table: what hosted names must point at, and what we publish.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hosting {
    /// The addresses `mta-sts.<d>` must resolve to (`--public-address`).
    pub public_addresses: Vec<IpAddr>,
    /// The name `mta-sts.<d>` may be a CNAME to instead (`--cname-target`).
    pub cname_target: Option<String>,
    /// The zone we control, where full delegations point (`[dns_update] zone`).
    pub zone: Option<String>,
    /// The `rua` of the TLS-RPT record we publish (full delegation) or suggest (host), e.g.
    /// `mailto:tlsrpt@provider.example`.
    pub tlsrpt_rua: Option<String>,
}

/// The store setting holding the [`Hosting`] facts `mtasts serve` runs with.
pub const HOSTING_SETTING: &str = "hosting";

/// Records `hosting` in the store for `mtasts domain` and the other instances.
///
/// # Errors
/// The store's.
pub async fn record_hosting(store: &Store, hosting: &Hosting) -> Result<(), mtasts_store::Error> {
    let json = serde_json::to_string(hosting).unwrap_or_default();
    store.put_setting(HOSTING_SETTING, &json).await
}

/// The [`Hosting`] facts a server recorded, or the defaults (nothing known) when none did.
///
/// # Errors
/// The store's.
pub async fn recorded_hosting(store: &Store) -> Result<Hosting, mtasts_store::Error> {
    Ok(store
        .setting(HOSTING_SETTING)
        .await?
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default())
}

/// A DNS record the owner (or we) must publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// The owner name, without a trailing dot.
    pub name: String,
    /// `CNAME`, `A`, `AAAA` or `TXT`.
    #[serde(rename = "type")]
    pub rtype: String,
    /// The value (a target name, an address, or the TXT text).
    pub value: String,
    /// Who publishes it: `owner` (in their zone) or `mtasts` (in ours, by DNS update).
    pub managed_by: String,
    /// Whether DNS answers with it now; `None` when it was not looked up, or could not be.
    pub in_place: Option<bool>,
    /// Why it is not in place, or why we could not look.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl DnsRecord {
    fn new(name: String, rtype: &str, value: String, managed_by: &str) -> Self {
        Self {
            name,
            rtype: rtype.to_owned(),
            value,
            managed_by: managed_by.to_owned(),
            in_place: None,
            note: None,
        }
    }
}

/// The name in our zone that `_mta-sts.<domain>` points at under full delegation.
pub fn sts_target(domain: &str, zone: &str) -> String {
    format!("{domain}._mta-sts.{}", zone.trim_end_matches('.'))
}

/// The name in our zone that `_smtp._tls.<domain>` points at under full delegation.
pub fn tlsrpt_target(domain: &str, zone: &str) -> String {
    format!("{domain}._smtp._tls.{}", zone.trim_end_matches('.'))
}

/// The `_mta-sts` TXT value for a policy id.
pub fn sts_value(policy_id: &str) -> String {
    format!("v=STSv1; id={policy_id}")
}

/// The `_smtp._tls` TXT value for a `rua`.
pub fn tlsrpt_value(rua: &str) -> String {
    format!("v=TLSRPTv1; rua={rua}")
}

/// Every record for `domain` under `delegation`, serving `policy_id`, in the order an owner
/// would create them. A record we cannot name (no public address or CNAME target known, no
/// zone, no `rua`) is left out; [`missing_facts`] says what is missing.
pub fn records_for(
    domain: &str,
    delegation: Delegation,
    policy_id: &str,
    hosting: &Hosting,
) -> Vec<DnsRecord> {
    let mut out = Vec::new();
    let host = format!("mta-sts.{domain}");
    if let Some(target) = &hosting.cname_target {
        out.push(DnsRecord::new(
            host,
            "CNAME",
            target.trim_end_matches('.').to_owned(),
            "owner",
        ));
    } else {
        for ip in &hosting.public_addresses {
            let rtype = if ip.is_ipv4() { "A" } else { "AAAA" };
            out.push(DnsRecord::new(host.clone(), rtype, ip.to_string(), "owner"));
        }
    }
    let sts_name = format!("_mta-sts.{domain}");
    let tls_name = format!("_smtp._tls.{domain}");
    match (delegation, &hosting.zone) {
        (Delegation::Full, Some(zone)) => {
            let (sts, tls) = (sts_target(domain, zone), tlsrpt_target(domain, zone));
            out.push(DnsRecord::new(sts_name, "CNAME", sts.clone(), "owner"));
            if hosting.tlsrpt_rua.is_some() {
                out.push(DnsRecord::new(tls_name, "CNAME", tls.clone(), "owner"));
            }
            out.push(DnsRecord::new(sts, "TXT", sts_value(policy_id), "mtasts"));
            if let Some(rua) = &hosting.tlsrpt_rua {
                out.push(DnsRecord::new(tls, "TXT", tlsrpt_value(rua), "mtasts"));
            }
        }
        _ => {
            out.push(DnsRecord::new(
                sts_name,
                "TXT",
                sts_value(policy_id),
                "owner",
            ));
            if let Some(rua) = &hosting.tlsrpt_rua {
                out.push(DnsRecord::new(tls_name, "TXT", tlsrpt_value(rua), "owner"));
            }
        }
    }
    out
}

/// What [`records_for`] could not name for lack of configuration, in words.
pub fn missing_facts(delegation: Delegation, hosting: &Hosting) -> Vec<String> {
    let mut out = Vec::new();
    if hosting.cname_target.is_none() && hosting.public_addresses.is_empty() {
        out.push(
            "no public address or CNAME target is configured on the server \
             (--public-address, --cname-target): the mta-sts record cannot be named"
                .to_owned(),
        );
    }
    if delegation == Delegation::Full && hosting.zone.is_none() {
        out.push(
            "full delegation needs the server's DNS update zone ([dns_update] zone)".to_owned(),
        );
    }
    out
}

/// Looks every record up through `resolver` (all at once, each within `budget`) and fills in
/// `in_place` and `note`. A lookup that fails leaves `in_place` unknown (`None`): "could not
/// look" is not "missing".
pub async fn check_in_place(resolver: &Resolver, records: &mut [DnsRecord], budget: Duration) {
    let lookups = records.iter().map(|r| async move {
        match tokio::time::timeout(budget, look(resolver, r)).await {
            Ok(found) => found,
            Err(_) => (
                None,
                Some(format!("no answer within {} s", budget.as_secs())),
            ),
        }
    });
    let found = futures_util::future::join_all(lookups).await;
    for (r, (in_place, note)) in records.iter_mut().zip(found) {
        r.in_place = in_place;
        r.note = note;
    }
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

async fn look(resolver: &Resolver, r: &DnsRecord) -> (Option<bool>, Option<String>) {
    let could_not = |e: DnsError| (None, Some(format!("could not look: {e}")));
    match r.rtype.as_str() {
        "CNAME" => {
            // The alias itself, not followed: a delegated `_mta-sts` name points at a name
            // holding only TXT records, so an address lookup through it would find nothing.
            let lookup = match resolver.cname(&r.name).await {
                Ok(l) => l,
                Err(e) => return could_not(e),
            };
            match (lookup.records().first(), &lookup) {
                (Some(t), _) if same_name(t, &r.value) => (Some(true), None),
                (Some(t), _) => (Some(false), Some(format!("is a CNAME to {t:?}"))),
                (None, Lookup::NxDomain) => (Some(false), Some("does not exist".into())),
                (None, _) => (Some(false), Some("is not a CNAME".into())),
            }
        }
        "A" | "AAAA" => {
            let want: IpAddr = match r.value.parse() {
                Ok(ip) => ip,
                Err(_) => return (None, Some("not an address".into())),
            };
            let found = if want.is_ipv4() {
                resolver.a(&r.name).await
            } else {
                resolver.aaaa(&r.name).await
            };
            match found {
                Ok(l) if l.records().contains(&want) => (Some(true), None),
                Ok(l) if l.records().is_empty() => {
                    (Some(false), Some(format!("no {} record", r.rtype)))
                }
                Ok(l) => (
                    Some(false),
                    Some(format!(
                        "resolves to {}",
                        l.records()
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                ),
                Err(e) => could_not(e),
            }
        }
        "TXT" => match resolver.txt(&r.name).await {
            Ok(l) => {
                let texts: Vec<String> = l
                    .records()
                    .iter()
                    .map(|t| String::from_utf8_lossy(&t.joined()).into_owned())
                    .collect();
                if texts.iter().any(|t| t == &r.value) {
                    (Some(true), None)
                } else if texts.is_empty() {
                    (Some(false), Some("no TXT record".into()))
                } else {
                    (Some(false), Some(format!("TXT is {:?}", texts.join(" | "))))
                }
            }
            Err(e) => could_not(e),
        },
        _ => (None, None),
    }
}

/// Whether `name` points at this server: its first CNAME is `hosting.cname_target`, or every
/// address it resolves to is one of `hosting.public_addresses` (and it has at least one).
/// `Err` says in plain words why not, or that DNS could not be asked.
///
/// # Errors
/// [`PointsElsewhere`].
pub async fn points_at_us(
    resolver: &Resolver,
    name: &str,
    hosting: &Hosting,
) -> Result<(), PointsElsewhere> {
    let (a, aaaa) = tokio::join!(resolver.a(name), resolver.aaaa(name));
    let (a, aaaa) = match (a, aaaa) {
        (Ok(a), Ok(aaaa)) => (a, aaaa),
        (Err(e), _) | (_, Err(e)) => {
            return Err(PointsElsewhere::CouldNotLook(e.to_string()));
        }
    };
    if matches!(a, Lookup::NxDomain) {
        return Err(PointsElsewhere::Wrong(format!(
            "{name} does not exist (NXDOMAIN)"
        )));
    }
    let first_cname = [&a, &aaaa].into_iter().find_map(|l| match l {
        Lookup::Records { cnames, .. } => cnames.first().cloned(),
        _ => None,
    });
    if let (Some(target), Some(first)) = (&hosting.cname_target, &first_cname)
        && same_name(target, first)
    {
        return Ok(());
    }
    let addresses: Vec<IpAddr> = a.records().iter().chain(aaaa.records()).copied().collect();
    if addresses.is_empty() {
        return Err(PointsElsewhere::Wrong(format!(
            "{name} has no address record"
        )));
    }
    let foreign: Vec<String> = addresses
        .iter()
        .filter(|ip| !hosting.public_addresses.contains(ip))
        .map(ToString::to_string)
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    let via = first_cname
        .map(|c| format!(" (through a CNAME to {c:?})"))
        .unwrap_or_default();
    let want = match (&hosting.cname_target, hosting.public_addresses.is_empty()) {
        (Some(t), _) => format!("a CNAME to {t}"),
        (None, false) => hosting
            .public_addresses
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        (None, true) => "this server".to_owned(),
    };
    Err(PointsElsewhere::Wrong(format!(
        "{name} resolves to {}{via}, not to this server: point it at {want}",
        foreign.join(", ")
    )))
}

/// Why a name does not (provably) point at this server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointsElsewhere {
    /// DNS answered, and the answer is not us.
    #[error("{0}")]
    Wrong(String),
    /// DNS could not be asked (a time-out, SERVFAIL): nothing is known.
    #[error("could not look the name up: {0}")]
    CouldNotLook(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each record as (name, type, value, who publishes it).
    fn fields(records: &[DnsRecord]) -> Vec<(&str, &str, &str, &str)> {
        records
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.rtype.as_str(),
                    r.value.as_str(),
                    r.managed_by.as_str(),
                )
            })
            .collect()
    }

    fn hosting() -> Hosting {
        Hosting {
            public_addresses: vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
            cname_target: None,
            zone: Some("sts.provider.example".into()),
            tlsrpt_rua: Some("mailto:tlsrpt@provider.example".into()),
        }
    }

    #[test]
    fn host_delegation_lists_the_address_records_and_both_txt_records() {
        let r = records_for("example.com", Delegation::Host, "abc", &hosting());
        assert_eq!(
            fields(&r),
            [
                ("mta-sts.example.com", "A", "192.0.2.1", "owner"),
                ("mta-sts.example.com", "AAAA", "2001:db8::1", "owner"),
                ("_mta-sts.example.com", "TXT", "v=STSv1; id=abc", "owner"),
                (
                    "_smtp._tls.example.com",
                    "TXT",
                    "v=TLSRPTv1; rua=mailto:tlsrpt@provider.example",
                    "owner"
                ),
            ]
        );
    }

    #[test]
    fn full_delegation_lists_cnames_into_our_zone_and_what_we_publish() {
        let mut h = hosting();
        h.cname_target = Some("mta-sts.provider.example.".into());
        let r = records_for("example.com", Delegation::Full, "abc", &h);
        assert_eq!(
            fields(&r),
            [
                (
                    "mta-sts.example.com",
                    "CNAME",
                    "mta-sts.provider.example",
                    "owner"
                ),
                (
                    "_mta-sts.example.com",
                    "CNAME",
                    "example.com._mta-sts.sts.provider.example",
                    "owner"
                ),
                (
                    "_smtp._tls.example.com",
                    "CNAME",
                    "example.com._smtp._tls.sts.provider.example",
                    "owner"
                ),
                (
                    "example.com._mta-sts.sts.provider.example",
                    "TXT",
                    "v=STSv1; id=abc",
                    "mtasts"
                ),
                (
                    "example.com._smtp._tls.sts.provider.example",
                    "TXT",
                    "v=TLSRPTv1; rua=mailto:tlsrpt@provider.example",
                    "mtasts"
                ),
            ]
        );
        assert!(missing_facts(Delegation::Full, &h).is_empty());
        assert_eq!(
            missing_facts(Delegation::Full, &Hosting::default()).len(),
            2
        );
    }
}
