//! Message building, value splitting, names, keys and the judging of answers, without a server
//! (the exchanges with a real knotd are in `tests/it/dnsupdate.rs`).

use hickory_proto::rr::TSigResponseContext;

use super::*;

const SECRET: &str = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=";

fn key() -> TsigKey {
    TsigKey::parse("update.example.net", "hmac-sha256", SECRET).unwrap()
}

fn name(text: &str) -> Name {
    parse_name(text).unwrap()
}

fn server(key: Option<TsigKey>) -> UpdateServer {
    let addr = "127.0.0.1:9".parse().unwrap();
    UpdateServer::new(addr, "example.net", key, Duration::from_secs(1)).unwrap()
}

/// The message as it goes on the wire, read back.
fn wire(message: &Message) -> Message {
    Message::from_vec(&message.to_vec().unwrap()).unwrap()
}

#[test]
fn replace_is_one_update_deleting_the_rrset_and_adding_the_record() {
    let zone = name("example.net");
    let owner = name("_mta-sts.example.net");
    let m = wire(&replace_message(
        &zone,
        owner.clone(),
        b"v=STSv1; id=2",
        600,
    ));
    assert_eq!(m.metadata.op_code, OpCode::Update);
    assert_eq!(m.metadata.message_type, MessageType::Query);
    assert!(!m.metadata.recursion_desired);
    // Zone section: the zone's SOA, class IN.
    assert_eq!(m.zones().len(), 1);
    assert_eq!(m.zones()[0].name(), &zone);
    assert_eq!(m.zones()[0].query_type(), RecordType::SOA);
    assert_eq!(m.zones()[0].query_class(), DNSClass::IN);
    // No prerequisites, nothing additional.
    assert!(m.prerequisites().is_empty());
    assert!(m.additionals().is_empty());
    // Update section: delete the TXT RRset (class ANY, TTL 0, no data), then add the record.
    let [delete, add] = m.updates() else {
        panic!("two updates expected: {:?}", m.updates());
    };
    assert_eq!(delete.name, owner);
    assert_eq!(delete.dns_class, DNSClass::ANY);
    assert_eq!(delete.ttl, 0);
    assert_eq!(delete.record_type(), RecordType::TXT);
    assert_eq!(delete.data, RData::Update0(RecordType::TXT));
    assert_eq!(add.name, owner);
    assert_eq!(add.dns_class, DNSClass::IN);
    assert_eq!(add.ttl, 600);
    let RData::TXT(txt) = &add.data else {
        panic!("a TXT record expected: {add:?}");
    };
    assert_eq!(
        &*txt.txt_data,
        &[b"v=STSv1; id=2".to_vec().into_boxed_slice()]
    );
}

#[test]
fn delete_is_one_rrset_deletion() {
    let m = wire(&delete_message(
        &name("example.net"),
        name("_smtp._tls.example.net"),
    ));
    assert_eq!(m.metadata.op_code, OpCode::Update);
    let [delete] = m.updates() else {
        panic!("one update expected: {:?}", m.updates());
    };
    assert_eq!(delete.name, name("_smtp._tls.example.net"));
    assert_eq!(delete.dns_class, DNSClass::ANY);
    assert_eq!(delete.data, RData::Update0(RecordType::TXT));
}

#[test]
fn long_values_are_cut_into_255_byte_strings() {
    assert_eq!(split_value(b""), vec![b"" as &[u8]]);
    assert_eq!(split_value(b"abc"), vec![b"abc" as &[u8]]);
    let value: Vec<u8> = (0..600u32).map(|i| b'a' + (i % 26) as u8).collect();
    assert_eq!(split_value(&value[..255]).len(), 1);
    let parts = split_value(&value);
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [255, 255, 90]
    );
    assert_eq!(parts.concat(), value);
    // And on the wire.
    let m = wire(&replace_message(
        &name("example.net"),
        name("x.example.net"),
        &value,
        60,
    ));
    let RData::TXT(txt) = &m.updates()[1].data else {
        panic!("a TXT record expected");
    };
    assert_eq!(txt.txt_data.len(), 3);
    assert_eq!(txt.txt_data.concat(), value);
}

