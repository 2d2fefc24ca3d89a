//! When a domain's TLS-RPT reports call for an alert (decisions D56): a pure function of the
//! stored day totals and failure breakdown, the day, and the rules. The server's alert loop
//! (`mtasts_server::alerts`) reads the store, calls [`evaluate`], and claims, sends and resolves
//! notifications; nothing here does I/O.
//!
//! - **failures**: over the last `window_days` report days (the day each report's range
//!   begins, today included), at least `min_failed_sessions` failed sessions and a failure
//!   rate of at least `failure_rate`.
//! - **reports-stopped**: reports covered at least `min_history_days` distinct days in the
//!   `history_days` before the last `stopped_after_days`, and none since. Reporters send a day's
//!   report the day after, so `stopped_after_days` should be 2 or more.

use std::collections::BTreeMap;

use mtasts_store::{DayTotal, FailureTotal};
use serde::Serialize;
use time::Date;

/// The rules; defaults in [`AlertRules::default`].
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRules {
    /// Report days the failure rate is taken over. Default 2.
    pub window_days: u32,
    /// The failure rate (failed / all sessions) at or above which an alert is due. Default
    /// 0.01 (1 %).
    pub failure_rate: f64,
    /// The fewest failed sessions an alert needs (a single failed session of three is no
    /// incident). Default 10.
    pub min_failed_sessions: u64,
    /// Days without any report after which a domain that used to get them is reported.
    /// Default 3.
    pub stopped_after_days: u32,
    /// The days before those looked at for "used to get them". Default 14.
    pub history_days: u32,
    /// Distinct days with reports that "used to get them" needs. Default 3.
    pub min_history_days: u32,
}

impl Default for AlertRules {
    fn default() -> Self {
        Self {
            window_days: 2,
            failure_rate: 0.01,
            min_failed_sessions: 10,
            stopped_after_days: 3,
            history_days: 14,
            min_history_days: 3,
        }
    }
}

impl AlertRules {
    /// The first day whose totals [`evaluate`] needs, for `today`.
    pub fn first_day(&self, today: Date) -> Date {
        let back = self
            .window_days
            .max(self.stopped_after_days + self.history_days);
        today - time::Duration::days(i64::from(back))
    }
}

/// One failure breakdown row of an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    /// `result-type`.
    pub result_type: String,
    /// `receiving-mx-hostname` (empty when not given).
    pub receiving_mx: String,
    /// The reporter.
    pub organization: String,
    /// Failed sessions.
    pub sessions: u64,
}

/// A condition that holds for a domain.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Condition {
    /// Failed sessions over the threshold.
    Failures {
        /// The policy domain.
        domain: String,
        /// Failed sessions in the window.
        failed: u64,
        /// All sessions in the window.
        total: u64,
        /// `failed / total`.
        rate: f64,
        /// The largest causes (at most [`MAX_CAUSES`]), from the window's failure breakdown.
        causes: Vec<Cause>,
    },
    /// A domain that got reports gets none.
    ReportsStopped {
        /// The policy domain.
        domain: String,
        /// The last day with a report.
        last_day: Date,
    },
}

impl Condition {
    /// The stored kind: `failures` or `reports-stopped`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Failures { .. } => "failures",
            Self::ReportsStopped { .. } => "reports-stopped",
        }
    }

    /// The domain.
    pub fn domain(&self) -> &str {
        match self {
            Self::Failures { domain, .. } | Self::ReportsStopped { domain, .. } => domain,
        }
    }

    /// One line in plain words (foreign text as it is: the caller escapes for its medium).
    pub fn text(&self) -> String {
        match self {
            Self::Failures {
                domain,
                failed,
                total,
                rate,
                causes,
            } => {
                let mut t = format!(
                    "{domain}: {failed} of {total} TLS sessions failed ({:.2} %) in the last reports",
                    rate * 100.0
                );
                if let Some(c) = causes.first() {
                    t.push_str(&format!(
                        "; most: {} {} at {} (reported by {})",
                        c.sessions,
                        c.result_type,
                        if c.receiving_mx.is_empty() {
                            "an unnamed MX"
                        } else {
                            &c.receiving_mx
                        },
                        c.organization
                    ));
                }
                t
            }
            Self::ReportsStopped { domain, last_day } => format!(
                "{domain}: no TLS-RPT report since {last_day}; reports used to arrive (check the _smtp._tls record and the report address)"
            ),
        }
    }
}

/// The most causes an alert lists.
pub const MAX_CAUSES: usize = 5;

