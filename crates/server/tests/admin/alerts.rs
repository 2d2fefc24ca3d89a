//! Alerts on stored reports, on both backends: failures over the threshold are announced once
//! by webhook and e-mail (a second round and a second instance send nothing more), a failed
//! webhook is retried the next round, the end of an incident is announced, a new incident
//! within the cooldown is not, a domain whose reports stop is announced, and the daily digest
//! goes out once a day.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mtasts_intake::{Accept, Intake};
use mtasts_server::alerts::{AlertConfig, Alerter};
use mtasts_store::{Arrival, Via};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::support::both;

/// A webhook that records what it gets and answers `status`.
#[derive(Clone, Default)]
struct Hook {
    got: Arc<Mutex<Vec<Value>>>,
    fail: Arc<Mutex<bool>>,
}

impl Hook {
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut c, _)) = listener.accept().await else {
                    return;
                };
                let this = this.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Headers, then Content-Length bytes.
                    let body = loop {
                        let Ok(n) = c.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).into_owned();
                        if let Some((head, body)) = text.split_once("\r\n\r\n") {
                            let len: usize = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse().unwrap())
                                })
                                .unwrap_or(0);
                            if body.len() >= len {
                                break body.to_owned();
                            }
                        }
                    };
                    let fail = *this.fail.lock().unwrap();
                    if !fail {
                        this.got
                            .lock()
                            .unwrap()
                            .push(serde_json::from_str(&body).unwrap());
                    }
                    let status = if fail {
                        "500 Internal Server Error"
                    } else {
                        "204 No Content"
                    };
                    let _ = c
                        .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes())
                        .await;
                });
            }
        });
        format!("http://{addr}/hook")
    }

    fn take(&self) -> Vec<Value> {
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

/// An SMTP relay that keeps each mail's DATA.
async fn relay(mails: Arc<Mutex<Vec<String>>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((c, _)) = listener.accept().await else {
                return;
            };
            let mails = Arc::clone(&mails);
            tokio::spawn(async move {
                let (r, mut w) = c.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 relay\r\n").await.unwrap();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.to_ascii_uppercase();
                    if cmd.starts_with("DATA") {
                        w.write_all(b"354 go\r\n").await.unwrap();
                        let mut mail = String::new();
                        loop {
                            line.clear();
                            r.read_line(&mut line).await.unwrap();
                            if line == ".\r\n" {
                                break;
                            }
                            mail.push_str(&line);
                        }
                        mails.lock().unwrap().push(mail);
                        w.write_all(b"250 queued\r\n").await.unwrap();
                    } else if cmd.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        w.write_all(b"250 ok\r\n").await.unwrap();
                    }
                }
            });
        }
    });
    addr.to_string()
}

fn report(domain: &str, day: time::Date, success: u64, failed: u64, id: &str) -> Vec<u8> {
    let start = format!("{day}T00:00:00Z");
    let end = format!("{day}T23:59:59Z");
    let mut policy = json!({
        "policy": {"policy-type": "sts", "policy-domain": domain},
        "summary": {"total-successful-session-count": success, "total-failure-session-count": failed},
    });
    if failed > 0 {
        policy["failure-details"] = json!([{"result-type": "certificate-expired",
            "receiving-mx-hostname": format!("mx1.{domain}"), "failed-session-count": failed}]);
    }
    json!({"organization-name": "Google Inc.", "report-id": id, "contact-info": "x@google.com",
        "date-range": {"start-datetime": start, "end-datetime": end}, "policies": [policy]})
    .to_string()
    .into_bytes()
}