#[test]
fn names_must_be_ascii_and_inside_the_zone() {
    let s = server(None);
    assert!(s.owner("_mta-sts.example.net").is_ok());
    assert!(s.owner("_MTA-STS.Example.NET.").is_ok());
    assert!(s.owner("example.net").is_ok(), "the apex is inside");
    for outside in [
        "example.org",
        "notexample.net",
        "example.net.evil.test",
        "net",
    ] {
        let e = s.owner(outside).unwrap_err();
        assert!(
            matches!(e.kind(), UpdateErrorKind::NotInZone { name } if name == outside),
            "{outside}: {e}"
        );
    }
    for bad in ["", "bücher.example.net", "a..example.net"] {
        let e = s.owner(bad).unwrap_err();
        assert!(
            matches!(e.kind(), UpdateErrorKind::BadName { .. }),
            "{bad:?}: {e}"
        );
    }
    let e = UpdateServer::new(s.addr(), "exa mple..net", None, Duration::from_secs(1));
    assert!(matches!(
        e.unwrap_err().kind(),
        UpdateErrorKind::BadName { .. }
    ));
}

#[tokio::test]
async fn a_name_outside_the_zone_is_refused_before_anything_is_sent() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = UpdateServer::new(addr, "example.net.", Some(key()), Duration::from_secs(2)).unwrap();
    let e = s
        .replace_txt("_mta-sts.example.org", "v=STSv1; id=1", 300)
        .await;
    let e = e.unwrap_err();
    assert!(matches!(e.kind(), UpdateErrorKind::NotInZone { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "DNS update of zone \"example.net.\" at {addr}: \"_mta-sts.example.org\" is not \
             inside the zone; nothing was sent"
        )
    );
    assert!(!e.is_retryable());
    let e = s.delete_txt("example.org").await.unwrap_err();
    assert!(matches!(e.kind(), UpdateErrorKind::NotInZone { .. }), "{e}");
    let too_long = "x".repeat(MAX_TXT_VALUE + 1);
    let e = s.replace_txt("a.example.net", &too_long, 300).await;
    assert!(matches!(
        e.unwrap_err().kind(),
        UpdateErrorKind::ValueTooLong(_)
    ));
    let accepted = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
    assert!(accepted.is_err(), "no connection was made");
}

#[test]
fn tsig_keys_parse_in_the_usual_spellings() {
    for (alg, label) in [
        ("hmac-sha256", "hmac-sha256"),
        ("HMAC-SHA384", "hmac-sha384"),
        ("hmac-sha512.", "hmac-sha512"),
    ] {
        let k = TsigKey::parse("Update.Example.NET.", alg, SECRET).unwrap();
        assert_eq!(k.algorithm(), label);
        assert_eq!(k.name(), "Update.Example.NET.");
    }
    assert_eq!(key().name(), "update.example.net.");
    let e = TsigKey::parse("k", "hmac-md5", SECRET).unwrap_err();
    assert_eq!(e, KeyError::Algorithm("hmac-md5".into()));
    assert!(matches!(
        TsigKey::parse("k", "hmac-sha1", SECRET),
        Err(KeyError::Algorithm(_))
    ));
    assert!(matches!(
        TsigKey::parse("a..b", "hmac-sha256", SECRET),
        Err(KeyError::Name(_))
    ));
    assert!(matches!(
        TsigKey::parse("k", "hmac-sha256", ""),
        Err(KeyError::Secret { .. })
    ));
    // Not base64 (and unpadded): the error names the key, never the secret.
    let secret = "c2VjcmV0!c2VjcmV0";
    let e = TsigKey::parse("k", "hmac-sha256", secret).unwrap_err();
    assert!(matches!(e, KeyError::Secret { .. }));
    assert!(!e.to_string().contains(secret), "{e}");
    assert!(!format!("{e:?}").contains("c2VjcmV0"), "{e:?}");
}

#[test]
fn debug_never_shows_the_secret() {
    let k = key();
    let shown = format!("{k:?} {:?}", server(Some(k.clone())));
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!shown.contains("secretsecret"), "{shown}");
    assert!(
        !shown.contains("115, 101, 99"),
        "no raw bytes either: {shown}"
    );
    assert!(!format!("{k:#?}").contains(SECRET));
}