/// The conditions that hold on `today`, from the day totals and failure breakdown of every
/// domain since at least [`AlertRules::first_day`] (`failures` only needs the window's rows).
/// Domains with no policy domain (`""`) are left out.
pub fn evaluate(
    days: &[DayTotal],
    window_failures: &[FailureTotal],
    today: Date,
    rules: &AlertRules,
) -> Vec<Condition> {
    let window_start = today - time::Duration::days(i64::from(rules.window_days.saturating_sub(1)));
    let quiet_start =
        today - time::Duration::days(i64::from(rules.stopped_after_days.saturating_sub(1)));
    let history_start = quiet_start - time::Duration::days(i64::from(rules.history_days));
    #[derive(Default)]
    struct Acc {
        success: u64,
        failed: u64,
        history_days: u32,
        recent: bool,
        last_day: Option<Date>,
    }
    let mut by: BTreeMap<&str, Acc> = BTreeMap::new();
    for d in days.iter().filter(|d| !d.policy_domain.is_empty()) {
        let a = by.entry(d.policy_domain.as_str()).or_default();
        if d.day >= window_start && d.day <= today {
            a.success = a.success.saturating_add(d.success);
            a.failed = a.failed.saturating_add(d.failure);
        }
        if d.day >= quiet_start {
            a.recent = true;
        } else if d.day >= history_start && d.reports > 0 {
            a.history_days += 1;
        }
        a.last_day = a.last_day.max(Some(d.day));
    }
    let mut out = Vec::new();
    for (domain, a) in by {
        let total = a.success.saturating_add(a.failed);
        #[allow(clippy::cast_precision_loss, reason = "a rate")]
        let rate = if total == 0 {
            0.0
        } else {
            a.failed as f64 / total as f64
        };
        if a.failed >= rules.min_failed_sessions && a.failed > 0 && rate >= rules.failure_rate {
            let causes = window_failures
                .iter()
                .filter(|f| f.policy_domain == domain)
                .take(MAX_CAUSES)
                .map(|f| Cause {
                    result_type: f.result_type.clone(),
                    receiving_mx: f.receiving_mx.clone(),
                    organization: f.organization.clone(),
                    sessions: f.sessions,
                })
                .collect();
            out.push(Condition::Failures {
                domain: domain.to_owned(),
                failed: a.failed,
                total,
                rate,
                causes,
            });
        }
        if !a.recent
            && a.history_days >= rules.min_history_days
            && let Some(last_day) = a.last_day
        {
            out.push(Condition::ReportsStopped {
                domain: domain.to_owned(),
                last_day,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn day(domain: &str, d: Date, success: u64, failure: u64) -> DayTotal {
        DayTotal {
            policy_domain: domain.into(),
            day: d,
            reports: 1,
            success,
            failure,
        }
    }

    #[test]
    fn failures_over_the_threshold_in_the_window_and_not_before() {
        let today = date!(2026 - 03 - 10);
        let rules = AlertRules::default();
        let days = [
            // Old failures, outside the two-day window.
            day("a.test", date!(2026 - 03 - 05), 0, 500),
            day("a.test", date!(2026 - 03 - 09), 990, 10),
            day("b.test", date!(2026 - 03 - 09), 10_000, 50),
            day("c.test", date!(2026 - 03 - 10), 0, 9),
        ];
        let fail = FailureTotal {
            policy_domain: "a.test".into(),
            result_type: "certificate-expired".into(),
            receiving_mx: "mx1.a.test".into(),
            sending_ip: String::new(),
            organization: "Google Inc.".into(),
            sessions: 10,
        };
        let got = evaluate(&days, &[fail], today, &rules);
        // a: 10 of 1000 = 1 % -> due; b: 0.5 % -> not; c: 9 < 10 sessions -> not.
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].kind(), "failures");
        assert_eq!(got[0].domain(), "a.test");
        let text = got[0].text();
        assert!(
            text.contains("10 of 1000 TLS sessions failed (1.00 %)"),
            "{text}"
        );
        assert!(
            text.contains("certificate-expired at mx1.a.test (reported by Google Inc.)"),
            "{text}"
        );
    }

    #[test]
    fn reports_stopped_only_for_a_domain_that_used_to_get_them() {
        let today = date!(2026 - 03 - 20);
        let rules = AlertRules::default();
        let mut days = Vec::new();
        // a: daily until the 16th, nothing for the 17th..20th -> stopped.
        for d in 1..=16 {
            days.push(day(
                "a.test",
                Date::from_calendar_date(2026, time::Month::March, d).unwrap(),
                5,
                0,
            ));
        }
        // b: daily, still today.
        for d in 1..=19 {
            days.push(day(
                "b.test",
                Date::from_calendar_date(2026, time::Month::March, d).unwrap(),
                5,
                0,
            ));
        }
        // c: two days long ago only -> never "used to get them".
        days.push(day("c.test", date!(2026 - 03 - 08), 5, 0));
        days.push(day("c.test", date!(2026 - 03 - 09), 5, 0));
        let got = evaluate(&days, &[], today, &rules);
        assert_eq!(
            got,
            vec![Condition::ReportsStopped {
                domain: "a.test".into(),
                last_day: date!(2026 - 03 - 16)
            }]
        );
        assert!(got[0].text().contains("no TLS-RPT report since 2026-03-16"));
        // Two quiet days are not three.
        let got = evaluate(&days, &[], date!(2026 - 03 - 18), &rules);
        assert!(got.is_empty(), "{got:?}");
    }
}
