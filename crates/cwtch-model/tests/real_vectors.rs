//! `testvectors/vectors.json`: two real server key bundles and a real group invite made by Go
//! Cwtch v0.20.3 (found in `TonyMugwump/cwtchbot:cmd/fuzzbot/fuzzbot.go`, a mirror of
//! `git.openprivacy.ca/sarah/cwtchbot`).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use base64::Engine as _;
use cwtch_model::keybundle::{KEY_TYPE_PRIVACY_PASS, KEY_TYPE_SERVER_ONION, KEY_TYPE_TOKEN_ONION};
use cwtch_model::{derive_group_id, Error, Group, GroupInvite, KeyBundle, TofuBundle};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::Value;
use torv3::{Identity, Onion};

const VECTORS: &str = include_str!("../../../testvectors/vectors.json");

fn vector(name: &str) -> String {
    serde_json::from_str::<Value>(VECTORS).unwrap()[name]
        .as_str()
        .unwrap()
        .to_string()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn bundle_a() -> String {
    vector("server_bundle_A_json")
}

fn bundle_b() -> String {
    vector("server_bundle_B_json")
}

fn invite_json() -> String {
    vector("group_invite_json")
}

#[test]
fn real_bundles_verify_and_reserialise_byte_identically() {
    for (json, server, token) in [
        (
            bundle_a(),
            "isbr2t6bflul2zyi6hjtnuezb2xvfr42svzjg2q3gyqfgg3wmnrbkkqd",
            "li53q6juafu4avr7rtyltmsq2ujyy7scrr3ftnkrlicsxew67xq64syd",
        ),
        (
            bundle_b(),
            "ur33edbwvbevcls5ue6jpkoubdptgkgl5bedzfyau2ibf5276lyp4uid",
            "cxjx5sr3op2i6hjrjsfzjbuefhiyq3tel5ulxnbj26vtvorphlemslid",
        ),
    ] {
        let kb = KeyBundle::from_json(json.as_bytes()).unwrap();
        assert_eq!(kb.to_json(), json.as_bytes());
        let keys = kb.verify().unwrap();
        assert_eq!(keys.server.as_str(), server);
        assert_eq!(keys.token_service.as_str(), token);
        assert_eq!(keys.privacy_pass_key, kb.privacy_pass_key_b64().unwrap());
        assert_eq!(
            keys.privacy_pass_key_bytes().unwrap(),
            kb.privacy_pass_key_bytes().unwrap()
        );
        assert_eq!(kb.server_onion().unwrap(), keys.server);
        assert_eq!(kb.token_onion().unwrap(), keys.token_service);
        // and via the server string
        let s = kb.to_server_string();
        assert!(s.starts_with("server:"));
        assert_eq!(s, format!("server:{}", b64(json.as_bytes())));
        assert_eq!(KeyBundle::parse_server_string(&s).unwrap(), kb);
    }
}

#[test]
fn signature_is_over_the_null_signature_form_not_the_keys() {
    let json = bundle_a();
    let kb = KeyBundle::from_json(json.as_bytes()).unwrap();
    let sig = kb.signature.clone().unwrap();
    let signed = String::from_utf8(kb.signed_bytes()).unwrap();
    let sig_field = format!("\"Signature\":\"{}\"", b64(&sig));
    assert_eq!(signed, json.replace(&sig_field, "\"Signature\":null"));
    let server_key = kb.server_onion().unwrap().public_key().unwrap();
    assert!(server_key.verify(signed.as_bytes(), &sig).is_ok());
    // Only the Keys map: does not verify.
    let keys_only_start = json.find("{\"bulletin").unwrap();
    let keys_only_end = json.find("},\"Signature\"").unwrap() + 1;
    let keys_only = &json[keys_only_start..keys_only_end];
    assert!(keys_only.starts_with('{') && keys_only.ends_with('}'));
    assert!(server_key.verify(keys_only.as_bytes(), &sig).is_err());
    // Nor the whole bundle with its signature in it.
    assert!(server_key.verify(json.as_bytes(), &sig).is_err());
}

#[test]
fn any_tampering_fails() {
    let a = KeyBundle::from_json(bundle_a().as_bytes()).unwrap();
    let b = KeyBundle::from_json(bundle_b().as_bytes()).unwrap();
    let with = |key: &str, value: &str| {
        let mut kb = a.clone();
        kb.keys.insert(key.to_string(), value.to_string());
        kb.verify()
    };
    // Another valid value for each key.
    for key in [
        KEY_TYPE_SERVER_ONION,
        KEY_TYPE_TOKEN_ONION,
        KEY_TYPE_PRIVACY_PASS,
    ] {
        assert_eq!(
            with(key, b.key(key).unwrap()),
            Err(Error::BadSignature),
            "{key}"
        );
    }
    // An invalid onion.
    let mut bad_onion = a.key(KEY_TYPE_TOKEN_ONION).unwrap().to_string();
    bad_onion.replace_range(0..1, "m");
    assert!(matches!(
        with(KEY_TYPE_TOKEN_ONION, &bad_onion),
        Err(Error::InvalidOnion {
            what: KEY_TYPE_TOKEN_ONION,
            ..
        })
    ));
    // An extra key is signed too.
    assert_eq!(with("extra", "x"), Err(Error::BadSignature));
    // Each key missing.
    for key in [
        KEY_TYPE_SERVER_ONION,
        KEY_TYPE_TOKEN_ONION,
        KEY_TYPE_PRIVACY_PASS,
    ] {
        let mut kb = a.clone();
        kb.keys.remove(key);
        assert_eq!(kb.verify(), Err(Error::MissingKey { key_type: key }));
    }
    // The signature: every bit flipped, truncated, absent, swapped.
    let sig = a.signature.clone().unwrap();
    for bit in 0..sig.len() * 8 {
        let mut kb = a.clone();
        if let Some(s) = kb.signature.as_mut() {
            s[bit / 8] ^= 1 << (bit % 8);
        }
        assert_eq!(kb.verify(), Err(Error::BadSignature), "bit {bit}");
    }
    let mut kb = a.clone();
    kb.signature = Some(sig[..63].to_vec());
    assert_eq!(kb.verify(), Err(Error::BadSignature));
    kb.signature = None;
    assert_eq!(kb.verify(), Err(Error::MissingSignature));
    kb.signature = b.signature.clone();
    assert_eq!(kb.verify(), Err(Error::BadSignature));
}

#[test]
fn bundles_we_sign_verify() {
    let server = Identity::from_seed(&[1; 32]);
    let token = Identity::from_seed(&[2; 32]);
    let mut kb = KeyBundle::new_server_bundle(&server.onion(), &token.onion(), &[7; 32]);
    assert_eq!(kb.verify(), Err(Error::MissingSignature));
    kb.sign(&server);
    let keys = kb.verify().unwrap();
    assert_eq!(keys.server, server.onion());
    assert_eq!(keys.token_service, token.onion());
    assert_eq!(keys.privacy_pass_key_bytes().unwrap(), [7; 32]);
    let again = KeyBundle::parse_server_string(&kb.to_server_string()).unwrap();
    assert_eq!(again.verify().unwrap(), keys);
    // Signed by the wrong key.
    kb.sign(&token);
    assert_eq!(kb.verify(), Err(Error::BadSignature));
}

#[test]
fn real_group_id_derivation() {
    let key: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode("KyfOazc2n5FrKP3c5yjYay6iTCyMxJAHkOoXUjRWy8A=")
        .unwrap()
        .try_into()
        .unwrap();
    let server = Onion::parse("isbr2t6bflul2zyi6hjtnuezb2xvfr42svzjg2q3gyqfgg3wmnrbkkqd").unwrap();
    assert_eq!(
        derive_group_id(&key, &server),
        "940a798b8268c25b84fc3a8e5aa3db39"
    );
    // Another server, another ID.
    let other = Onion::parse("ur33edbwvbevcls5ue6jpkoubdptgkgl5bedzfyau2ibf5276lyp4uid").unwrap();
    assert_ne!(
        derive_group_id(&key, &other),
        "940a798b8268c25b84fc3a8e5aa3db39"
    );
}

#[test]
fn real_invite_round_trips_byte_identically() {
    let json = invite_json();
    let invite = GroupInvite::from_json(json.as_bytes()).unwrap();
    assert_eq!(invite.group_id, "940a798b8268c25b84fc3a8e5aa3db39");
    assert_eq!(invite.group_name, "Cwtch Release Candidate Testers!");
    assert_eq!(
        (invite.signed_group_id.as_ref(), invite.timestamp),
        (None, 0)
    );
    invite.check_group_id().unwrap();
    assert_eq!(invite.to_json(), json.as_bytes());
    let rebuilt = GroupInvite::new(
        invite.group_name.clone(),
        invite.shared_key,
        invite.server_host.clone(),
    );
    assert_eq!(rebuilt, invite);
    let s = invite.to_invite_string();
    assert_eq!(s, format!("torv3{}", b64(json.as_bytes())));
    assert_eq!(GroupInvite::parse_invite_string(&s).unwrap(), invite);
}

#[test]
fn group_from_the_real_invite_has_gos_id() {
    let invite =
        GroupInvite::parse_invite_string(&format!("torv3{}", b64(invite_json().as_bytes())))
            .unwrap();
    let group = Group::from_invite(&invite).unwrap();
    assert_eq!(group.id().to_string(), "940a798b8268c25b84fc3a8e5aa3db39");
    assert_eq!(
        group.server().as_str(),
        "isbr2t6bflul2zyi6hjtnuezb2xvfr42svzjg2q3gyqfgg3wmnrbkkqd"
    );
    // Its invite is the real one, byte for byte.
    assert_eq!(
        group.invite(invite.group_name.clone()).to_json(),
        invite_json().as_bytes()
    );
    // A message sealed in it opens in it, and the signature binds Go's ID and the server.
    let alice = Identity::from_seed(&[1; 32]);
    let sealed = group
        .seal(
            &alice,
            r#"{"o":1,"d":"hi"}"#,
            None,
            1_700_000_000,
            &mut ChaCha20Rng::seed_from_u64(1),
        )
        .unwrap();
    assert_eq!(sealed.egm.open([&group]).unwrap(), sealed.message);
}

#[test]
fn bad_invites_are_rejected() {
    let json = invite_json();
    let enc = |j: &str| format!("torv3{}", b64(j.as_bytes()));
    let parse = |j: &str| GroupInvite::parse_invite_string(&enc(j));
    assert_eq!(
        parse(&json.replace("940a798b", "940a798c")),
        Err(Error::GroupIdMismatch)
    );
    assert!(matches!(
        parse(&json.replace("KyfOazc2n5FrKP3c5yjYay6iTCyMxJAHkOoXUjRWy8A=", "KyfO")),
        Err(Error::InvalidLength {
            expected: 32,
            actual: 3,
            ..
        })
    ));
    assert!(matches!(
        parse(&json.replace("isbr2t6b", "isbr2t6c")),
        Err(Error::InvalidOnion { .. })
    ));
    assert!(matches!(
        GroupInvite::parse_invite_string(&b64(json.as_bytes())),
        Err(Error::MissingPrefix { .. })
    ));
    assert!(matches!(
        GroupInvite::parse_invite_string("torv3!!!!"),
        Err(Error::Base64 { .. })
    ));
    assert!(matches!(parse("{"), Err(Error::JsonSyntax { .. })));
}

#[test]
fn real_tofubundle_parses() {
    let s = format!(
        "tofubundle:server:{}||torv3{}",
        b64(bundle_a().as_bytes()),
        b64(invite_json().as_bytes())
    );
    let tofu = TofuBundle::parse(&s).unwrap();
    assert_eq!(
        tofu.bundle,
        KeyBundle::from_json(bundle_a().as_bytes()).unwrap()
    );
    assert_eq!(
        tofu.invite,
        GroupInvite::from_json(invite_json().as_bytes()).unwrap()
    );
    let keys = tofu.verify().unwrap();
    assert_eq!(keys.server, tofu.invite.server_host);
    assert_eq!(tofu.to_string(), s);

    // The invite's group must live on the bundle's server.
    let mut other = tofu.clone();
    other.bundle = KeyBundle::from_json(bundle_b().as_bytes()).unwrap();
    assert_eq!(other.verify(), Err(Error::ServerMismatch));
    assert!(TofuBundle::parse(&other.to_string()).is_ok());
    // A tampered bundle parses but does not verify.
    let mut bad = tofu.clone();
    bad.bundle
        .keys
        .insert(KEY_TYPE_PRIVACY_PASS.to_string(), "x".to_string());
    assert_eq!(
        TofuBundle::parse(&bad.to_string()).unwrap().verify(),
        Err(Error::BadSignature)
    );

    assert_eq!(
        TofuBundle::parse(&s.replace("||", "|")),
        Err(Error::MissingSeparator)
    );
    assert!(matches!(
        TofuBundle::parse(&s[4..]),
        Err(Error::MissingPrefix { .. })
    ));
    assert!(matches!(
        TofuBundle::parse(&s.replace("tofubundle:server:", "tofubundle:")),
        Err(Error::MissingPrefix {
            prefix: "server:",
            ..
        })
    ));
    assert!(matches!(
        TofuBundle::parse(&s.replace("||torv3", "||")),
        Err(Error::MissingPrefix {
            prefix: "torv3",
            ..
        })
    ));
}