#[test]
fn rcodes_have_their_mnemonics() {
    assert_eq!(Rcode::REFUSED.to_string(), "REFUSED");
    assert_eq!(Rcode::NOTAUTH.to_string(), "NOTAUTH");
    assert_eq!(Rcode::NOTZONE.to_string(), "NOTZONE");
    assert_eq!(Rcode::BADKEY.to_string(), "BADKEY");
    assert_eq!(Rcode(13).to_string(), "RCODE13");
    assert_eq!(Rcode(4000).to_string(), "RCODE4000");
}

/// A request signed with `key` and the verifier for its answer.
fn signed_request(key: &TsigKey, now: u64) -> (Message, TSigVerifier) {
    let mut m = replace_message(&name("example.net"), name("a.example.net"), b"v", 60);
    let verifier = m.finalize(&key.signer, now).unwrap().unwrap();
    (m, verifier)
}

/// The answer to `request` with `rcode`, signed with `signer` when there is one.
fn answer(request: &Message, rcode: u16, signer: Option<&TSigner>, now: u64) -> Vec<u8> {
    let mut m = Message::response(request.metadata.id, OpCode::Update);
    m.metadata.response_code = <hickory_proto::op::ResponseCode as From<u16>>::from(rcode);
    m.add_queries(request.queries.iter().cloned());
    if let Some(signer) = signer {
        let mac = request.signature().unwrap().data.mac.clone();
        let unsigned = m.to_vec().unwrap();
        let ctx = TSigResponseContext::new(m.metadata.id, now, signer.clone(), mac, None);
        m.set_signature(ctx.sign(&unsigned).unwrap());
    }
    m.to_vec().unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_signed_noerror_answer_is_success_and_an_unsigned_one_is_not() {
    let k = key();
    let (request, mut verifier) = signed_request(&k, now());
    let ok = answer(&request, 0, Some(&k.signer), now());
    check_answer(request.metadata.id, &ok, Some(&mut verifier)).unwrap();

    let (request, mut verifier) = signed_request(&k, now());
    let unsigned = answer(&request, 0, None, now());
    let e = check_answer(request.metadata.id, &unsigned, Some(&mut verifier)).unwrap_err();
    assert!(
        matches!(&e, UpdateErrorKind::TsigCheck(why) if why.contains("not signed")),
        "{e}"
    );

    // Signed with another secret (a forger's or a misconfigured server's).
    let other = TsigKey::parse("update.example.net", "hmac-sha256", "b3RoZXI=").unwrap();
    let (request, mut verifier) = signed_request(&k, now());
    let forged = answer(&request, 0, Some(&other.signer), now());
    let e = check_answer(request.metadata.id, &forged, Some(&mut verifier)).unwrap_err();
    assert!(matches!(e, UpdateErrorKind::TsigCheck(_)), "{e}");

    // Signed far outside the fudge window.
    let (request, mut verifier) = signed_request(&k, now());
    let stale = answer(&request, 0, Some(&k.signer), now() - 3600);
    let e = check_answer(request.metadata.id, &stale, Some(&mut verifier)).unwrap_err();
    assert!(matches!(e, UpdateErrorKind::TsigCheck(_)), "{e}");

    // Without a key, an unsigned NOERROR is success.
    let request = replace_message(&name("example.net"), name("a.example.net"), b"v", 60);
    check_answer(request.metadata.id, &answer(&request, 0, None, now()), None).unwrap();
}

#[test]
fn error_answers_are_told_apart() {
    let k = key();
    let (request, mut verifier) = signed_request(&k, now());
    let e = check_answer(
        request.metadata.id,
        &answer(&request, 5, Some(&k.signer), now()),
        Some(&mut verifier),
    );
    assert!(matches!(
        e.unwrap_err(),
        UpdateErrorKind::Refused {
            rcode: Rcode::REFUSED,
            signed: true
        }
    ));
    // knot answers NOTAUTH unsigned for a zone it does not serve.
    let (request, mut verifier) = signed_request(&k, now());
    let unsigned = answer(&request, 9, None, now());
    let e = check_answer(request.metadata.id, &unsigned, Some(&mut verifier)).unwrap_err();
    assert!(matches!(
        e,
        UpdateErrorKind::Refused {
            rcode: Rcode::NOTAUTH,
            signed: false
        }
    ));
    assert!(
        e.to_string().contains("NOTAUTH) (answer not signed)"),
        "{e}"
    );
    let request = replace_message(&name("example.net"), name("a.example.net"), b"v", 60);
    let e = check_answer(request.metadata.id, &answer(&request, 2, None, now()), None);
    let e = e.unwrap_err();
    assert!(matches!(
        e,
        UpdateErrorKind::ServerError {
            rcode: Rcode::SERVFAIL,
            ..
        }
    ));
    let full = |kind| server(None).error(kind);
    assert!(full(e).is_retryable());
    assert!(
        !full(UpdateErrorKind::Refused {
            rcode: Rcode::REFUSED,
            signed: false
        })
        .is_retryable()
    );
    assert!(full(UpdateErrorKind::Timeout(Duration::from_secs(1))).is_retryable());
}

#[test]
fn a_tsig_error_from_the_server_is_reported_as_such() {
    let k = key();
    let (request, mut verifier) = signed_request(&k, now());
    let mut m = Message::response(request.metadata.id, OpCode::Update);
    m.metadata.response_code = hickory_proto::op::ResponseCode::NotAuth;
    let ctx = TSigResponseContext::bad_signature(request.metadata.id, now(), k.signer.clone());
    m.set_signature(ctx.sign(&m.to_vec().unwrap()).unwrap());
    let e = check_answer(
        request.metadata.id,
        &m.to_vec().unwrap(),
        Some(&mut verifier),
    );
    let e = e.unwrap_err();
    assert!(
        matches!(
            e,
            UpdateErrorKind::TsigRejected {
                error: Rcode::BADSIG,
                rcode: Rcode::NOTAUTH
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("BADSIG"), "{e}");
    assert!(!server(Some(k)).error(e).is_retryable());
}

#[test]
fn garbage_and_foreign_answers_are_malformed_not_panics() {
    let request = replace_message(&name("example.net"), name("a.example.net"), b"v", 60);
    let id = request.metadata.id;
    let malformed = |bytes: &[u8]| {
        let e = check_answer(id, bytes, None).unwrap_err();
        assert!(matches!(e, UpdateErrorKind::Malformed(_)), "{bytes:?}: {e}");
    };
    malformed(b"");
    malformed(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    // Header claiming 65,535 records of every kind in 12 bytes.
    let mut header = id.to_be_bytes().to_vec();
    header.extend_from_slice(&[0xa8, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    malformed(&header);
    // Counts that fit the length but records that do not parse.
    let mut bad = answer(&request, 0, None, now());
    bad.extend_from_slice(&[0xc0; 40]);
    bad[7] = 3;
    malformed(&bad);
    // Another ID, a query instead of a response, another opcode.
    let other_id = answer(&request, 0, None, now());
    let e = check_answer(id.wrapping_add(1), &other_id, None).unwrap_err();
    assert!(
        matches!(&e, UpdateErrorKind::Malformed(why) if why.contains("ID")),
        "{e}"
    );
    malformed(&request.to_vec().unwrap());
    let mut query = Message::response(id, OpCode::Query);
    query.add_queries(request.queries.iter().cloned());
    malformed(&query.to_vec().unwrap());
    // Every truncation of a good answer, and every single-byte corruption of its header.
    let good = answer(&request, 0, None, now());
    for end in 0..good.len() {
        let _ = check_answer(id, &good[..end], None);
    }
    for i in 0..12 {
        let mut b = good.clone();
        b[i] ^= 0xff;
        let _ = check_answer(id, &b, None);
    }
}

#[test]
fn foreign_text_is_escaped() {
    assert_eq!(escape("plain text: ok"), "plain text: ok");
    assert_eq!(escape("a\nb\u{1b}[31m\u{fc}"), "a\\nb\\u{1b}[31m\\u{fc}");
}
