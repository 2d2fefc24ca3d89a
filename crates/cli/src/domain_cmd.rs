//! `mtasts domain ...`: hosted domains, on the store (`--store URL`) or on a running server
//! (`--server URL` with `--token`). The operations are `mtasts_server::ops`; this file parses
//! flags, gathers what the operation needs from the network (live MX hosts, the live check),
//! and prints.

use crate::Usage;
use crate::domain_args::{Action, CertAction, DelegationArg, DomainArgs, StartMode};
use crate::net_args::NetArgs;
use crate::output::Format;
use anyhow::{Context, Result, bail};
use mtasts_check::check_domain_within;
use mtasts_core::policy::Mode;
use mtasts_server::admin::client::AdminClient;
use mtasts_server::domains::{AddDomain, Domains, MxSource};
use mtasts_server::drift;
use mtasts_server::ops::{Failure, Target};
use serde_json::Value;
use std::io::IsTerminal;
use time::OffsetDateTime;

/// Options of `mtasts domain`.
pub(crate) fn run(args: DomainArgs, format: Format) -> Result<u8> {
    let runtime = crate::runtime::with_threads(1)?;
    runtime.block_on(async move {
        let now = match &args.now {
            Some(t) => {
                let at = OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| Usage(format!("--now {t:?} is not an RFC 3339 time: {e}")))?;
                eprintln!(
                    "mtasts: acting at {t} (--now), not at the current time; recorded in the audit history"
                );
                at
            }
            None => OffsetDateTime::now_utc(),
        };
        let (target, local) = target(&args).await?;
        let result = act(&args.action, &target, local.as_ref(), now, format).await;
        if let Target::Store { domains, .. } = &target {
            domains.store().close().await;
        }
        match result? {
            Ok(out) => {
                crate::domain_print::print(args.action_name(), &out, format)?;
                Ok(crate::domain_print::exit_code(args.action_name(), &out))
            }
            Err(failure) => crate::domain_print::failure(&failure, format),
        }
    })
}

impl DomainArgs {
    fn action_name(&self) -> &'static str {
        match self.action {
            Action::Add { .. } => "add",
            Action::List => "list",
            Action::Show { .. } => "show",
            Action::Set { .. } => "set",
            Action::Promote { .. } => "promote",
            Action::Rollback { .. } => "rollback",
            Action::Remove { .. } => "remove",
            Action::Check { .. } => "check",
            Action::Cert(_) => "cert",
        }
    }
}

async fn target(args: &DomainArgs) -> Result<(Target, Option<Domains>)> {
    if args.server.is_some() && args.store.store.is_some() {
        // An exported MTASTS_SERVER must not turn a rehearsal on a copy of the store into a
        // change on the live server (or the other way round).
        return Err(Usage(
            "both a store (--store or MTASTS_STORE) and a server (--server or MTASTS_SERVER) are given: say which, and unset the other variable".into(),
        )
        .into());
    }
    if let Some(url) = &args.server {
        if args.now.is_some() {
            return Err(Usage(
                "--now works only with --store (the server keeps its own time)".into(),
            )
            .into());
        }
        let token = args
            .token
            .as_deref()
            .ok_or_else(|| Usage("--server needs a token: --token or MTASTS_TOKEN".into()))?;
        let ca = match &args.server_ca {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read --server-ca {}", p.display()))?,
            ),
            None => None,
        };
        return Ok((
            Target::Server(AdminClient::new(url, token, ca.as_deref())?),
            None,
        ));
    }
    let config = args.store.serve_config()?;
    let store = args.store.open(&config).await?;
    // The gates are the servers' (recorded in the store at their start) unless a configuration
    // was given here; a configuration that disagrees is said.
    let recorded = mtasts_server::daemon::recorded_rollout(&store).await?;
    let rollout = match (&args.store.config, recorded) {
        (None, Some(r)) => r,
        (Some(_), Some(r)) if r != config.rollout => {
            eprintln!(
                "mtasts: the [rollout] of --config differs from the schedule mtasts serve recorded in the store; the gates here follow --config"
            );
            config.rollout.clone()
        }
        _ => config.rollout.clone(),
    };
    let domains = Domains::new(store, rollout)?;
    let mut actor = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    );
    if let Some(t) = &args.now {
        actor.push_str(&format!(" (--now {t})"));
    }
    Ok((
        Target::Store {
            domains: domains.clone(),
            actor,
        },
        Some(domains),
    ))
}

