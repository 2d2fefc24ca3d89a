//! The policy builder behind `mtasts domain add`: from a domain's live MX host names to the
//! narrowest correct `mx` patterns (RFC 8461 §3.2, §4.1).
//!
//! Each MX host is looked up in a table of hosted-mail providers ([`PROVIDERS`]). A provider row
//! says which host names belong to it and how they are covered: most by their exact name, a few by
//! the one-label wildcard the provider documents for MTA-STS (`*.mail.protection.outlook.com` for
//! Microsoft 365, whose tenant host names are one label under that suffix). A wildcard covers
//! exactly one label (RFC 8461 §4.1, [`crate::name`]), so a row only emits `*.S` for hosts that are
//! exactly one label under `S`: a host that is the suffix itself or two labels under it is not the
//! provider's and never widens to the provider's whole space.
//!
//! A host that matches no row is covered by its exact name and listed as
//! [`Coverage::Unexplained`], so the CLI can ask before covering it. A host that cannot be an MX
//! host name (an address, a `*` label, a bad label) is [`Coverage::Invalid`] and left out. The
//! result is built with [`crate::render::build_policy`] and linted with
//! [`crate::policy::parse_policy`] ([`MxPlan::build`]).
//!
//! ```
//! use mtasts_core::policy::Mode;
//! use mtasts_core::providers::plan_mx;
//! let plan = plan_mx(&["contoso-com.mail.protection.outlook.com.", "backup.contoso.com."]);
//! let patterns: Vec<String> = plan.patterns().iter().map(ToString::to_string).collect();
//! assert_eq!(patterns, ["backup.contoso.com", "*.mail.protection.outlook.com"]);
//! assert_eq!(plan.unexplained(), ["backup.contoso.com"]);
//! let built = plan.build(Mode::Testing, 86_400).unwrap();
//! assert!(built.text.starts_with("version: STSv1\r\nmode: testing\r\n"));
//! ```

use crate::diag::Diagnostic;
use crate::name::{MxPattern, PatternProblem, check_pattern, sender_pattern};
use crate::policy::{Mode, Policy, parse_policy};
use crate::render::build_policy;
use serde::Serialize;
use std::collections::BTreeSet;

#[cfg(test)]
mod tests;

/// How the hosts a provider row recognises are covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Emit {
    /// By the host's own name.
    Exact,
    /// By `*.` plus the host without its first label: the provider documents that its inbound
    /// hosts move among the names one label under that suffix.
    WildcardFirst,
}

/// One row of the provider table: a host-name template and how matching hosts are covered.
///
/// The template is a domain name whose labels are literals or `{...}` placeholders; a placeholder
/// stands for exactly one label (never an empty one). A wildcard row replaces
/// only the first label with `*`, so its wildcard always keeps the row's literal suffix and the
/// host's other labels: it can never cover more than the hosts the row itself recognises.
#[derive(Debug, Clone, Copy)]
pub struct ProviderRow {
    /// The provider's name as shown to the user.
    pub provider: &'static str,
    template: &'static str,
    emit: Emit,
}

const fn exact(provider: &'static str, template: &'static str) -> ProviderRow {
    ProviderRow {
        provider,
        template,
        emit: Emit::Exact,
    }
}

const fn wildcard(provider: &'static str, template: &'static str) -> ProviderRow {
    ProviderRow {
        provider,
        template,
        emit: Emit::WildcardFirst,
    }
}

const MICROSOFT: &str = "Microsoft 365";
const GOOGLE: &str = "Google Workspace";
const PROTON: &str = "Proton Mail";
const ZOHO: &str = "Zoho Mail";
const FASTMAIL: &str = "Fastmail";
const ICLOUD: &str = "iCloud Mail";
const MIMECAST: &str = "Mimecast";
const PROOFPOINT: &str = "Proofpoint";
const AMAZON: &str = "Amazon WorkMail / SES";
const CLOUDFLARE: &str = "Cloudflare Email Routing";
const MAILBOX_ORG: &str = "mailbox.org";

