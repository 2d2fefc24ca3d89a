//! The shared Redis tier: several MTAs' resolvers share what each one fetched.
//!
//! - On a cold miss (nothing in memory), the engine asks Redis before the network; a policy
//!   another resolver fetched is used at once, with its own expiry.
//! - Every policy fetched is written with a Redis expiry equal to its remaining `max_age`; a
//!   domain that drops its policy is deleted.
//! - Redis is never on the path of a cached answer, and a slow or dead Redis costs a cold miss at
//!   most [`REDIS_TIMEOUT`]: errors are logged, counted, and the engine goes to the network.
//!
//! Keys are `mtasts:sts:<domain>` ([`DEFAULT_PREFIX`]); the value is `id LF expires_unix LF body`.

use crate::cache_file::PersistedPolicy;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// Longest wait for one Redis command.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// The key prefix used by [`RedisTier::connect`].
pub const DEFAULT_PREFIX: &str = "mtasts:sts:";

/// A connection to the shared tier. Cheap to clone.
#[derive(Clone)]
pub struct RedisTier {
    conn: ConnectionManager,
    url: String,
    prefix: String,
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("url", &redact(&self.url))
            .finish_non_exhaustive()
    }
}

/// A Redis failure, with the (password-free) URL.
#[derive(Debug, thiserror::Error)]
#[error("redis {url}: {source}")]
pub struct RedisError {
    url: String,
    #[source]
    source: redis::RedisError,
}

impl RedisTier {
    /// Connects to `url` (`redis://[:password@]host[:port][/db]`, `rediss://` is not built in);
    /// reconnects by itself later.
    pub async fn connect(url: &str) -> Result<Self, RedisError> {
        Self::connect_with_prefix(url, DEFAULT_PREFIX).await
    }

    /// [`RedisTier::connect`] with another key prefix (several deployments, or tests, sharing
    /// one Redis).
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<Self, RedisError> {
        let err = |source| RedisError {
            url: redact(url),
            source,
        };
        let client = redis::Client::open(url).map_err(err)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(2);
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(err)?;
        Ok(Self {
            conn,
            url: url.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The domain's policy, if another resolver stored one; `None` on any error.
    pub async fn get(&self, domain: &str) -> Option<PersistedPolicy> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("GET")
            .arg(format!("{}{domain}", self.prefix))
            .to_owned();
        let value: Option<Vec<u8>> =
            match tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async(&mut conn)).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    tracing::warn!(url = %redact(&self.url), error = %e, "redis GET failed");
                    return None;
                }
                Err(_) => {
                    tracing::warn!(url = %redact(&self.url), "redis GET timed out");
                    return None;
                }
            };
        decode(domain, &value?)
    }

    /// Stores `p` until it expires.
    pub async fn put(&self, p: &PersistedPolicy) -> Result<(), RedisError> {
        let ttl = p.expires_unix - crate::engine::unix_now();
        if ttl <= 0 {
            return Ok(());
        }
        let value = format!("{}\n{}\n{}", p.id, p.expires_unix, p.body);
        let cmd = redis::cmd("SET")
            .arg(format!("{}{}", self.prefix, p.domain))
            .arg(value)
            .arg("EX")
            .arg(ttl)
            .to_owned();
        self.run(cmd).await
    }

    /// Forgets the domain's policy.
    pub async fn delete(&self, domain: &str) -> Result<(), RedisError> {
        self.run(
            redis::cmd("DEL")
                .arg(format!("{}{domain}", self.prefix))
                .to_owned(),
        )
        .await
    }

    async fn run(&self, cmd: redis::Cmd) -> Result<(), RedisError> {
        let mut conn = self.conn.clone();
        let err = |source| RedisError {
            url: redact(&self.url),
            source,
        };
        match tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<()>(&mut conn)).await {
            Ok(r) => r.map_err(err),
            Err(_) => Err(err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "no answer in time",
            )))),
        }
    }
}

/// `id LF expires LF body`; anything else is ignored (another program's key, a partial write).
fn decode(domain: &str, v: &[u8]) -> Option<PersistedPolicy> {
    let text = std::str::from_utf8(v).ok()?;
    let (id, rest) = text.split_once('\n')?;
    let (expires, body) = rest.split_once('\n')?;
    Some(PersistedPolicy {
        domain: domain.to_owned(),
        id: id.to_owned(),
        body: body.to_owned(),
        expires_unix: expires.parse().ok()?,
    })
}

/// The URL without its password, for logs and errors.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_junk_is_ignored() {
        let p = decode(
            "example.com",
            b"id1\n1900000000\nversion: STSv1\nmode: enforce\n",
        )
        .unwrap();
        assert_eq!((p.id.as_str(), p.expires_unix), ("id1", 1_900_000_000));
        assert_eq!(p.body, "version: STSv1\nmode: enforce\n");
        assert!(decode("x", b"garbage").is_none());
        assert!(decode("x", b"id\nnot-a-number\nbody").is_none());
        assert!(decode("x", &[0xff, b'\n', b'1', b'\n']).is_none());
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redact("redis://:secret@10.0.0.1:6379/2"),
            "redis://***@10.0.0.1:6379/2"
        );
        assert_eq!(redact("redis://127.0.0.1"), "redis://127.0.0.1");
    }
}
