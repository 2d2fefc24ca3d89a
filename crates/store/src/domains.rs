//! Hosted domains, their policies (every one ever published) and their rollout state.
//!
//! The rollout state machine is pure and lives in mtasts-core; the store keeps its state as data
//! (a state name and when it was entered) and records every transition with its reason. Two
//! facts the safe removal needs (RFC 8461 §8.3) are kept by the store itself on every publish,
//! so no caller can forget them: the longest `max_age` of any non-`none` policy published, and
//! when the last non-`none` policy stopped being served.

use mtasts_core::name::MxPattern;
use mtasts_core::policy::{MAX_POLICY_SIZE, Mode, parse_policy};
use serde_json::json;
use time::OffsetDateTime;

use crate::db::{AuditRecord, Backend, WriteTx, on_backend};
use crate::error::is_unique_violation;
use crate::{Change, Error, MAX_REASON, MAX_SHORT, Store, check_domain, check_text, from_unix};

/// A policy to publish. The store checks that `text` is a valid policy saying exactly `mode`,
/// `max_age` and `mx`; the id is the caller's (derived from the canonical content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPolicy {
    /// The canonical policy file, as served (CRLF line ends).
    pub text: String,
    /// The policy id published in the `_mta-sts` TXT record (1 to 32 letters and digits).
    pub id: String,
    /// The mode `text` states.
    pub mode: Mode,
    /// The max_age `text` states.
    pub max_age: u32,
    /// The MX patterns `text` states, in its order.
    pub mx: Vec<String>,
}

/// A published policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    /// Its place in the store's history (rises with every publication).
    pub seq: i64,
    /// The canonical policy file.
    pub text: String,
    /// The policy id.
    pub id: String,
    /// Its mode.
    pub mode: Mode,
    /// Its max_age.
    pub max_age: u32,
    /// Its MX patterns.
    pub mx: Vec<String>,
    /// When it was published.
    pub published_at: OffsetDateTime,
}

/// The rollout state of a domain, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// The state's name, as the rollout state machine spells it.
    pub state: String,
    /// When that state was entered.
    pub state_since: OffsetDateTime,
    /// The longest max_age of any non-`none` policy ever published for the domain: how long a
    /// sender may still hold one after it stopped being served.
    pub longest_max_age: u32,
    /// When a `none` policy replaced the last non-`none` one; `None` while a non-`none` policy
    /// is being served.
    pub non_none_ended_at: Option<OffsetDateTime>,
}

/// How the owner delegated a domain to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delegation {
    /// Only `mta-sts.<domain>` points at us; the owner publishes `_mta-sts.<domain>` and
    /// `_smtp._tls.<domain>` in their own zone (we say what to publish and watch for drift).
    #[default]
    Host,
    /// `_mta-sts.<domain>` and `_smtp._tls.<domain>` are CNAMEs into a zone we control, where we
    /// publish their TXT records by RFC 2136 update.
    Full,
}

impl Delegation {
    /// `"host"` or `"full"`, as stored and as the CLI and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Full => "full",
        }
    }

    /// The model a name spells, if any.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "host" => Some(Self::Host),
            "full" => Some(Self::Full),
            _ => None,
        }
    }
}

/// A hosted domain with its current policy and rollout state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedDomain {
    /// The domain (policies are served at `mta-sts.<name>`).
    pub name: String,
    /// When it was added.
    pub created_at: OffsetDateTime,
    /// When it last changed (policy or rollout state).
    pub updated_at: OffsetDateTime,
    /// The policy served now.
    pub policy: StoredPolicy,
    /// The rollout state.
    pub rollout: Rollout,
    /// How the owner delegated it.
    pub delegation: Delegation,
}

/// A rollout transition to record, decided by the rollout state machine (or forced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state the decision was made from; the store refuses the transition
    /// ([`Error::StateChanged`]) when the domain is no longer in it.
    pub from: String,
    /// The state entered.
    pub to: String,
    /// Why (the machine's reason, or the operator's with `--force`).
    pub reason: String,
    /// Whether a gate was overridden (`--force`).
    pub forced: bool,
    /// What the decision rested on (e.g. the live check's summary), for the record.
    pub evidence: Option<String>,
    /// The policy served from now on, when the transition changes it.
    pub policy: Option<NewPolicy>,
}

