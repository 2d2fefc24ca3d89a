//! `_mta-sts` and `_smtp._tls` TXT RRset parsers: no panic, and what a sender gets is well formed.

use mtasts_core::record::{MAX_ID_LEN, parse_sts_rrset, parse_tlsrpt_rrset};

/// Splits `data` on `\n` into an RRset (one TXT record per line) and reads it as both record
/// kinds. A usable `_mta-sts` record has an id of 1 to [`MAX_ID_LEN`] ASCII letters and digits;
/// a usable `_smtp._tls` record has only `mailto:` / `https:` URIs.
pub fn check(data: &[u8]) {
    let rrset: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let sts = parse_sts_rrset(&rrset);
    if let Some(rec) = &sts.record {
        assert!(
            !rec.id.is_empty()
                && rec.id.len() <= MAX_ID_LEN
                && rec.id.bytes().all(|b| b.is_ascii_alphanumeric()),
            "sender got an invalid id {:?} from {data:?}",
            rec.id
        );
    }
    let tlsrpt = parse_tlsrpt_rrset(&rrset);
    if let Some(rec) = &tlsrpt.record {
        for uri in &rec.rua {
            let lower = uri.to_ascii_lowercase();
            assert!(
                lower.starts_with("mailto:") || lower.starts_with("https:"),
                "sender got an unusable rua {uri:?} from {data:?}"
            );
        }
    }
}
