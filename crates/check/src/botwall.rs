//! Bot walls in front of the policy (M21): a CDN or WAF answering a non-browser client with a
//! challenge page instead of the policy. Senders are not browsers (they send no browser
//! `User-Agent`, run no JavaScript, solve no CAPTCHA), so they get the challenge too.

use mtasts_net::https::PolicyFetch;

/// Statuses bot walls answer with: 403 (blocked or challenged), 429 (rate limited), 503
/// (Cloudflare's "Just a moment..." interstitial).
const WALL_STATUSES: [u16; 3] = [403, 429, 503];

/// Text found only in challenge pages (lower case). `challenge` alone is too common in
/// ordinary error pages, so it counts only with a wall status.
const STRONG_MARKERS: [&str; 5] = [
    "cf-chl",
    "cf_chl",
    "challenge-platform",
    "just a moment...",
    "attention required",
];

/// What shows that the answer is a bot wall, or `None`.
pub(crate) fn sign(fetch: &PolicyFetch) -> Option<String> {
    let status = fetch.status?;
    let wall_status = WALL_STATUSES.contains(&status);
    if status != 200 && !wall_status {
        return None;
    }
    if let Some(v) = &fetch.cf_mitigated
        && v.to_ascii_lowercase().contains("challenge")
    {
        return Some(format!("HTTP {status}, cf-mitigated: {v}"));
    }
    let body = fetch.error_body.as_deref().or(fetch.body.as_deref())?;
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    let html = text.contains("<html")
        || text.contains("<!doctype html")
        || fetch
            .content_type
            .as_deref()
            .is_some_and(|c| c.to_ascii_lowercase().contains("html"));
    if !html {
        return None;
    }
    if let Some(m) = STRONG_MARKERS.iter().find(|m| text.contains(**m)) {
        return Some(format!("HTTP {status}, an HTML page containing `{m}`"));
    }
    if !wall_status {
        return None;
    }
    if text.contains("challenge") || text.contains("captcha") {
        return Some(format!("HTTP {status}, an HTML challenge page"));
    }
    let server = fetch.server.as_deref().unwrap_or("");
    if server.to_ascii_lowercase().contains("cloudflare") {
        return Some(format!("HTTP {status}, Server: {server}, an HTML page"));
    }
    None
}
