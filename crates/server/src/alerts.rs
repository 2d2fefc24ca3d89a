//! Alerts on TLS-RPT reports (`[alerts]`; decisions D56): every `interval` the stored reports
//! are evaluated ([`mtasts_intake::alerts::evaluate`]); a condition that starts (failures over
//! the threshold, reports stopped) is announced once by webhook and e-mail, and again only
//! after it has ended and `cooldown` has passed (one incident, one alert); its end is announced
//! too ("resolved"); and once a day, after `digest_hour` (UTC), a digest of every domain's last
//! day and fortnight goes out.
//!
//! Several instances on one store send each notification once: each is claimed in the store
//! before it is sent ([`mtasts_store::Store::claim_alert`]) and released when it could not be
//! sent, so that the next round tries again.
//!
//! Delivery: a webhook `POST`s JSON (`{"kind", "domain", "text", "condition"}`; http or https,
//! the Mozilla roots plus `webhook_ca`), 10 s at most; e-mail goes as plain text through
//! `smtp_relay` (plain SMTP, no authentication: a local relay such as Postfix on loopback),
//! 30 s at most.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mtasts_intake::alerts::{AlertRules, Condition, evaluate};
use mtasts_store::Store;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::config::secs;

/// The `[alerts]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertConfig {
    /// A URL every notification is `POST`ed to as JSON; `""`: none.
    pub webhook: String,
    /// A PEM file of CA certificates trusted for the webhook, beside the Mozilla roots.
    pub webhook_ca: Option<std::path::PathBuf>,
    /// Where e-mail notifications go; empty: none.
    pub email_to: Vec<String>,
    /// The sender of e-mail notifications. Default `mtasts@localhost`.
    pub email_from: String,
    /// The SMTP relay (`HOST:PORT`) e-mail is handed to; required with `email_to`.
    pub smtp_relay: String,
    /// Seconds between evaluations. Default 300.
    #[serde(deserialize_with = "secs")]
    pub interval: Duration,
    /// Seconds after an alert before the same condition of the same domain is announced
    /// again, once it has ended. Default 86,400.
    #[serde(deserialize_with = "secs")]
    pub cooldown: Duration,
    /// Report days the failure rate is taken over. Default 2.
    pub window_days: u32,
    /// The failure rate that makes an alert. Default 0.01.
    pub failure_rate: f64,
    /// The fewest failed sessions that make an alert. Default 10.
    pub min_failed_sessions: u64,
    /// Days without reports after which a domain that used to get them is announced.
    /// Default 3.
    pub stopped_after_days: u32,
    /// The UTC hour after which the daily digest goes out; absent: no digest. Default 7.
    pub digest_hour: Option<u8>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        let r = AlertRules::default();
        Self {
            webhook: String::new(),
            webhook_ca: None,
            email_to: Vec::new(),
            email_from: "mtasts@localhost".into(),
            smtp_relay: String::new(),
            interval: Duration::from_secs(300),
            cooldown: Duration::from_secs(86_400),
            window_days: r.window_days,
            failure_rate: r.failure_rate,
            min_failed_sessions: r.min_failed_sessions,
            stopped_after_days: r.stopped_after_days,
            digest_hour: Some(7),
        }
    }
}

impl AlertConfig {
    /// Alerts are on when they have somewhere to go.
    pub fn enabled(&self) -> bool {
        !self.webhook.is_empty() || !self.email_to.is_empty()
    }

    /// Checks what serde cannot.
    ///
    /// # Errors
    /// A description of the first bad value.
    pub fn validate(&self) -> Result<(), String> {
        let web = &self.webhook;
        if !(web.is_empty() || web.starts_with("https://") || web.starts_with("http://")) {
            return Err(format!(
                "alerts.webhook {:?}: expected an http(s) URL",
                self.webhook
            ));
        }
        if !self.email_to.is_empty() && self.smtp_relay.is_empty() {
            return Err("alerts.email_to needs alerts.smtp_relay (HOST:PORT)".into());
        }
        for a in self
            .email_to
            .iter()
            .chain(std::iter::once(&self.email_from))
        {
            if !a.contains('@')
                || a.len() > 254
                || a.chars()
                    .any(|c| c.is_control() || c == '<' || c == '>' || c == ' ')
            {
                return Err(format!("alerts: {a:?} is not an e-mail address"));
            }
        }
        if self.interval.is_zero() || self.window_days == 0 || self.stopped_after_days == 0 {
            return Err("alerts.interval, window_days and stopped_after_days must not be 0".into());
        }
        if !(self.failure_rate > 0.0 && self.failure_rate <= 1.0) {
            return Err("alerts.failure_rate must be in (0, 1]".into());
        }
        if self.digest_hour.is_some_and(|h| h > 23) {
            return Err("alerts.digest_hour must be 0 to 23".into());
        }
        Ok(())
    }