/// A recorded rollout transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRecord {
    /// The state left (`None` for the first state, when the domain was added).
    pub from: Option<String>,
    /// The state entered.
    pub to: String,
    /// When.
    pub at: OffsetDateTime,
    /// Who.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// Whether a gate was overridden.
    pub forced: bool,
    /// What the decision rested on.
    pub evidence: Option<String>,
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
    seq: i64,
    policy_id: String,
    mode: String,
    max_age: i64,
    mx: String,
    text: String,
    published_at: i64,
}

#[derive(sqlx::FromRow)]
struct DomainRow {
    name: String,
    created_at: i64,
    updated_at: i64,
    state: String,
    state_since: i64,
    longest_max_age: i64,
    non_none_ended_at: Option<i64>,
    delegation: String,
    #[sqlx(flatten)]
    policy: PolicyRow,
}

#[derive(sqlx::FromRow)]
struct TransitionRow {
    from_state: Option<String>,
    to_state: String,
    at: i64,
    actor: String,
    reason: String,
    forced: bool,
    evidence: Option<String>,
}

/// A domain joined with its current policy (the highest `policies.id` of the domain).
macro_rules! select_domains {
    () => {
        "SELECT d.name, d.created_at, d.updated_at, d.state, d.state_since, d.longest_max_age, \
         d.non_none_ended_at, d.delegation, p.id AS seq, p.policy_id, p.mode, p.max_age, p.mx, p.text, \
         p.published_at \
         FROM domains d JOIN policies p \
         ON p.id = (SELECT MAX(id) FROM policies WHERE domain = d.name)"
    };
}

const POLICY_COLUMNS: &str = "id AS seq, policy_id, mode, max_age, mx, text, published_at";

/// Largest evidence text kept with a transition.
const MAX_EVIDENCE: usize = 64 * 1024;

impl Store {
    /// Adds `domain`, serving `policy`, in rollout state `state`. Records the first transition
    /// (from no state) with the change's reason, and the audit entry.
    ///
    /// # Errors
    /// [`Error::DomainExists`]; [`Error::Invalid`] for a malformed domain, policy or state;
    /// [`Error::Database`].
    pub async fn add_domain(
        &self,
        domain: &str,
        policy: &NewPolicy,
        state: &str,
        change: &Change,
    ) -> Result<HostedDomain, Error> {
        self.add_domain_delegated(domain, policy, state, Delegation::Host, change)
            .await
    }