/// The hosted-mail providers `domain add` recognises, one row per host-name shape.
///
/// Only names whose source is public and stable are listed; the source of each group is in the
/// comment above it. "Corpus" means real published policies in the shared test data
/// (`data/policies/`) list the same names.
pub const PROVIDERS: &[ProviderRow] = &[
    // Microsoft 365 / Exchange Online: tenant hosts `<tenant>.mail.protection.outlook.com`.
    // Microsoft Learn, "Enhancing mail flow with MTA-STS", publishes
    // `mx: *.mail.protection.outlook.com` as the policy line; corpus: three policies.
    wildcard(MICROSOFT, "{tenant}.mail.protection.outlook.com"),
    // Exchange Online's DNSSEC-signed hosts (inbound DANE; new domains from 2026):
    // `<tenant>.<zone>.mx.microsoft`, the zone label one of several signed zones (e.g. `h-v1`)
    // (Exchange Team blog, "Implementing Inbound SMTP DANE with DNSSEC for Exchange Online";
    // c7solutions.com, "What is mx.microsoft"). Two labels under `mx.microsoft`, so
    // `*.mx.microsoft` covers none of them (jklotzsche-msft/PS.MTA-STS#33; USER-EXPECTATIONS M36);
    // the narrowest correct wildcard keeps the zone label: `*.<zone>.mx.microsoft`.
    wildcard(MICROSOFT, "{tenant}.{zone}.mx.microsoft"),
    // Google Workspace Admin Help, "Google Workspace MX record values": `smtp.google.com`
    // (since 2023) or the five classic hosts; corpus: seven policies.
    exact(GOOGLE, "smtp.google.com"),
    exact(GOOGLE, "aspmx.l.google.com"),
    exact(GOOGLE, "alt1.aspmx.l.google.com"),
    exact(GOOGLE, "alt2.aspmx.l.google.com"),
    exact(GOOGLE, "alt3.aspmx.l.google.com"),
    exact(GOOGLE, "alt4.aspmx.l.google.com"),
    // The legacy G Suite backups, still in many zones (corpus: aspmx2/aspmx3.googlemail.com).
    exact(GOOGLE, "aspmx2.googlemail.com"),
    exact(GOOGLE, "aspmx3.googlemail.com"),
    exact(GOOGLE, "aspmx4.googlemail.com"),
    exact(GOOGLE, "aspmx5.googlemail.com"),
    // Proton support, "How to set up a custom domain"; corpus: four policies.
    exact(PROTON, "mail.protonmail.ch"),
    exact(PROTON, "mailsec.protonmail.ch"),
    // Zoho Mail help, "Configure MX records" (US and EU data centres).
    exact(ZOHO, "mx.zoho.com"),
    exact(ZOHO, "mx2.zoho.com"),
    exact(ZOHO, "mx3.zoho.com"),
    exact(ZOHO, "mx.zoho.eu"),
    exact(ZOHO, "mx2.zoho.eu"),
    exact(ZOHO, "mx3.zoho.eu"),
    // Fastmail help, "DNS records for your domain"; corpus: one policy.
    exact(FASTMAIL, "in1-smtp.messagingengine.com"),
    exact(FASTMAIL, "in2-smtp.messagingengine.com"),
    // Apple support, "Custom email domains with iCloud Mail"; corpus: one policy.
    exact(ICLOUD, "mx01.mail.icloud.com"),
    exact(ICLOUD, "mx02.mail.icloud.com"),
    // Mimecast, "Inbound MX records" per region (US and EU grids).
    exact(MIMECAST, "us-smtp-inbound-1.mimecast.com"),
    exact(MIMECAST, "us-smtp-inbound-2.mimecast.com"),
    exact(MIMECAST, "eu-smtp-inbound-1.mimecast.com"),
    exact(MIMECAST, "eu-smtp-inbound-2.mimecast.com"),
    // Proofpoint on Demand: per-customer hosts `mx0a-<id>.pphosted.com`, `mx0b-<id>.pphosted.com`.
    // Customer-specific, so covered exactly: a wildcard would admit every Proofpoint customer.
    exact(PROOFPOINT, "{customer}.pphosted.com"),
    // Amazon SES receiving / WorkMail: `inbound-smtp.<region>.amazonaws.com` (AWS SES developer
    // guide, "Publishing an MX record for Amazon SES email receiving").
    exact(AMAZON, "inbound-smtp.{region}.amazonaws.com"),
    // Cloudflare Email Routing docs, "Email Routing DNS records"; corpus: two policies.
    exact(CLOUDFLARE, "route1.mx.cloudflare.net"),
    exact(CLOUDFLARE, "route2.mx.cloudflare.net"),
    exact(CLOUDFLARE, "route3.mx.cloudflare.net"),
    // mailbox.org knowledge base, "Using your own domain"; corpus: one policy.
    exact(MAILBOX_ORG, "mxext1.mailbox.org"),
    exact(MAILBOX_ORG, "mxext2.mailbox.org"),
    exact(MAILBOX_ORG, "mxext3.mailbox.org"),
];

