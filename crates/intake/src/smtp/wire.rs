//! The wire details of the SMTP receiver: reply texts, and counting connections by address.

use std::sync::Arc;

use smtp_proto::Error as ProtoError;

/// One connection counted against its address; uncounted on drop.
pub(super) struct IpSlot {
    pub(super) map: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
    pub(super) key: std::net::IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.map.lock()
            && let Some(n) = m.get_mut(&self.key)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

/// The address a client is counted under: IPv4 as it is (also when mapped into IPv6), IPv6 by
/// its /64.
pub(super) fn ip_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => std::net::IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                std::net::IpAddr::from(o)
            }
        },
        v4 => v4,
    }
}

/// The answer to a command smtp-proto could not read.
pub(super) fn proto_error(e: &ProtoError) -> (u16, String) {
    match e {
        ProtoError::UnknownCommand => (500, "5.5.1 unknown command".into()),
        ProtoError::InvalidSenderAddress => (501, "5.1.7 bad sender address".into()),
        ProtoError::InvalidRecipientAddress => (501, "5.1.3 bad recipient address".into()),
        ProtoError::SyntaxError { syntax } => (501, one_line(&format!("5.5.4 syntax: {syntax}"))),
        ProtoError::InvalidParameter { param } => {
            (501, one_line(&format!("5.5.4 bad parameter {param}")))
        }
        ProtoError::UnsupportedParameter { param } => (
            504,
            one_line(&format!("5.5.4 unsupported parameter {param}")),
        ),
        ProtoError::ResponseTooLong => (500, "5.5.2 line too long".into()),
        _ => (500, "5.5.2 command not understood".into()),
    }
}

/// `text` as one reply line: control characters (a CR or LF would end the reply) become
/// spaces, cut at 400 bytes (RFC 5321 §4.5.3.1.5 allows 512 with the code).
pub(super) fn one_line(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > 400 {
        let mut end = 400;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}
