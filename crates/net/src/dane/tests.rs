//! Matching and usability: every usage, selector and matching type, bad lengths, hostile data.

use super::*;
use mtasts_testnet::pki::{Defect, Pki};
use mtasts_testnet::tlsa::{Matching, Selector, Usage, tlsa_data};

const HOST: &str = "mx1.example.test";

/// Parses the testnet helper's `"u s m HEX"` into a record.
fn parse(text: &str) -> Tlsa {
    let parts: Vec<&str> = text.split(' ').collect();
    let hex = parts[3];
    let data = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    Tlsa {
        usage: parts[0].parse().unwrap(),
        selector: parts[1].parse().unwrap(),
        matching: parts[2].parse().unwrap(),
        data,
    }
}

fn rec(cert: &CertificateDer<'_>, u: Usage, s: Selector, m: Matching) -> Tlsa {
    parse(&tlsa_data(cert, u, s, m).unwrap())
}

fn chain(pki: &Pki, defect: Defect) -> Vec<CertificateDer<'static>> {
    pki.issue(HOST, defect).unwrap().chain
}

#[test]
fn spki_selector_is_the_key_rcgen_generated() {
    let pki = Pki::new().unwrap();
    let issued = pki.issue(HOST, Defect::Valid).unwrap();
    let key = rcgen::KeyPair::try_from(&issued.key).unwrap();
    assert_eq!(
        selected_bytes(issued.leaf(), 1).unwrap(),
        rcgen::PublicKeyData::subject_public_key_info(&key)
    );
    assert_eq!(
        selected_bytes(issued.leaf(), 0).unwrap(),
        issued.leaf().to_vec()
    );
    assert_eq!(selected_bytes(issued.leaf(), 2), None);
}

#[test]
fn dane_ee_matches_every_selector_and_matching_type() {
    let pki = Pki::new().unwrap();
    let c = chain(&pki, Defect::Valid);
    for s in [Selector::Cert, Selector::Spki] {
        for m in [Matching::Full, Matching::Sha256, Matching::Sha512] {
            let t = rec(&c[0], Usage::DaneEe, s, m);
            assert_eq!(usability(&t), Ok(()));
            assert_eq!(
                match_chain(&[t], &c, HOST, pki.now()),
                ChainMatch::Matched(0),
                "{s:?} {m:?}"
            );
        }
    }
}

#[test]
fn dane_ee_ignores_name_and_expiry() {
    let pki = Pki::new().unwrap();
    for defect in [
        Defect::Expired,
        Defect::WrongName,
        Defect::SelfSigned,
        Defect::UntrustedCa,
    ] {
        let c = chain(&pki, defect.clone());
        let t = rec(&c[0], Usage::DaneEe, Selector::Spki, Matching::Sha256);
        assert_eq!(
            match_chain(&[t], &c, HOST, pki.now()),
            ChainMatch::Matched(0),
            "{defect:?}"
        );
    }
}

#[test]
fn dane_ee_for_another_key_does_not_match() {
    let pki = Pki::new().unwrap();
    let served = chain(&pki, Defect::Valid);
    let other = chain(&pki, Defect::Valid);
    let t = rec(&other[0], Usage::DaneEe, Selector::Spki, Matching::Sha256);
    let ChainMatch::NoMatch(reasons) = match_chain(&[t], &served, HOST, pki.now()) else {
        panic!("matched a foreign key");
    };
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].1.contains("DANE-EE"), "{reasons:?}");
}

#[test]
fn dane_ta_matches_the_issuing_ca_in_the_chain() {
    let pki = Pki::new().unwrap();
    let c = chain(&pki, Defect::Valid);
    for s in [Selector::Cert, Selector::Spki] {
        for m in [Matching::Full, Matching::Sha256, Matching::Sha512] {
            let t = rec(&c[1], Usage::DaneTa, s, m);
            assert_eq!(
                match_chain(&[t], &c, HOST, pki.now()),
                ChainMatch::Matched(0),
                "{s:?} {m:?}"
            );
        }
    }
}