    /// [`Store::add_domain`] with the owner's delegation model, in the same transaction.
    ///
    /// # Errors
    /// As [`Store::add_domain`].
    pub async fn add_domain_delegated(
        &self,
        domain: &str,
        policy: &NewPolicy,
        state: &str,
        delegation: Delegation,
        change: &Change,
    ) -> Result<HostedDomain, Error> {
        check_domain(domain)?;
        check_policy(policy)?;
        check_text("state", state, 1, MAX_SHORT)?;
        change.check()?;
        let at = change.at_unix();
        let mut tx = WriteTx::begin(&self.pools).await?;
        let inserted = on_backend!(&mut tx.tx, c =>
            sqlx::query(
                "INSERT INTO domains (name, created_at, state, state_since, longest_max_age, \
                 non_none_ended_at, updated_at, delegation) \
                 VALUES ($1, $2, $3, $2, 0, NULL, $2, $4)",
            )
            .bind(domain)
            .bind(at)
            .bind(state)
            .bind(delegation.as_str())
            .execute(&mut **c)
            .await
            .map(|_| ())
        );
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::DomainExists {
                    domain: domain.to_owned(),
                });
            }
            other => other?,
        }
        insert_policy(&mut tx, domain, policy, at).await?;
        let reason = change.reason.as_deref().unwrap_or("added");
        insert_transition(&mut tx, domain, None, state, reason, false, None, change).await?;
        let hosted = fetch_domain(&mut tx, domain).await?;
        let detail = json!({
            "state": state,
            "delegation": delegation.as_str(),
            "policy": policy_detail(policy),
        });
        tx.commit(change, audit("domain.add", domain, detail))
            .await?;
        Ok(hosted)
    }

    /// Publishes `policy` for `domain` without changing its rollout state (e.g. a new MX set),
    /// when the policy served is still `expected_id`: the new policy was decided from that one,
    /// and a promotion or rollback committed meanwhile must not be undone by it.
    ///
    /// # Errors
    /// [`Error::UnknownDomain`]; [`Error::StateChanged`] when another policy is served now
    /// (nothing is written); [`Error::Invalid`]; [`Error::Database`].
    pub async fn set_policy(
        &self,
        domain: &str,
        expected_id: &str,
        policy: &NewPolicy,
        change: &Change,
    ) -> Result<HostedDomain, Error> {
        check_domain(domain)?;
        check_policy(policy)?;
        change.check()?;
        let mut tx = WriteTx::begin(&self.pools).await?;
        lock_state(&mut tx, domain).await?;
        let current = fetch_domain(&mut tx, domain).await?;
        if current.policy.id != expected_id {
            return Err(Error::StateChanged {
                domain: domain.to_owned(),
                expected: format!("policy {expected_id}"),
                actual: format!("policy {}", current.policy.id),
            });
        }
        insert_policy(&mut tx, domain, policy, change.at_unix()).await?;
        let hosted = fetch_domain(&mut tx, domain).await?;
        let detail = json!({ "policy": policy_detail(policy) });
        tx.commit(change, audit("policy.set", domain, detail))
            .await?;
        Ok(hosted)
    }

    /// Records a rollout transition, publishing its policy if it has one, when the domain is
    /// still in `transition.from`. Every transition starts a stage, so `state_since` becomes
    /// its time even when the state's name stays (`enforce` step 1 to step 2): each step's
    /// minimum time counts from its own start.
    ///
    /// # Errors
    /// [`Error::UnknownDomain`]; [`Error::StateChanged`] when the state is no longer
    /// `transition.from` (nothing is written); [`Error::Invalid`]; [`Error::Database`].
    pub async fn transition(
        &self,
        domain: &str,
        transition: &Transition,
        change: &Change,
    ) -> Result<HostedDomain, Error> {
        check_domain(domain)?;
        check_text("state", &transition.from, 1, MAX_SHORT)?;
        check_text("state", &transition.to, 1, MAX_SHORT)?;
        check_text("transition reason", &transition.reason, 1, MAX_REASON)?;
        if let Some(evidence) = &transition.evidence {
            check_text("evidence", evidence, 0, MAX_EVIDENCE)?;
        }
        if let Some(policy) = &transition.policy {
            check_policy(policy)?;
        }
        change.check()?;
        let at = change.at_unix();
        let mut tx = WriteTx::begin(&self.pools).await?;
        let actual = lock_state(&mut tx, domain).await?;
        if actual != transition.from {
            return Err(Error::StateChanged {
                domain: domain.to_owned(),
                expected: transition.from.clone(),
                actual,
            });
        }
        on_backend!(&mut tx.tx, c =>
            sqlx::query(
                "UPDATE domains SET state = $2, updated_at = $3, state_since = $3 \
                 WHERE name = $1",
            )
            .bind(domain)
            .bind(&transition.to)
            .bind(at)
            .execute(&mut **c)
            .await?
            .rows_affected()
        );
        if let Some(policy) = &transition.policy {
            insert_policy(&mut tx, domain, policy, at).await?;
        }
        insert_transition(
            &mut tx,
            domain,
            Some(&transition.from),
            &transition.to,
            &transition.reason,
            transition.forced,
            transition.evidence.as_deref(),
            change,
        )
        .await?;
        let hosted = fetch_domain(&mut tx, domain).await?;
        let detail = json!({
            "from": transition.from,
            "to": transition.to,
            "reason": transition.reason,
            "forced": transition.forced,
            "policy": transition.policy.as_ref().map(policy_detail),
        });
        tx.commit(change, audit("rollout.transition", domain, detail))
            .await?;
        Ok(hosted)
    }

    /// Removes `domain` with its policies, transitions, certificate and drift events; the audit
    /// history keeps the record. Whether removal is safe yet is the rollout machine's call.
    ///
    /// # Errors
    /// [`Error::UnknownDomain`]; [`Error::Database`].
    pub async fn remove_domain(&self, domain: &str, change: &Change) -> Result<(), Error> {
        check_domain(domain)?;
        change.check()?;
        let mut tx = WriteTx::begin(&self.pools).await?;
        let state = lock_state(&mut tx, domain).await?;
        on_backend!(&mut tx.tx, c =>
            sqlx::query("DELETE FROM domains WHERE name = $1")
                .bind(domain)
                .execute(&mut **c)
                .await?
            .rows_affected()
        );
        let detail = json!({ "state": state });
        tx.commit(change, audit("domain.remove", domain, detail))
            .await?;
        Ok(())
    }

    /// The hosted domain `domain`, or `None` when it is not hosted.
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn domain(&self, domain: &str) -> Result<Option<HostedDomain>, Error> {
        let row = on_backend!(self.pools.reader(), p =>
            sqlx::query_as::<_, DomainRow>(concat!(select_domains!(), " WHERE d.name = $1"))
                .bind(domain)
                .fetch_optional(p)
                .await?
        );
        row.map(DomainRow::into_domain).transpose()
    }

    /// Every hosted domain, by name.
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn domains(&self) -> Result<Vec<HostedDomain>, Error> {
        let rows = on_backend!(self.pools.reader(), p =>
            sqlx::query_as::<_, DomainRow>(concat!(select_domains!(), " ORDER BY d.name"))
                .fetch_all(p)
                .await?
        );
        rows.into_iter().map(DomainRow::into_domain).collect()
    }

    /// Every policy published for `domain`, oldest first (empty when it is not hosted).
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn policy_history(&self, domain: &str) -> Result<Vec<StoredPolicy>, Error> {
        let sql = format!("SELECT {POLICY_COLUMNS} FROM policies WHERE domain = $1 ORDER BY id");
        let rows = on_backend!(self.pools.reader(), p =>
            sqlx::query_as::<_, PolicyRow>(sqlx::AssertSqlSafe(sql))
                .bind(domain)
                .fetch_all(p)
                .await?
        );
        rows.into_iter().map(PolicyRow::into_policy).collect()
    }

    /// Every rollout transition of `domain`, oldest first (empty when it is not hosted).
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn transitions(&self, domain: &str) -> Result<Vec<TransitionRecord>, Error> {
        let rows = on_backend!(self.pools.reader(), p =>
            sqlx::query_as::<_, TransitionRow>(
                "SELECT from_state, to_state, at, actor, reason, forced, evidence \
                 FROM rollout_transitions WHERE domain = $1 ORDER BY id",
            )
            .bind(domain)
            .fetch_all(p)
            .await?
        );
        rows.into_iter()
            .map(|r| {
                Ok(TransitionRecord {
                    from: r.from_state,
                    to: r.to_state,
                    at: from_unix("transition time", r.at)?,
                    actor: r.actor,
                    reason: r.reason,
                    forced: r.forced,
                    evidence: r.evidence,
                })
            })
            .collect()
    }
}