    fn rules(&self) -> AlertRules {
        AlertRules {
            window_days: self.window_days,
            failure_rate: self.failure_rate,
            min_failed_sessions: self.min_failed_sessions,
            stopped_after_days: self.stopped_after_days,
            ..AlertRules::default()
        }
    }
}

/// The most conditions announced in one round; the rest wait for the next.
pub const MAX_CONDITIONS_PER_ROUND: usize = 100;

/// One notification to send.
struct Notice<'a> {
    domain: &'a str,
    kind: &'a str,
    subject: String,
    text: String,
    body: Value,
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// The alert loop of one instance.
pub struct Alerter {
    store: Store,
    cfg: AlertConfig,
    http: HttpClient,
}

impl std::fmt::Debug for Alerter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerter")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// What one round did (for the tests and the log).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    /// Notifications sent: `(kind, domain)`; kind `resolved-<kind>` for an end.
    pub sent: Vec<(String, String)>,
    /// Notifications that could not be sent (retried next round).
    pub failed: Vec<(String, String)>,
}

impl Alerter {
    /// An alerter on `store`.
    ///
    /// # Errors
    /// The webhook CA file cannot be read or holds no certificate.
    pub fn new(store: Store, cfg: AlertConfig) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &cfg.webhook_ca {
            use rustls::pki_types::pem::PemObject;
            let pem = std::fs::read(path)
                .map_err(|e| format!("alerts.webhook_ca {}: {e}", path.display()))?;
            let mut added = 0;
            for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                let c = c.map_err(|e| format!("alerts.webhook_ca: {e}"))?;
                roots
                    .add(c)
                    .map_err(|e| format!("alerts.webhook_ca: {e}"))?;
                added += 1;
            }
            if added == 0 {
                return Err(format!(
                    "alerts.webhook_ca {}: no CERTIFICATE",
                    path.display()
                ));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        Ok(Self { store, cfg, http })
    }