#[test]
fn dane_ta_checks_the_name_and_the_dates() {
    let pki = Pki::new().unwrap();
    for defect in [Defect::WrongName, Defect::Expired] {
        let c = chain(&pki, defect.clone());
        let t = rec(&c[1], Usage::DaneTa, Selector::Spki, Matching::Sha256);
        assert!(
            matches!(
                match_chain(&[t], &c, HOST, pki.now()),
                ChainMatch::NoMatch(_)
            ),
            "{defect:?}"
        );
    }
}

#[test]
fn dane_ta_needs_the_anchor_in_the_presented_chain() {
    let pki = Pki::new().unwrap();
    // The server sends only the leaf: the intermediate named by the record is not there.
    let c = chain(&pki, Defect::MissingIntermediate);
    let full = chain(&pki, Defect::Valid);
    let t = rec(&full[1], Usage::DaneTa, Selector::Spki, Matching::Sha256);
    let ChainMatch::NoMatch(reasons) = match_chain(&[t], &c, HOST, pki.now()) else {
        panic!("matched without the anchor");
    };
    assert!(reasons[0].1.contains("DANE-TA"), "{reasons:?}");
}

#[test]
fn dane_ta_can_pin_a_root_outside_the_web_pki() {
    let pki = Pki::new().unwrap();
    let c = chain(&pki, Defect::UntrustedCa);
    // The untrusted root is in the chain; pinning it as DANE-TA makes the chain acceptable.
    let t = rec(&c[1], Usage::DaneTa, Selector::Cert, Matching::Sha256);
    assert_eq!(
        match_chain(&[t], &c, HOST, pki.now()),
        ChainMatch::Matched(0)
    );
}

#[test]
fn pkix_usages_are_unusable_even_when_they_match() {
    let pki = Pki::new().unwrap();
    let c = chain(&pki, Defect::Valid);
    let t0 = rec(&c[1], Usage::PkixTa, Selector::Spki, Matching::Sha256);
    let t1 = rec(&c[0], Usage::PkixEe, Selector::Spki, Matching::Sha256);
    assert_eq!(usability(&t0), Err(Unusable::PkixUsage(0)));
    assert_eq!(usability(&t1), Err(Unusable::PkixUsage(1)));
    assert_eq!(
        match_chain(&[t0, t1], &c, HOST, pki.now()),
        ChainMatch::NoUsableRecord
    );
}

#[test]
fn unknown_parameters_and_bad_lengths_are_unusable() {
    let ok = Tlsa {
        usage: 3,
        selector: 1,
        matching: 1,
        data: vec![0; 32],
    };
    assert_eq!(usability(&ok), Ok(()));
    let cases = [
        (
            Tlsa {
                usage: 4,
                ..ok.clone()
            },
            Unusable::UnknownUsage(4),
        ),
        (
            Tlsa {
                usage: 255,
                ..ok.clone()
            },
            Unusable::UnknownUsage(255),
        ),
        (
            Tlsa {
                selector: 2,
                ..ok.clone()
            },
            Unusable::UnknownSelector(2),
        ),
        (
            Tlsa {
                matching: 3,
                ..ok.clone()
            },
            Unusable::UnknownMatching(3),
        ),
        (
            Tlsa {
                data: vec![0; 31],
                ..ok.clone()
            },
            Unusable::BadLength {
                matching: 1,
                expected: 32,
                found: 31,
            },
        ),
        (
            Tlsa {
                matching: 2,
                ..ok.clone()
            },
            Unusable::BadLength {
                matching: 2,
                expected: 64,
                found: 32,
            },
        ),
        (
            Tlsa {
                matching: 0,
                data: Vec::new(),
                ..ok
            },
            Unusable::BadLength {
                matching: 0,
                expected: 0,
                found: 0,
            },
        ),
    ];
    for (t, want) in cases {
        assert_eq!(usability(&t), Err(want), "{t}");
        // An unusable record never matches, whatever the chain.
        assert_eq!(
            match_chain(&[t], &[], HOST, OffsetDateTime::UNIX_EPOCH),
            ChainMatch::NoUsableRecord
        );
    }
}