fn audit<'a>(action: &'static str, domain: &'a str, detail: serde_json::Value) -> AuditRecord<'a> {
    AuditRecord {
        action,
        domain: Some(domain),
        detail,
    }
}

fn policy_detail(p: &NewPolicy) -> serde_json::Value {
    json!({ "id": p.id, "mode": p.mode.as_str(), "max_age": p.max_age, "mx": p.mx })
}

/// Checks that `policy.text` is a valid policy stating exactly the other fields.
fn check_policy(policy: &NewPolicy) -> Result<(), Error> {
    let id = &policy.id;
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::invalid(
            "policy id",
            format!("{id:?}: an id is 1 to 32 letters and digits (RFC 8461 §3.1)"),
        ));
    }
    if policy.text.len() > MAX_POLICY_SIZE {
        return Err(Error::invalid("policy", "larger than 64 KiB"));
    }
    let parsed = parse_policy(policy.text.as_bytes());
    let (Some(stated), true) = (&parsed.policy, parsed.is_valid()) else {
        return Err(Error::invalid("policy", "the text is not a valid policy"));
    };
    let mx = policy
        .mx
        .iter()
        .map(|m| MxPattern::parse_strict(m))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Error::invalid("policy", "an mx pattern is not valid"))?;
    if stated.mode != policy.mode || stated.max_age != policy.max_age || stated.mx != mx {
        return Err(Error::invalid(
            "policy",
            "the text states another mode, max_age or mx list than given",
        ));
    }
    Ok(())
}

/// Locks the domain's row for the rest of the transaction and returns its state.
async fn lock_state(tx: &mut WriteTx, domain: &str) -> Result<String, Error> {
    // SQLite's write transaction (BEGIN IMMEDIATE) already excludes other writers.
    let state: Option<String> = match &mut tx.tx {
        Backend::Sqlite(c) => {
            sqlx::query_scalar("SELECT state FROM domains WHERE name = $1")
                .bind(domain)
                .fetch_optional(&mut **c)
                .await?
        }
        Backend::Postgres(c) => {
            sqlx::query_scalar("SELECT state FROM domains WHERE name = $1 FOR UPDATE")
                .bind(domain)
                .fetch_optional(&mut **c)
                .await?
        }
    };
    state.ok_or_else(|| Error::UnknownDomain {
        domain: domain.to_owned(),
    })
}