impl ProviderRow {
    /// The pattern covering `host` (normalised: lower-case A-labels, no trailing dot) when this
    /// row recognises it.
    fn cover(&self, host: &str) -> Option<MxPattern> {
        let mut host_labels = host.split('.');
        let mut tpl_labels = self.template.split('.');
        loop {
            match (host_labels.next(), tpl_labels.next()) {
                (None, None) => break,
                (Some(h), Some(t)) if t.starts_with('{') => {
                    if h.is_empty() {
                        return None;
                    }
                }
                (Some(h), Some(t)) if h == t => {}
                _ => return None,
            }
        }
        let pattern = match self.emit {
            Emit::Exact => host.to_owned(),
            Emit::WildcardFirst => format!("*.{}", host.split_once('.')?.1),
        };
        MxPattern::parse_strict(&pattern).ok()
    }
}

/// How one MX host is covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Coverage {
    /// A known provider's host, covered by the provider row's pattern.
    Provider {
        /// The provider's name.
        provider: &'static str,
        /// The pattern that covers the host.
        pattern: MxPattern,
    },
    /// No provider row knows the host: it is covered by its exact name, and the user should
    /// confirm it is really theirs.
    Unexplained {
        /// The host's own name as a pattern.
        pattern: MxPattern,
    },
    /// Not a usable MX host name; left out of the policy.
    Invalid {
        /// Why (the `mx` pattern finding id it would draw, e.g. `policy.mx.ip-literal`).
        problem: &'static str,
        /// A one-line description.
        reason: String,
    },
}

/// One MX host of the input and how it is covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPlan {
    /// The host as given.
    pub input: String,
    /// The normalised host (lower-case A-labels, no trailing dot), or the input when invalid.
    pub host: String,
    /// How it is covered.
    pub coverage: Coverage,
}

/// The plan for a domain's `mx` lines: one [`HostPlan`] per distinct input host, in input order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MxPlan {
    /// Each distinct host and how it is covered.
    pub hosts: Vec<HostPlan>,
    /// True when the MX set is a null MX (`.`, RFC 7505): the domain receives no mail, and an
    /// MTA-STS policy protects nothing.
    pub null_mx: bool,
}

/// A policy built from a plan, with the policy linter's findings on its canonical text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuiltPolicy {
    /// The policy.
    pub policy: Policy,
    /// Its canonical text ([`Policy::render`]).
    pub text: String,
    /// Its content-derived id ([`Policy::id`]).
    pub id: String,
    /// Findings: repairs made while building, then every finding of
    /// [`parse_policy`] on the text.
    pub lint: Vec<Diagnostic>,
}

/// Plans the `mx` patterns for a domain whose live MX host names are `hosts` (as DNS gives them:
/// a trailing dot is fine, U-labels are converted). Never fails; see [`Coverage`].
pub fn plan_mx<S: AsRef<str>>(hosts: &[S]) -> MxPlan {
    let mut seen = BTreeSet::new();
    let mut plans = Vec::new();
    let mut null_mx = false;
    for raw in hosts {
        let raw = raw.as_ref();
        if raw == "." || raw.is_empty() {
            null_mx = true;
            continue;
        }
        let plan = plan_host(raw);
        if seen.insert(plan.host.clone()) {
            plans.push(plan);
        }
    }
    MxPlan {
        hosts: plans,
        null_mx,
    }
}