#[test]
fn hostile_chains_and_data_never_panic() {
    let pki = Pki::new().unwrap();
    let good = chain(&pki, Defect::Valid);
    let junk: Vec<CertificateDer<'static>> = vec![
        CertificateDer::from(Vec::new()),
        CertificateDer::from(vec![0x30, 0x82, 0xff, 0xff]),
        CertificateDer::from(vec![0xff; 5000]),
    ];
    let records = [
        rec(&good[0], Usage::DaneEe, Selector::Spki, Matching::Sha256),
        rec(&good[1], Usage::DaneTa, Selector::Spki, Matching::Sha512),
        Tlsa {
            usage: 3,
            selector: 0,
            matching: 0,
            data: vec![0xff; 5000],
        },
        Tlsa {
            usage: 2,
            selector: 0,
            matching: 0,
            data: vec![0],
        },
    ];
    assert!(matches!(
        match_chain(&records, &junk, HOST, pki.now()),
        ChainMatch::NoMatch(_)
    ));
    assert!(matches!(
        match_chain(&records, &[], HOST, pki.now()),
        ChainMatch::NoMatch(_)
    ));
    // A junk leaf followed by the real intermediate: DANE-TA finds the anchor, but the leaf
    // cannot chain to it.
    let mixed = vec![junk[1].clone(), good[1].clone()];
    assert!(matches!(
        match_chain(&records[1..2], &mixed, HOST, pki.now()),
        ChainMatch::NoMatch(_)
    ));
    // A bad host name is a reason, not a panic.
    let ta = rec(&good[1], Usage::DaneTa, Selector::Spki, Matching::Sha256);
    assert!(matches!(
        match_chain(&[ta], &good, "not a host!", pki.now()),
        ChainMatch::NoMatch(_)
    ));
    assert_eq!(association(&junk[0], 1, 1), None);
}

#[test]
fn first_usable_matching_record_wins() {
    let pki = Pki::new().unwrap();
    let c = chain(&pki, Defect::Valid);
    let other = chain(&pki, Defect::Valid);
    let records = [
        rec(&c[0], Usage::PkixEe, Selector::Spki, Matching::Sha256),
        rec(&other[0], Usage::DaneEe, Selector::Spki, Matching::Sha256),
        rec(&c[1], Usage::DaneTa, Selector::Spki, Matching::Sha256),
        rec(&c[0], Usage::DaneEe, Selector::Spki, Matching::Sha256),
    ];
    assert_eq!(
        match_chain(&records, &c, HOST, pki.now()),
        ChainMatch::Matched(2)
    );
}

#[test]
fn record_for_and_display_give_the_presentation_form() {
    let pki = Pki::new().unwrap();
    let c = chain(&pki, Defect::Valid);
    let mine = record_for(&c[0], 3, 1, 1).unwrap();
    let helper = tlsa_data(&c[0], Usage::DaneEe, Selector::Spki, Matching::Sha256).unwrap();
    assert_eq!(mine.to_string(), helper);
    assert_eq!(record_for(&c[0], 3, 1, 9), None);
}

fn validated(lookup: Lookup<Tlsa>, proof: Proof) -> Result<Validated<Tlsa>, DnsError> {
    Ok(Validated {
        lookup,
        proof,
        why: None,
        first_link: None,
    })
}