both! {
    async fn failures_are_announced_once_resolved_and_digested(db) {
        let store = db.open().await;
        let intake = Intake::new(store.clone(), Accept::Any);
        let put = |bytes: Vec<u8>| {
            let intake = intake.clone();
            async move {
                let arrival = Arrival { via: Via::File, source: None, at: OffsetDateTime::now_utc(), dkim: None };
                let mut run = mtasts_core::report::RunBudget::new(1 << 30);
                intake.ingest(&bytes, &arrival, &mut run).await.unwrap();
            }
        };
        let now = datetime!(2026-03-10 05:00 UTC);
        let day = |n: i64| now.date() - time::Duration::days(n);
        put(report("a.test", day(1), 1000, 50, "a-1")).await;
        // c.test got reports every day for two weeks, then none for four days.
        for n in 4..18 {
            put(report("c.test", day(n), 10, 0, &format!("c-{n}"))).await;
        }
        let hook = Hook::default();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let cfg = AlertConfig {
            webhook: hook.start().await,
            email_to: vec!["ops@example.test".into()],
            smtp_relay: relay(Arc::clone(&mails)).await,
            digest_hour: None,
            interval: Duration::from_secs(60),
            cooldown: Duration::from_secs(4 * 86_400),
            ..AlertConfig::default()
        };
        let alerter = Alerter::new(store.clone(), cfg.clone()).unwrap();
        let r = alerter.round(now).await.unwrap();
        let mut sent = r.sent.clone();
        sent.sort();
        assert_eq!(sent, vec![("failures".into(), "a.test".into()), ("reports-stopped".into(), "c.test".into())], "{r:?}");
        let got = hook.take();
        let failures = got.iter().find(|v| v["kind"] == "failures").unwrap();
        assert_eq!(failures["domain"], "a.test");
        let text = failures["text"].as_str().unwrap();
        assert!(text.contains("50 of 1050 TLS sessions failed"), "{text}");
        assert!(text.contains("certificate-expired at mx1.a.test (reported by Google Inc.)"), "{text}");
        assert_eq!(failures["condition"]["causes"][0]["sessions"], 50);
        let stopped = got.iter().find(|v| v["kind"] == "reports-stopped").unwrap();
        assert!(stopped["text"].as_str().unwrap().contains("no TLS-RPT report since"), "{stopped}");
        {
            let mails = mails.lock().unwrap();
            assert_eq!(mails.len(), 2);
            let m = mails.iter().find(|m| m.contains("Subject: [mtasts] failures: a.test")).unwrap();
            assert!(m.contains("To: ops@example.test") && m.contains("50 of 1050"), "{m}");
        }

        // A new incident seen by two instances in the same instant: one notification.
        put(report("d.test", day(0), 10, 90, "d-1")).await;
        let a = Alerter::new(store.clone(), cfg.clone()).unwrap();
        let b = Alerter::new(store.clone(), cfg.clone()).unwrap();
        let at = now + time::Duration::minutes(5);
        let (ra, rb) = tokio::join!(a.round(at), b.round(at));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let d = ("failures".to_owned(), "d.test".to_owned());
        // Each channel is claimed on its own, so the two may share the channels out (one
        // posts, the other mails): what counts is one notification per channel.
        assert!(ra.sent.contains(&d) || rb.sent.contains(&d), "{ra:?} {rb:?}");
        let posts = hook.take();
        assert_eq!(posts.iter().filter(|v| v["domain"] == "d.test").count(), 1, "{posts:?}");
        assert_eq!(mails.lock().unwrap().len(), 3, "one mail for d.test");

        // The same incident, later, and from a second instance: nothing more.
        assert!(alerter.round(now + time::Duration::minutes(10)).await.unwrap().sent.is_empty());
        let other = Alerter::new(store.clone(), cfg.clone()).unwrap();
        assert!(other.round(now + time::Duration::minutes(20)).await.unwrap().sent.is_empty());
        assert!(hook.take().is_empty());

        // A new incident while the webhook fails: the mail goes, the webhook is retried the
        // round after, and the mail is not sent again.
        put(report("b.test", day(0), 100, 100, "b-1")).await;
        *hook.fail.lock().unwrap() = true;
        let r = alerter.round(now + time::Duration::minutes(30)).await.unwrap();
        assert_eq!(r.failed, vec![("failures".into(), "b.test".into())], "{r:?}");
        assert_eq!(mails.lock().unwrap().len(), 4, "the mail went");
        *hook.fail.lock().unwrap() = false;
        let r = alerter.round(now + time::Duration::minutes(40)).await.unwrap();
        assert_eq!(r.sent, vec![("failures".into(), "b.test".into())], "{r:?}");
        assert_eq!(hook.take().len(), 1);
        assert_eq!(mails.lock().unwrap().len(), 4, "the mail was not sent again");

        // Three days on, a.test's reports are clean (the window is two days): resolved.
        let later = now + time::Duration::days(3);
        let lday = |n: i64| later.date() - time::Duration::days(n);
        put(report("a.test", lday(1), 1000, 0, "a-2")).await;
        put(report("a.test", lday(0), 1000, 0, "a-3")).await;
        put(report("c.test", lday(0), 10, 0, "c-back")).await;
        let r = alerter.round(later).await.unwrap();
        assert!(r.sent.contains(&("resolved-failures".into(), "a.test".into())), "{r:?}");
        assert!(r.sent.contains(&("resolved-reports-stopped".into(), "c.test".into())), "{r:?}");
        assert!(r.sent.contains(&("resolved-failures".into(), "b.test".into())), "{r:?}");
        // b.test fails again within the cooldown (four days) of its alert: not announced.
        hook.take();
        put(report("b.test", lday(0), 100, 100, "b-2")).await;
        let r = alerter.round(later + time::Duration::minutes(1)).await.unwrap();
        assert!(r.sent.is_empty(), "within the cooldown: {r:?}");

        // The digest: once a day after its hour.
        let cfg = AlertConfig { digest_hour: Some(6), ..cfg };
        let digester = Alerter::new(store.clone(), cfg).unwrap();
        let early = datetime!(2026-03-13 05:59 UTC);
        assert!(!digester.round(early).await.unwrap().sent.iter().any(|(k, _)| k == "digest"));
        let r = digester.round(datetime!(2026-03-13 06:01 UTC)).await.unwrap();
        assert!(r.sent.iter().any(|(k, _)| k == "digest"), "{r:?}");
        let r = digester.round(datetime!(2026-03-13 18:00 UTC)).await.unwrap();
        assert!(!r.sent.iter().any(|(k, _)| k == "digest"), "{r:?}");
        let digest = hook.take().into_iter().find(|v| v["kind"] == "digest").unwrap();
        let text = digest["text"].as_str().unwrap();
        assert!(text.contains("TLS-RPT digest for 2026-03-13"), "{text}");
        assert!(text.contains("b.test: 100 of 200 failed"), "{text}");
        let r = digester.round(datetime!(2026-03-14 06:30 UTC)).await.unwrap();
        assert!(r.sent.iter().any(|(k, _)| k == "digest"), "the next day's: {r:?}");
    }
}