    /// Runs rounds every `interval` until `stop` completes.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            match self.round(OffsetDateTime::now_utc()).await {
                Ok(r) if !r.sent.is_empty() || !r.failed.is_empty() => {
                    tracing::info!(sent = ?r.sent, failed = ?r.failed, "alerts");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "alerts: the store could not be read"),
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(self.cfg.interval) => {}
            }
        }
    }

    /// One evaluation at `now`: announces what started and what ended, and the digest when
    /// it is due.
    ///
    /// # Errors
    /// The store could not be read (nothing was sent).
    pub async fn round(&self, now: OffsetDateTime) -> Result<Round, mtasts_store::Error> {
        let rules = self.cfg.rules();
        let today = now.date();
        let first = rules.first_day(today).midnight().assume_utc();
        let days = self.store.report_days(None, first).await?;
        let window = (today - time::Duration::days(i64::from(rules.window_days - 1)))
            .midnight()
            .assume_utc();
        let failures = self.store.report_failures(None, window).await?;
        let mut days = days;
        let mut holding = evaluate(&days, &failures, today, &rules);
        // Only the domains hosted here (when any is): an accepted report may carry policies
        // for any other name, and those must not make alerts or digest lines.
        let hosted: std::collections::HashSet<String> = self
            .store
            .domains()
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect();
        if !hosted.is_empty() {
            holding.retain(|c| hosted.contains(c.domain()));
            days.retain(|d| hosted.contains(&d.policy_domain));
        }
        holding.truncate(MAX_CONDITIONS_PER_ROUND);
        let states = self.store.alert_states().await?;
        let mut round = Round::default();
        let cooldown = time::Duration::try_from(self.cfg.cooldown).unwrap_or(time::Duration::DAY);
        for c in &holding {
            let detail = serde_json::to_string(c).unwrap_or_default();
            let body = json!({
                "kind": c.kind(), "domain": c.domain(), "text": c.text(),
                "condition": serde_json::to_value(c).unwrap_or(Value::Null),
            });
            let n = Notice {
                domain: c.domain(),
                kind: c.kind(),
                subject: format!("[mtasts] {}: {}", c.kind(), c.domain()),
                text: c.text(),
                body,
            };
            self.notify(&n, &states, now, now - cooldown, true, &detail, &mut round)
                .await?;
        }
        for s in states.iter().filter(|s| s.active && s.kind != "digest") {
            if holding
                .iter()
                .any(|c| c.domain() == s.domain && c.kind() == s.kind)
                || round
                    .sent
                    .iter()
                    .any(|(k, d)| *d == s.domain && k.starts_with("resolved-"))
            {
                continue;
            }
            if self.store.resolve_alert(&s.domain, &s.kind).await? {
                let text = match s.kind.as_str() {
                    "failures" => {
                        format!("{}: TLS failures are back under the threshold", s.domain)
                    }
                    _ => format!("{}: TLS-RPT reports arrive again", s.domain),
                };
                let body = json!({"kind": format!("resolved-{}", s.kind), "domain": s.domain, "text": text});
                let subject = format!("[mtasts] resolved {}: {}", s.kind, s.domain);
                // An end that could not be announced is not retried: the digest lists the
                // state of every domain.
                let key = (format!("resolved-{}", s.kind), s.domain.clone());
                let mut all = true;
                for ch in self.channels() {
                    all &= self.deliver(ch, &subject, &text, &body).await;
                }
                if all {
                    round.sent.push(key);
                } else {
                    round.failed.push(key);
                }
            }
        }
        if let Some(hour) = self.cfg.digest_hour
            && now.hour() >= hour
        {
            let (text, body) = digest(&days, &holding, today);
            let n = Notice {
                domain: "",
                kind: "digest",
                subject: format!("[mtasts] TLS-RPT digest for {today}"),
                text,
                body,
            };
            let since = today.midnight().assume_utc();
            self.notify(&n, &states, now, since, false, "", &mut round)
                .await?;
        }
        Ok(round)
    }

    /// The channels configured: `webhook`, `email`.
    fn channels(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.cfg.webhook.is_empty() {
            out.push("webhook");
        }
        if !self.cfg.email_to.is_empty() {
            out.push("email");
        }
        out
    }

    /// Claims and sends `n` on each channel on its own (a channel that fails is released and
    /// retried next round without repeating the others); records it in `round` once.
    #[allow(clippy::too_many_arguments, reason = "the claim's terms")]
    async fn notify(
        &self,
        n: &Notice<'_>,
        states: &[mtasts_store::AlertState],
        now: OffsetDateTime,
        sent_before: OffsetDateTime,
        once_while_active: bool,
        detail: &str,
        round: &mut Round,
    ) -> Result<(), mtasts_store::Error> {
        let (mut sent, mut failed) = (false, false);
        for ch in self.channels() {
            let previous = states
                .iter()
                .find(|s| s.domain == n.domain && s.kind == n.kind && s.channel == ch)
                .and_then(|s| s.last_sent_at);
            if !self
                .store
                .claim_alert(
                    n.domain,
                    n.kind,
                    ch,
                    now,
                    sent_before,
                    once_while_active,
                    detail,
                )
                .await?
            {
                continue;
            }
            if self.deliver(ch, &n.subject, &n.text, &n.body).await {
                sent = true;
            } else {
                self.store
                    .release_alert(n.domain, n.kind, ch, now, previous)
                    .await?;
                failed = true;
            }
        }
        let key = (n.kind.to_owned(), n.domain.to_owned());
        if sent {
            round.sent.push(key.clone());
        }
        if failed {
            round.failed.push(key);
        }
        Ok(())
    }

    /// Sends one notification on `channel`; true when it was taken.
    async fn deliver(&self, channel: &str, subject: &str, text: &str, body: &Value) -> bool {
        let ok = if channel == "webhook" {
            match tokio::time::timeout(Duration::from_secs(10), self.post(body)).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "alerts: webhook failed");
                    false
                }
                Err(_) => {
                    tracing::warn!("alerts: webhook did not answer within 10 s");
                    false
                }
            }
        } else {
            let mail = mail(&self.cfg.email_from, &self.cfg.email_to, subject, text);
            let send = send_mail(
                &self.cfg.smtp_relay,
                &self.cfg.email_from,
                &self.cfg.email_to,
                &mail,
            );
            match tokio::time::timeout(Duration::from_secs(30), send).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "alerts: e-mail failed");
                    false
                }
                Err(_) => {
                    tracing::warn!("alerts: the SMTP relay did not finish within 30 s");
                    false
                }
            }
        };
        if ok {
            metrics::counter!("mtasts_alerts_sent_total", "via" => channel.to_owned()).increment(1);
        } else {
            metrics::counter!("mtasts_alerts_failed_total", "via" => channel.to_owned())
                .increment(1);
        }
        ok
    }

    async fn post(&self, body: &Value) -> Result<(), String> {
        let req = hyper::Request::post(&self.cfg.webhook)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "mtasts-alerts")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let rsp = self.http.request(req).await.map_err(|e| e.to_string())?;
        let status = rsp.status();
        // Read (and drop) at most 64 KiB of the answer.
        let _ = http_body_util::Limited::new(rsp.into_body(), 64 * 1024)
            .collect()
            .await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the webhook answered {status}"))
        }
    }
}

