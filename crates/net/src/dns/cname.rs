//! CNAME chains: a loop or a chain longer than senders' resolvers follow is an error
//! ([`DnsError::CnameLoop`], [`DnsError::CnameChainTooLong`]), never "no record".

use super::{DnsError, Resolver, fully_qualified, host_name};
use hickory_proto::rr::{RData, RecordType};

/// The longest CNAME chain a lookup accepts: more links than this are refused
/// ([`DnsError::CnameChainTooLong`]). Senders' resolvers give up somewhere between 8 and 16
/// links (Unbound and hickory stop after 8 restarts, BIND after 11 or 16, Knot Resolver after 13),
/// so a longer chain fails for some senders; the smallest common limit is taken.
pub const MAX_CNAME_CHAIN: usize = 8;

impl Resolver {
    /// Follows the CNAME chain at `name` one link at a time (at most [`MAX_CNAME_CHAIN`] + 1
    /// queries): a loop or an over-long chain is an error, anything else is left to the caller.
    pub(super) async fn walk_cnames(&self, name: &str, rtype: RecordType) -> Result<(), DnsError> {
        let mut links = Vec::new();
        let mut at = host_name(name);
        for _ in 0..=MAX_CNAME_CHAIN {
            let query = self.inner.lookup(fully_qualified(&at), RecordType::CNAME);
            let Ok(Ok(answer)) = tokio::time::timeout(self.timeout, query).await else {
                break;
            };
            let Some(target) = answer.answers().iter().find_map(|r| match &r.data {
                RData::CNAME(t) if host_name(&r.name.to_ascii()) == at => {
                    Some(host_name(&t.0.to_ascii()))
                }
                _ => None,
            }) else {
                break;
            };
            links.push((at.clone(), target.clone()));
            if links.iter().any(|(owner, _)| *owner == target) {
                break;
            }
            at = target;
        }
        check_cname_chain(name, rtype, &links)
    }
}

/// Follows the CNAME records of an answer (`(owner, target)` pairs, lower case, no final dot)
/// from `name`: a target met twice is a loop, more than [`MAX_CNAME_CHAIN`] links too many.
pub(super) fn check_cname_chain(
    name: &str,
    rtype: RecordType,
    links: &[(String, String)],
) -> Result<(), DnsError> {
    if links.is_empty() {
        return Ok(());
    }
    let mut at = host_name(name);
    let mut seen = vec![at.clone()];
    while let Some((_, target)) = links.iter().find(|(owner, _)| *owner == at) {
        if seen.contains(target) {
            seen.push(target.clone());
            return Err(DnsError::CnameLoop {
                name: name.to_owned(),
                rtype: rtype.to_string(),
                chain: seen.join(" -> "),
            });
        }
        seen.push(target.clone());
        at = target.clone();
        if seen.len() > links.len() + 1 {
            break;
        }
    }
    // The links followed from `name`; an answer may hold other CNAMEs too (from a cache).
    let followed = match seen.len() - 1 {
        0 => links.len(),
        n => n,
    };
    if followed > MAX_CNAME_CHAIN {
        return Err(DnsError::CnameChainTooLong {
            name: name.to_owned(),
            rtype: rtype.to_string(),
            links: followed,
        });
    }
    Ok(())
}