fn plan_host(raw: &str) -> HostPlan {
    let exact = match sender_pattern(raw) {
        Some(p) if !p.is_wildcard() => p,
        Some(_) => {
            return invalid(
                raw,
                PatternProblem::MisplacedWildcard.id(),
                "holds a `*` label; an MX target is a host name, never a pattern",
            );
        }
        None => {
            let problem = check_pattern(raw)
                .into_iter()
                .find(|p| !matches!(p, PatternProblem::TrailingDot))
                .unwrap_or(PatternProblem::Empty);
            return invalid(raw, problem.id(), &problem.describe());
        }
    };
    let host = exact.domain().to_owned();
    let coverage = PROVIDERS
        .iter()
        .find_map(|row| {
            row.cover(&host).map(|pattern| Coverage::Provider {
                provider: row.provider,
                pattern,
            })
        })
        .unwrap_or(Coverage::Unexplained { pattern: exact });
    HostPlan {
        input: raw.to_owned(),
        host,
        coverage,
    }
}

fn invalid(raw: &str, problem: &'static str, reason: &str) -> HostPlan {
    HostPlan {
        input: raw.to_owned(),
        host: raw.to_owned(),
        coverage: Coverage::Invalid {
            problem,
            reason: format!("MX host `{raw}` {reason}"),
        },
    }
}

impl MxPlan {
    /// The patterns covering every valid host, in the canonical order ([`Policy::canonical`]:
    /// exact names, then wildcards), without duplicates.
    pub fn patterns(&self) -> Vec<MxPattern> {
        let set: BTreeSet<&MxPattern> = self
            .hosts
            .iter()
            .filter_map(|h| match &h.coverage {
                Coverage::Provider { pattern, .. } | Coverage::Unexplained { pattern } => {
                    Some(pattern)
                }
                Coverage::Invalid { .. } => None,
            })
            .collect();
        set.into_iter().cloned().collect()
    }

    /// The hosts no provider row explains (normalised names), to confirm before covering them.
    pub fn unexplained(&self) -> Vec<&str> {
        self.select(|c| matches!(c, Coverage::Unexplained { .. }))
    }

    /// The hosts left out as invalid (as given).
    pub fn invalid(&self) -> Vec<&str> {
        self.select(|c| matches!(c, Coverage::Invalid { .. }))
    }

    fn select(&self, pick: impl Fn(&Coverage) -> bool) -> Vec<&str> {
        self.hosts
            .iter()
            .filter(|h| pick(&h.coverage))
            .map(|h| h.host.as_str())
            .collect()
    }

    /// The same plan without the hosts the user declined (normalised names, as
    /// [`unexplained`](Self::unexplained) lists them).
    #[must_use]
    pub fn without(&self, declined: &[&str]) -> Self {
        Self {
            hosts: self
                .hosts
                .iter()
                .filter(|h| !declined.contains(&h.host.as_str()))
                .cloned()
                .collect(),
            null_mx: self.null_mx,
        }
    }

    /// Builds the policy with [`build_policy`] and lints its canonical text with
    /// [`parse_policy`]. Errors (no usable host, a `max_age` over the limit) come back together.
    pub fn build(&self, mode: Mode, max_age: u64) -> Result<BuiltPolicy, Vec<Diagnostic>> {
        let patterns: Vec<String> = self.patterns().iter().map(ToString::to_string).collect();
        let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
        let (policy, mut lint) = build_policy(mode, max_age, &refs)?;
        let text = policy.render();
        lint.extend(parse_policy(text.as_bytes()).diagnostics);
        Ok(BuiltPolicy {
            id: policy.id(),
            policy,
            text,
            lint,
        })
    }
}