/// Runs the action. The outer error is ours (flags, network set-up); the inner one is the
/// operation's refusal or failure, printed with its code.
async fn act(
    action: &Action,
    target: &Target,
    local: Option<&Domains>,
    now: OffsetDateTime,
    format: Format,
) -> Result<Result<Value, Failure>> {
    Ok(match action {
        Action::Add {
            domain,
            mx,
            mode,
            max_age,
            confirm,
            yes,
            delegation,
            force,
            net,
        } => {
            let mx = if mx.is_empty() {
                MxSource::Live {
                    hosts: live_mx(domain, net).await?,
                    confirmed: confirm.clone(),
                }
            } else {
                MxSource::Patterns(mx.clone())
            };
            let mut req = AddDomain {
                domain: domain.clone(),
                mx,
                mode: match mode {
                    StartMode::Testing => Mode::Testing,
                    StartMode::Enforce => Mode::Enforce,
                },
                max_age: *max_age,
                force: force.forced().map(str::to_owned),
                delegation: match delegation {
                    DelegationArg::Host => mtasts_store::Delegation::Host,
                    DelegationArg::Full => mtasts_store::Delegation::Full,
                },
            };
            loop {
                match target.add(&req, now).await {
                    Err(f) if f.code == "unexplained_mx" => {
                        let MxSource::Live { hosts, confirmed } = &mut req.mx else {
                            break Err(f);
                        };
                        let unexplained = unexplained_hosts(&f);
                        let ask = !*yes && format == Format::Text && std::io::stdin().is_terminal();
                        if !*yes && !ask {
                            break Err(f);
                        }
                        // Nothing new to ask about: asking again would not change the answer.
                        if unexplained.iter().all(|h| confirmed.contains(h)) {
                            break Err(f);
                        }
                        for h in unexplained {
                            if *yes || crate::domain_print::confirm(&h)? {
                                confirmed.push(h);
                            } else {
                                hosts.retain(|x| !x.eq_ignore_ascii_case(&h));
                            }
                        }
                    }
                    other => break other,
                }
            }
        }
        Action::List => target.list().await,
        Action::Show { domain, net } => match (target, local) {
            // From the store, this process looks the records up; a server looks them up itself.
            (Target::Store { actor, .. }, Some(d)) => {
                let domains = d.clone().with_resolver(net.drift_env()?.resolver);
                let actor = actor.clone();
                Target::Store { domains, actor }.show(domain).await
            }
            _ => target.show(domain).await,
        },
        Action::Set {
            domain,
            mx,
            max_age,
            reason,
        } => {
            let mx = (!mx.is_empty()).then_some(mx.as_slice());
            target
                .set(domain, mx, *max_age, reason.as_deref(), now)
                .await
        }
        Action::Promote { domain, force, net } => {
            let evidence = if force.force {
                None
            } else {
                let env = net.env()?;
                let name = mtasts_server::domains::normalize_domain(domain)?;
                let report = check_domain_within(&name, &env, net.domain_budget()).await;
                // The TLS-RPT part is the store's to say: `Domains::promote`, here or on the
                // server, reads it from the domain's reports with this live check (D53) and
                // replaces what is sent.
                Some(mtasts_core::rollout::Evidence {
                    live: drift::live_check(&report, now),
                    tlsrpt: mtasts_core::rollout::TlsRptEvidence::NotCollected,
                })
            };
            let out = target
                .promote(domain, evidence.as_ref(), force.forced(), now)
                .await;
            match (out, evidence) {
                (Ok(mut v), Some(e)) => {
                    v["live_check"] = serde_json::to_value(&e.live)?;
                    Ok(v)
                }
                (out, _) => out,
            }
        }
        Action::Rollback { domain, force } => {
            target.rollback(domain, force.reason.as_deref(), now).await
        }
        Action::Remove { domain, force } => target.remove(domain, force.forced(), now).await,
        Action::Check { domain, net } => {
            let domains = local.ok_or_else(|| {
                Usage("domain check needs --store (a server checks its domains every check.drift_interval)".into())
            })?;
            let env = net.drift_env()?;
            match drift::check_one(domains, &env, domain, net.domain_budget(), now).await {
                Ok(a) => Ok(serde_json::to_value(&a)?),
                Err(e) => Err(Failure::from(e)),
            }
        }
        Action::Cert(CertAction::Import {
            domain,
            cert,
            key,
            reason,
        }) => {
            let read = |p: &std::path::Path| {
                std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
            };
            let (c, k) = (read(cert)?, read(key)?);
            target
                .import_certificate(domain, &c, &k, reason.as_deref(), now)
                .await
        }
        Action::Cert(CertAction::ImportHost { name, cert, key }) => {
            let domains = local.ok_or_else(|| {
                Usage("domain cert import-host needs --store (not --server)".into())
            })?;
            let read = |p: &std::path::Path| {
                std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
            };
            let (c, k) = (read(cert)?, read(key)?);
            let actor = match target {
                Target::Store { actor, .. } => actor.clone(),
                Target::Server { .. } => "cli".to_owned(),
            };
            match domains
                .import_host_certificate(name, &c, &k, &actor, now)
                .await
            {
                Ok(checked) => Ok(serde_json::to_value(&checked)?),
                Err(e) => Err(Failure::from(e)),
            }
        }
    })
}

/// The domain's live MX host names, looked up now (the checker's DNS, no probes).
async fn live_mx(domain: &str, net: &NetArgs) -> Result<Vec<String>> {
    let env = net.drift_env()?;
    let name = mtasts_server::domains::normalize_domain(domain)?;
    let report = check_domain_within(&name, &env, net.domain_budget()).await;
    let has = |id: &str| report.findings.iter().find(|f| f.id == id);
    if let Some(f) = has("domain.nxdomain") {
        bail!("{}; give the mx patterns with --mx", f.message);
    }
    if let Some(f) = has("mx.null") {
        bail!(
            "{}: a domain that accepts no mail needs no MTA-STS policy",
            f.message
        );
    }
    if let Some(f) = has("mx.untested") {
        bail!(
            "cannot look up the MX records of {name}: {}; try again, or give the mx patterns with --mx",
            f.message
        );
    }
    let hosts: Vec<String> = report.mx.iter().map(|m| m.host.clone()).collect();
    if hosts.is_empty() {
        bail!("{name} has no MX records; give the mx patterns with --mx");
    }
    Ok(hosts)
}

fn unexplained_hosts(f: &Failure) -> Vec<String> {
    f.details
        .as_ref()
        .and_then(|d| d["hosts"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|h| h.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
