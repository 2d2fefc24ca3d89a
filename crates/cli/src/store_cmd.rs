//! `mtasts store migrate` and `mtasts token create|list|revoke`, and the store flags every
//! command that opens the store shares.

use crate::output::Format;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mtasts_server::config::{ServeConfig, override_value};
use mtasts_server::daemon::redact;
use mtasts_store::{Change, Store, TokenScope};
use serde_json::json;

/// Where the store is: flag > environment > `--config` file > default.
#[derive(Debug, Clone, Args)]
pub(crate) struct StoreArgs {
    /// The store: `sqlite:PATH` or `postgres://...`.
    #[arg(long, global = true, env = "MTASTS_STORE", value_name = "URL")]
    pub(crate) store: Option<String>,
    /// The key sealing private keys (64 hex digits); for SQLite a key file beside the database
    /// is used when absent. Best given by the environment.
    #[arg(
        long,
        global = true,
        env = "MTASTS_STORE_KEY",
        hide_env_values = true,
        value_name = "HEX"
    )]
    pub(crate) store_key: Option<String>,
    /// `mtasts serve`'s configuration file, for its `[store]` and `[rollout]` tables (the
    /// `MTASTS_SERVE__<KEY>` variables apply too, as for `serve`).
    #[arg(long, global = true, env = "MTASTS_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<std::path::PathBuf>,
}

impl StoreArgs {
    /// The serve configuration these flags select (store URL and key laid over the file).
    pub(crate) fn serve_config(&self) -> Result<ServeConfig> {
        let file = match &self.config {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read the configuration {}", p.display()))?,
            ),
            None => None,
        };
        let mut layers = env_overrides();
        if let Some(url) = &self.store {
            layers.push(("store.url".to_owned(), toml::Value::String(url.clone())));
        }
        if let Some(key) = &self.store_key {
            layers.push(("store.key".to_owned(), override_value(&format!("{key:?}"))));
        }
        Ok(ServeConfig::layered(file.as_deref(), &layers)?)
    }

    /// Opens the store (applying its migrations).
    pub(crate) async fn open(&self, config: &ServeConfig) -> Result<Store> {
        Store::open(&config.store.url, &config.store.options()?)
            .await
            .with_context(|| format!("cannot open the store {}", redact(&config.store.url)))
    }
}

/// The overrides from the environment: `MTASTS_SERVE__A__B=v` sets `a.b` (sorted, so the
/// outcome does not depend on the environment's order).
pub(crate) fn env_overrides() -> Vec<(String, toml::Value)> {
    let mut out: Vec<(String, toml::Value)> = std::env::vars()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix("MTASTS_SERVE__")?;
            Some((key.to_lowercase().replace("__", "."), override_value(&v)))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `mtasts store ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum StoreCommand {
    /// Creates the store or brings its schema up to date (`mtasts serve` does this at start).
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `mtasts token ...`: the admin API's bearer tokens.
#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    #[command(subcommand)]
    action: TokenAction,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Makes a token; prints its secret once (the store keeps only a hash).
    Create {
        /// Its name (the audit history's actor: `token:<name>`).
        name: String,
        /// Limit it to this domain (repeatable); default: every domain.
        #[arg(long = "domain", value_name = "DOMAIN")]
        domains: Vec<String>,
    },
    /// Lists the tokens (never their secrets).
    List,
    /// Revokes a token at once.
    Revoke {
        /// Its name.
        name: String,
    },
}

fn actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

pub(crate) fn run_store(cmd: StoreCommand, format: Format) -> Result<u8> {
    let StoreCommand::Migrate { store } = cmd;
    let config = store.serve_config()?;
    let runtime = crate::runtime::with_threads(1)?;
    let applied = runtime.block_on(mtasts_store::migrate(
        &config.store.url,
        &config.store.options()?,
    ))?;
    let versions: Vec<String> = applied
        .iter()
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    match format {
        Format::Json => crate::output::print_json(&json!({
            "store": redact(&config.store.url),
            "applied": versions,
        }))?,
        Format::Text if versions.is_empty() => {
            println!("{}: up to date", redact(&config.store.url));
        }
        Format::Text => {
            for v in &versions {
                println!("applied {v}");
            }
        }
    }
    Ok(crate::EXIT_OK)
}

pub(crate) fn run_token(args: TokenArgs, format: Format) -> Result<u8> {
    let config = args.store.serve_config()?;
    let runtime = crate::runtime::with_threads(1)?;
    runtime.block_on(async {
        let store = args.store.open(&config).await?;
        let change = Change::new(actor(), time::OffsetDateTime::now_utc());
        match args.action {
            TokenAction::Create { name, domains } => {
                let scope = if domains.is_empty() {
                    TokenScope::All
                } else {
                    let list = domains
                        .iter()
                        .map(|d| mtasts_server::domains::normalize_domain(d))
                        .collect::<Result<Vec<_>, _>>()?;
                    TokenScope::Domains(list)
                };
                let made = store.create_token(&name, &scope, &change).await?;
                match format {
                    Format::Json => crate::output::print_json(&json!({
                        "name": made.token.name,
                        "secret": made.secret.expose(),
                        "domains": scope_list(&made.token.scope),
                    }))?,
                    Format::Text => {
                        println!("{}", made.secret.expose());
                        eprintln!(
                            "token {:?} made; the secret above is shown only now (Authorization: Bearer <secret>, or MTASTS_TOKEN)",
                            made.token.name
                        );
                    }
                }
            }
            TokenAction::List => {
                let tokens = store.tokens().await?;
                match format {
                    Format::Json => {
                        let list: Vec<_> = tokens
                            .iter()
                            .map(|t| json!({ "name": t.name, "domains": scope_list(&t.scope), "created_by": t.created_by }))
                            .collect();
                        crate::output::print_json(&json!({ "tokens": list }))?;
                    }
                    Format::Text => {
                        for t in &tokens {
                            let scope = match &t.scope {
                                TokenScope::All => "all domains".to_owned(),
                                TokenScope::Domains(d) => d.join(", "),
                            };
                            println!("{}\t{}", mtasts_core::text::escape(&t.name), scope);
                        }
                    }
                }
            }
            TokenAction::Revoke { name } => {
                store.revoke_token(&name, &change).await?;
                match format {
                    Format::Json => crate::output::print_json(&json!({ "revoked": name }))?,
                    Format::Text => println!("token {} revoked", mtasts_core::text::escape(&name)),
                }
            }
        }
        store.close().await;
        Ok(crate::EXIT_OK)
    })
}

fn scope_list(scope: &TokenScope) -> Option<&[String]> {
    match scope {
        TokenScope::All => None,
        TokenScope::Domains(d) => Some(d),
    }
}