#[test]
fn state_follows_the_proof_and_the_records() {
    let usable = Tlsa {
        usage: 3,
        selector: 1,
        matching: 1,
        data: vec![7; 32],
    };
    let pkix = Tlsa {
        usage: 1,
        ..usable.clone()
    };
    let some = |r: Vec<Tlsa>| Lookup::Records {
        records: r,
        cnames: Vec::new(),
    };
    let state = |l, p, mx| DaneState::from_lookup(validated(l, p), mx);
    assert_eq!(
        state(some(vec![usable.clone()]), Proof::Secure, true),
        DaneState::Usable(vec![usable.clone()])
    );
    assert!(state(some(vec![usable.clone()]), Proof::Secure, true).is_usable());
    assert_eq!(
        state(some(vec![pkix.clone()]), Proof::Secure, true),
        DaneState::Unusable(vec![pkix])
    );
    assert_eq!(
        state(some(vec![usable.clone()]), Proof::Secure, false),
        DaneState::Insecure(vec![usable.clone()])
    );
    assert_eq!(
        state(some(vec![usable.clone()]), Proof::Insecure, true),
        DaneState::Insecure(vec![usable.clone()])
    );
    assert_eq!(
        state(some(vec![usable.clone()]), Proof::Bogus, true),
        DaneState::Bogus
    );
    // Could not validate is not bogus (issue class 4): untested, with the reason.
    assert!(matches!(
        state(some(vec![usable.clone()]), Proof::Indeterminate, true),
        DaneState::Indeterminate(_)
    ));
    assert!(matches!(
        state(Lookup::NoData, Proof::Indeterminate, true),
        DaneState::Indeterminate(_)
    ));
    // Behind an MX RRset that is not secure, DANE does not apply whatever the proof.
    assert_eq!(
        state(some(vec![usable.clone()]), Proof::Indeterminate, false),
        DaneState::Insecure(vec![usable])
    );
    assert_eq!(
        state(Lookup::NoData, Proof::Indeterminate, false),
        DaneState::NoTlsa
    );
    assert_eq!(
        state(Lookup::NoData, Proof::Secure, true),
        DaneState::NoTlsa
    );
    assert_eq!(
        state(Lookup::NxDomain, Proof::Insecure, true),
        DaneState::NoTlsa
    );
    assert_eq!(state(Lookup::NoData, Proof::Bogus, true), DaneState::Bogus);
    let failed = DnsError::ServFail {
        name: "x".into(),
        rtype: "TLSA".into(),
    };
    assert_eq!(
        DaneState::from_lookup(Err(failed.clone()), true),
        DaneState::LookupFailed(failed)
    );
}

#[test]
fn insecure_or_failed_address_records_stop_dane_from_applying() {
    let usable = Tlsa {
        usage: 3,
        selector: 1,
        matching: 1,
        data: vec![7; 32],
    };
    let pkix = Tlsa {
        usage: 1,
        ..usable.clone()
    };
    let failed = DnsError::ServFail {
        name: "mx".into(),
        rtype: "A".into(),
    };
    let u = || DaneState::Usable(vec![usable.clone()]);
    assert_eq!(u().with_addresses(Ok(Proof::Secure)), u());
    assert_eq!(
        u().with_addresses(Ok(Proof::Insecure)),
        DaneState::Insecure(vec![usable.clone()])
    );
    assert_eq!(u().with_addresses(Ok(Proof::Bogus)), DaneState::Bogus);
    assert_eq!(
        u().with_addresses(Err(failed.clone())),
        DaneState::LookupFailed(failed.clone())
    );
    assert_eq!(
        DaneState::Unusable(vec![pkix.clone()]).with_addresses(Ok(Proof::Secure)),
        DaneState::Unusable(vec![pkix.clone()])
    );
    // States where DANE does not apply anyway are kept.
    for kept in [
        DaneState::NoTlsa,
        DaneState::Bogus,
        DaneState::Insecure(vec![pkix]),
    ] {
        assert_eq!(kept.clone().with_addresses(Err(failed.clone())), kept);
    }
}
