//! A server that predates TLS 1.2, in handcrafted bytes: it reads the ClientHello and answers
//! with a TLS 1.0 ServerHello or a fatal `protocol_version` alert, then closes.
//!
//! rustls cannot play such a server (it speaks only TLS 1.2 and 1.3), so the bytes are written
//! here by hand (RFC 2246 §7.4.1.3 for the ServerHello, RFC 8446 §6 for the alert). Used by the
//! SMTP hosts ([`crate::smtp::Behaviour::OldTls`]) and the HTTPS hosts
//! ([`crate::https::PolicyHost::start_old_tls`]).

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How the old server answers a ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldTls {
    /// A ServerHello choosing TLS 1.0 (`03 01`) with `TLS_RSA_WITH_AES_128_CBC_SHA`, as a
    /// server that knows nothing newer does.
    Tls10ServerHello,
    /// A fatal `protocol_version` alert (70): the server refuses every version offered.
    ProtocolVersionAlert,
}

/// The longest ClientHello record read (a TLS record is at most 16 KiB plus its header).
const MAX_RECORD: usize = 5 + 16 * 1024 + 256;
/// How long the server waits for the ClientHello.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

impl OldTls {
    /// The bytes sent in answer to the ClientHello.
    pub fn reply(self) -> Vec<u8> {
        match self {
            Self::Tls10ServerHello => {
                let mut body = vec![0x03, 0x01]; // server_version: TLS 1.0
                body.extend_from_slice(&[0x42; 32]); // random
                body.push(0); // session_id: empty
                body.extend_from_slice(&[0x00, 0x2f]); // TLS_RSA_WITH_AES_128_CBC_SHA
                body.push(0); // compression: null
                let len = u8::try_from(body.len()).unwrap_or(u8::MAX);
                let mut handshake = vec![0x02, 0x00, 0x00, len]; // server_hello
                handshake.extend_from_slice(&body);
                let len = u8::try_from(handshake.len()).unwrap_or(u8::MAX);
                let mut record = vec![0x16, 0x03, 0x01, 0x00, len]; // handshake, TLS 1.0
                record.extend_from_slice(&handshake);
                record
            }
            // alert, TLS 1.0 record, length 2, fatal (2), protocol_version (70)
            Self::ProtocolVersionAlert => vec![0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46],
        }
    }
}

/// Reads one TLS record (the ClientHello; bounded in size and time) and answers it with
/// `old.reply()`. Returns without answering when no record header comes.
pub(crate) async fn answer<S>(stream: &mut S, old: OldTls) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let read = async {
        let mut header = [0u8; 5];
        stream.read_exact(&mut header).await?;
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let mut rest = vec![0u8; len.min(MAX_RECORD)];
        stream.read_exact(&mut rest).await?;
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Ok(()),
    }
    stream.write_all(&old.reply()).await?;
    stream.flush().await?;
    // Give the client a moment to read the answer before the connection closes.
    let mut sink = [0u8; 512];
    let _ = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut sink)).await;
    Ok(())
}