/// The digest: per domain, the last day's and the fortnight's sessions, and what is active.
fn digest(
    days: &[mtasts_store::DayTotal],
    holding: &[Condition],
    today: time::Date,
) -> (String, Value) {
    use std::collections::BTreeMap;
    let yesterday = today - time::Duration::DAY;
    let fortnight = today - time::Duration::days(14);
    let mut by: BTreeMap<&str, [u64; 4]> = BTreeMap::new();
    for d in days
        .iter()
        .filter(|d| !d.policy_domain.is_empty() && d.day >= fortnight)
    {
        let e = by.entry(d.policy_domain.as_str()).or_default();
        if d.day >= yesterday {
            e[0] += d.success;
            e[1] += d.failure;
        }
        e[2] += d.success;
        e[3] += d.failure;
    }
    let mut text =
        format!("TLS-RPT digest for {today} (sessions: since yesterday / last 14 days)\n\n");
    let mut domains = Vec::new();
    for (domain, [s1, f1, s14, f14]) in &by {
        text.push_str(&format!(
            "{domain}: {f1} of {} failed / {f14} of {} failed\n",
            s1 + f1,
            s14 + f14
        ));
        domains.push(json!({"domain": domain, "success_1d": s1, "failure_1d": f1,
            "success_14d": s14, "failure_14d": f14}));
    }
    if !holding.is_empty() {
        text.push_str("\nNeeds attention:\n");
        for c in holding {
            text.push_str(&format!("- {}\n", c.text()));
        }
    }
    let body = json!({
        "kind": "digest", "domain": "", "text": text, "day": today.to_string(),
        "domains": domains,
        "conditions": holding.iter().map(|c| serde_json::to_value(c).unwrap_or(Value::Null)).collect::<Vec<_>>(),
    });
    (text, body)
}

/// A plain-text mail. Foreign text (domain names, reporters' strings) is in the body only;
/// the subject's is made one line.
fn mail(from: &str, to: &[String], subject: &str, text: &str) -> String {
    let subject: String = subject
        .chars()
        .map(|c| {
            if c.is_control() || !c.is_ascii() {
                '?'
            } else {
                c
            }
        })
        .take(200)
        .collect();
    let date = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let id = data_encoding::HEXLOWER.encode(
        &OffsetDateTime::now_utc()
            .unix_timestamp_nanos()
            .to_be_bytes(),
    );
    let mut body = String::new();
    for line in text.lines() {
        let mut line: String = line
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        // RFC 5321 §4.5.3.1.6: at most 998 bytes a line (a reporter's string can be longer).
        if line.len() > 997 {
            let mut end = 997;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
        }
        // Dot-stuffing (RFC 5321 §4.5.2).
        if line.starts_with('.') {
            body.push('.');
        }
        body.push_str(&line);
        body.push_str("\r\n");
    }
    format!(
        "From: {from}\r\nTo: {}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{id}@mtasts>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\
         Auto-Submitted: auto-generated\r\n\r\n{body}",
        to.join(", ")
    )
}

/// Hands `mail` (dot-stuffed, CRLF) to the relay at `relay` for `to`.
async fn send_mail(relay: &str, from: &str, to: &[String], mail: &str) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(relay)
        .await
        .map_err(|e| format!("cannot reach the SMTP relay {relay}: {e}"))?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    async fn reply(
        r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    ) -> Result<(u16, String), String> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = r.read_line(&mut line).await.map_err(|e| e.to_string())?;
            if n == 0 || all.len() > 64 * 1024 {
                return Err("the relay closed the connection".into());
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                return Ok((code, all.trim_end().to_owned()));
            }
        }
    }
    let expect = |got: (u16, String), want: u16, what: &str| {
        if got.0 == want {
            Ok(())
        } else {
            Err(format!(
                "the relay answered {what} with {}",
                got.1.chars().take(200).collect::<String>()
            ))
        }
    };
    expect(reply(&mut r).await?, 220, "the connection")?;
    let mut steps = vec![
        ("EHLO mtasts\r\n".to_owned(), 250, "EHLO"),
        (format!("MAIL FROM:<{from}>\r\n"), 250, "MAIL"),
    ];
    for t in to {
        steps.push((format!("RCPT TO:<{t}>\r\n"), 250, "RCPT"));
    }
    steps.push(("DATA\r\n".to_owned(), 354, "DATA"));
    steps.push((format!("{mail}.\r\n"), 250, "the mail"));
    for (send, want, what) in steps {
        w.write_all(send.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        expect(reply(&mut r).await?, want, what)?;
    }
    let _ = w.write_all(b"QUIT\r\n").await;
    Ok(())
}