/// Appends `policy` to the domain's history and keeps the rollout's removal facts.
async fn insert_policy(
    tx: &mut WriteTx,
    domain: &str,
    policy: &NewPolicy,
    at: i64,
) -> Result<(), Error> {
    let mx = serde_json::to_string(&policy.mx).expect("strings serialise");
    let non_none = policy.mode != Mode::None;
    on_backend!(&mut tx.tx, c => {
        // non_none_ended_at is NULL while a non-none policy is served: a none policy replacing
        // one (or a domain added with none) sets it, a non-none one clears it.
        sqlx::query(
            "UPDATE domains SET updated_at = $2, \
             longest_max_age = CASE WHEN $3 AND $4 > longest_max_age THEN $4 \
                                    ELSE longest_max_age END, \
             non_none_ended_at = CASE WHEN $3 THEN NULL \
                                      WHEN non_none_ended_at IS NULL THEN $2 \
                                      ELSE non_none_ended_at END \
             WHERE name = $1",
        )
        .bind(domain)
        .bind(at)
        .bind(non_none)
        .bind(i64::from(policy.max_age))
        .execute(&mut **c)
        .await?;
        sqlx::query(
            "INSERT INTO policies (domain, policy_id, mode, max_age, mx, text, published_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(domain)
        .bind(&policy.id)
        .bind(policy.mode.as_str())
        .bind(i64::from(policy.max_age))
        .bind(&mx)
        .bind(&policy.text)
        .bind(at)
        .execute(&mut **c)
        .await?;
    });
    Ok(())
}

#[allow(clippy::too_many_arguments, reason = "one row's columns, all required")]
async fn insert_transition(
    tx: &mut WriteTx,
    domain: &str,
    from: Option<&str>,
    to: &str,
    reason: &str,
    forced: bool,
    evidence: Option<&str>,
    change: &Change,
) -> Result<(), Error> {
    on_backend!(&mut tx.tx, c =>
        sqlx::query(
            "INSERT INTO rollout_transitions \
             (domain, from_state, to_state, at, actor, reason, forced, evidence) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(domain)
        .bind(from)
        .bind(to)
        .bind(change.at_unix())
        .bind(&change.actor)
        .bind(reason)
        .bind(forced)
        .bind(evidence)
        .execute(&mut **c)
        .await?
            .rows_affected()
    );
    Ok(())
}

/// The domain as the transaction sees it.
async fn fetch_domain(tx: &mut WriteTx, domain: &str) -> Result<HostedDomain, Error> {
    let row = on_backend!(&mut tx.tx, c =>
        sqlx::query_as::<_, DomainRow>(concat!(select_domains!(), " WHERE d.name = $1"))
            .bind(domain)
            .fetch_one(&mut **c)
            .await?
    );
    row.into_domain()
}

impl PolicyRow {
    fn into_policy(self) -> Result<StoredPolicy, Error> {
        let corrupt = |what: &str| Error::Corrupt {
            what: format!("policy {} {what}", self.seq),
        };
        Ok(StoredPolicy {
            seq: self.seq,
            mode: Mode::from_keyword(&self.mode).ok_or_else(|| corrupt("mode"))?,
            max_age: u32::try_from(self.max_age).map_err(|_| corrupt("max_age"))?,
            mx: serde_json::from_str(&self.mx).map_err(|_| corrupt("mx"))?,
            published_at: from_unix("publication time", self.published_at)?,
            text: self.text,
            id: self.policy_id,
        })
    }
}

impl DomainRow {
    fn into_domain(self) -> Result<HostedDomain, Error> {
        Ok(HostedDomain {
            created_at: from_unix("creation time", self.created_at)?,
            updated_at: from_unix("update time", self.updated_at)?,
            rollout: Rollout {
                state: self.state,
                state_since: from_unix("state time", self.state_since)?,
                longest_max_age: u32::try_from(self.longest_max_age).map_err(|_| {
                    Error::Corrupt {
                        what: format!("longest max_age of {}", self.name),
                    }
                })?,
                non_none_ended_at: self
                    .non_none_ended_at
                    .map(|t| from_unix("non-none end", t))
                    .transpose()?,
            },
            delegation: Delegation::parse(&self.delegation).ok_or_else(|| Error::Corrupt {
                what: format!("delegation {:?} of {}", self.delegation, self.name),
            })?,
            policy: self.policy.into_policy()?,
            name: self.name,
        })
    }
}
