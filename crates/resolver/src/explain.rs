//! `mtasts resolver query`: one answer with its reasons, as text or JSON.

use crate::Reply;
use crate::engine::Answer;
use serde::Serialize;
use std::fmt;

/// An answer to `key` in the table `zone`, explained: [`fmt::Display`] gives the text form,
/// [`Serialize`] the JSON form (keys in alphabetical order).
#[derive(Debug, Serialize)]
pub struct Explained<'a> {
    domain: Option<&'a str>,
    key: &'a str,
    policy: Option<PolicyView<'a>>,
    reply: WireReply<'a>,
    source: &'static str,
    why: &'a str,
    zone: &'a str,
}

#[derive(Debug, Serialize)]
struct WireReply<'a> {
    data: &'a str,
    status: &'static str,
}

#[derive(Debug, Serialize)]
struct PolicyView<'a> {
    expires_in: u64,
    id: &'a str,
    max_age: u32,
    mode: mtasts_core::policy::Mode,
    mx: &'a [String],
}

impl<'a> Explained<'a> {
    /// `answer` to `key` in the table `zone`.
    pub fn new(key: &'a str, zone: &'a str, answer: &'a Answer) -> Self {
        let (status, data) = match &answer.reply {
            Reply::Ok(d) => ("OK", d.as_str()),
            Reply::NotFound => ("NOTFOUND", ""),
            Reply::Temp(d) => ("TEMP", d.as_str()),
            Reply::Timeout(d) => ("TIMEOUT", d.as_str()),
            Reply::Perm(d) => ("PERM", d.as_str()),
        };
        Self {
            domain: answer.domain.as_deref(),
            key,
            policy: answer.policy.as_ref().map(|p| PolicyView {
                expires_in: p.expires_in.as_secs(),
                id: &p.id,
                max_age: p.max_age,
                mode: p.mode,
                mx: &p.mx,
            }),
            reply: WireReply { data, status },
            source: answer.source.as_str(),
            why: &answer.why,
            zone,
        }
    }
}

impl fmt::Display for Explained<'_> {
    /// The text form; every string that came from outside (the key, the reply data built from
    /// a policy, the reason, the policy's id and patterns) is escaped for the terminal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use mtasts_core::text::escape;
        writeln!(f, "{} (table {})", escape(self.key), escape(self.zone))?;
        writeln!(
            f,
            "  Postfix gets: {} {}",
            self.reply.status,
            escape(self.reply.data)
        )?;
        writeln!(f, "  because:      {}", escape(self.why))?;
        writeln!(f, "  source:       {}", self.source)?;
        if let Some(p) = &self.policy {
            writeln!(
                f,
                "  policy:       id {}, mode {}, max_age {}, mx {}; cached for {}",
                escape(p.id),
                p.mode,
                p.max_age,
                escape(&p.mx.join(", ")),
                human(p.expires_in)
            )?;
        }
        Ok(())
    }
}

fn human(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}m {}s", s / 60, s % 60),
    }
}
