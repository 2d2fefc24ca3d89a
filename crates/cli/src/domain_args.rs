//! The flags of `mtasts domain ...` (what each subcommand takes); domain_cmd.rs runs them.

use crate::net_args::NetArgs;
use crate::store_cmd::StoreArgs;
use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Args)]
pub(crate) struct DomainArgs {
    #[command(subcommand)]
    pub(crate) action: Action,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// A running server's admin API instead of the store: `https://HOST:PORT` (`http://` on
    /// loopback).
    #[arg(long, global = true, env = "MTASTS_SERVER", value_name = "URL")]
    pub(crate) server: Option<String>,
    /// The admin API token (best given by the environment).
    #[arg(long, global = true, env = "MTASTS_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// CA certificates (PEM) the admin server's certificate is checked against, beside the
    /// Mozilla roots.
    #[arg(long, global = true, value_name = "PEM")]
    pub(crate) server_ca: Option<std::path::PathBuf>,
    /// The time to act at (RFC 3339), instead of now: for rehearsing a rollout on a copy of
    /// the store, and for tests. Only with --store; a flag only (no environment variable, so a
    /// rehearsal's setting cannot leak into later commands), said on standard error, and
    /// recorded in the audit history's actor.
    #[arg(long, global = true, hide = true)]
    pub(crate) now: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum DelegationArg {
    Host,
    Full,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum StartMode {
    Testing,
    Enforce,
}

/// `--force --reason TEXT`.
#[derive(Debug, Args)]
pub(crate) struct ForceArgs {
    /// Override the rollout's rules (recorded in the audit history with the reason).
    #[arg(long, requires = "reason")]
    pub(crate) force: bool,
    /// Why (recorded); required with --force.
    #[arg(long, value_name = "TEXT")]
    pub(crate) reason: Option<String>,
}

impl ForceArgs {
    pub(crate) fn forced(&self) -> Option<&str> {
        self.force.then_some(self.reason.as_deref()).flatten()
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Hosts a domain: builds its policy from the live MX records (or --mx), in testing.
    Add {
        /// The domain.
        domain: String,
        /// An `mx` pattern, taken as given (repeatable); no MX lookup then.
        #[arg(long = "mx", value_name = "PATTERN")]
        mx: Vec<String>,
        /// The mode to start in; enforce needs --force --reason.
        #[arg(long, value_enum, default_value_t = StartMode::Testing)]
        mode: StartMode,
        /// The max_age to serve instead of the rollout's default.
        #[arg(long, value_name = "SECS")]
        max_age: Option<u32>,
        /// An MX host no known provider explains that you confirm is yours (repeatable).
        #[arg(long = "confirm", value_name = "HOST")]
        confirm: Vec<String>,
        /// Confirm every unexplained MX host without asking.
        #[arg(long)]
        yes: bool,
        /// How the owner delegates the domain: `host` (only mta-sts.DOMAIN points at the
        /// server; the owner publishes the TXT records) or `full` (the TXT names are CNAMEs
        /// into the server's zone, which publishes them by DNS update).
        #[arg(long, value_enum, default_value_t = DelegationArg::Host)]
        delegation: DelegationArg,
        #[command(flatten)]
        force: ForceArgs,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Lists the hosted domains.
    List,
    /// Shows a domain: its state, the policy served, its certificate, and every DNS record
    /// its delegation needs with whether it is in place.
    Show {
        /// The domain.
        domain: String,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Changes the mx patterns or max_age served (a new policy id: publish it).
    Set {
        /// The domain.
        domain: String,
        /// The new `mx` patterns (repeatable; all of them).
        #[arg(long = "mx", value_name = "PATTERN")]
        mx: Vec<String>,
        /// The new max_age.
        #[arg(long, value_name = "SECS")]
        max_age: Option<u32>,
        /// Why (recorded).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// One rollout step up (testing -> enforce -> longer max_age), after a live check of every
    /// MX host (STARTTLS, valid certificate) and the minimum time in the stage.
    Promote {
        /// The domain.
        domain: String,
        #[command(flatten)]
        force: ForceArgs,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Back to testing (senders keep a cached enforce policy until its max_age runs out).
    /// Accepts `--force --reason TEXT` as promote and remove do; a rollback is never refused by
    /// the rollout's rules, so only the reason matters (recorded).
    Rollback {
        /// The domain.
        domain: String,
        #[command(flatten)]
        force: ForceArgs,
    },
    /// Withdraws the policy: serves `mode: none` until every cached policy has expired, then
    /// (run again) deletes the domain and says which DNS records can go.
    Remove {
        /// The domain.
        domain: String,
        #[command(flatten)]
        force: ForceArgs,
    },
    /// Checks a hosted domain for drift now (TXT id, MX coverage, where `mta-sts.<d>` points)
    /// and records what it finds. Only with --store.
    Check {
        /// The domain.
        domain: String,
        #[command(flatten)]
        net: NetArgs,
    },
    /// The certificate of `mta-sts.<domain>`.
    #[command(subcommand)]
    Cert(CertAction),
}

#[derive(Debug, Subcommand)]
pub(crate) enum CertAction {
    /// Installs a certificate (PEM chain, end entity first) and its key for `mta-sts.<domain>`.
    Import {
        /// The domain.
        domain: String,
        /// The certificate chain (PEM).
        #[arg(long, value_name = "PEM")]
        cert: std::path::PathBuf,
        /// Its private key (PEM); sealed in the store.
        #[arg(long, value_name = "PEM")]
        key: std::path::PathBuf,
        /// Why (recorded).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Installs a certificate and key for a host name of our own that is not a hosted
    /// domain's policy host: `[intake] host` (reports `POST`ed to `https://<host>/tlsrpt`) or
    /// `[smtp] hostname` (its `STARTTLS`). Only with --store.
    ImportHost {
        /// The host name the certificate is for.
        name: String,
        /// The certificate chain (PEM).
        #[arg(long, value_name = "PEM")]
        cert: std::path::PathBuf,
        /// Its private key (PEM); sealed in the store.
        #[arg(long, value_name = "PEM")]
        key: std::path::PathBuf,
    },
}
