//! What a forger can make: JWS signed by any key, edits to a signed token, and headers and
//! claim sets of any shape.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{EcdsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Map, Value};

use super::jwks::json as any_json;
use super::tokens::issuer;
use super::NOW;

pub(super) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(super) fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

pub(super) fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", b64(header.to_string()), b64(claims.to_string()))
}

/// A JWS MACed with `key` by the HMAC of the header's `alg` (HS256 if it names none).
pub(super) fn hmac(header: &Value, claims: &Value, key: &[u8]) -> String {
    let algorithm = match header["alg"].as_str() {
        Some("HS384") => hmac::HMAC_SHA384,
        Some("HS512") => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA256,
    };
    let input = signing_input(header, claims);
    let tag = hmac::sign(&hmac::Key::new(algorithm, key), input.as_bytes());
    format!("{input}.{}", b64(tag))
}

pub(super) fn ecdsa(header: &Value, claims: &Value, key: &EcdsaKeyPair) -> String {
    let input = signing_input(header, claims);
    let sig = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", b64(sig))
}

pub(super) fn rsa(header: &Value, claims: &Value, key: &RsaKeyPair) -> String {
    let input = signing_input(header, claims);
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", b64(sig))
}

/// A change made to a signed token.
#[derive(Debug, Clone)]
pub(super) enum Edit {
    /// Add 1..=255 to one byte of the decoded header or payload.
    Replace {
        payload: bool,
        at: Index,
        by: u8,
    },
    Flip {
        payload: bool,
        at: Index,
        bit: u8,
    },
    Insert {
        payload: bool,
        at: Index,
        byte: u8,
    },
    Remove {
        payload: bool,
        at: Index,
    },
    /// Set one claim, re-encoding the payload.
    Claim {
        name: String,
        value: Value,
    },
    /// Replace one character of the token's text.
    Char {
        at: Index,
        ch: char,
    },
}

pub(super) fn edit() -> impl Strategy<Value = Edit> {
    let part = any::<bool>();
    prop_oneof![
        (part, any::<Index>(), 1..=255u8).prop_map(|(payload, at, by)| Edit::Replace {
            payload,
            at,
            by
        }),
        (part, any::<Index>(), 0..8u8).prop_map(|(payload, at, bit)| Edit::Flip {
            payload,
            at,
            bit
        }),
        (part, any::<Index>(), any::<u8>()).prop_map(|(payload, at, byte)| Edit::Insert {
            payload,
            at,
            byte
        }),
        (part, any::<Index>()).prop_map(|(payload, at)| Edit::Remove { payload, at }),
        (
            prop_oneof![
                prop::sample::select(vec!["sub", "roles", "exp", "aud", "iss", "admin", "scope"])
                    .prop_map(str::to_owned),
                "[a-z]{1,6}",
            ],
            prop_oneof![
                Just(json!(["admin"])),
                Just(json!("root")),
                Just(json!(NOW + 999_999)),
                any_json(),
            ],
        )
            .prop_map(|(name, value)| Edit::Claim { name, value }),
        (
            any::<Index>(),
            prop_oneof![
                prop::sample::select(
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
                        .chars()
                        .collect::<Vec<_>>()
                ),
                any::<char>(),
            ],
        )
            .prop_map(|(at, ch)| Edit::Char { at, ch }),
    ]
}

/// The token with the edit made, or `None` if the edit changes nothing.
pub(super) fn apply(token: &str, edit: &Edit) -> Option<String> {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let decoded = |part: &str| URL_SAFE_NO_PAD.decode(part).unwrap();
    let (payload, at) = match edit {
        Edit::Char { at, ch } => {
            let mut chars: Vec<char> = token.chars().collect();
            let i = at.index(chars.len());
            if chars[i] == *ch {
                return None;
            }
            chars[i] = *ch;
            return Some(chars.into_iter().collect());
        }
        Edit::Claim { name, value } => {
            let mut claims: Map<String, Value> =
                serde_json::from_slice(&decoded(&parts[1])).unwrap();
            if claims.get(name) == Some(value) {
                return None;
            }
            claims.insert(name.clone(), value.clone());
            parts[1] = b64(Value::Object(claims).to_string());
            return Some(parts.join("."));
        }
        Edit::Replace { payload, at, .. }
        | Edit::Flip { payload, at, .. }
        | Edit::Insert { payload, at, .. }
        | Edit::Remove { payload, at } => (usize::from(*payload), at),
    };
    let mut bytes = decoded(&parts[payload]);
    let i = at.index(bytes.len());
    match edit {
        Edit::Replace { by, .. } => bytes[i] = bytes[i].wrapping_add(*by),
        Edit::Flip { bit, .. } => bytes[i] ^= 1 << bit,
        Edit::Insert { byte, .. } => bytes.insert(at.index(bytes.len() + 1), *byte),
        _ => {
            bytes.remove(i);
        }
    }
    parts[payload] = b64(bytes);
    Some(parts.join("."))
}

/// A JWS header of any shape: any `alg` and `kid` or none, and fields that must be refused.
pub(super) fn any_header() -> impl Strategy<Value = Value> {
    let alg = prop_oneof![
        Just(None),
        prop::sample::select(vec![
            "HS256", "HS512", "ES256", "ES384", "RS256", "PS256", "EdDSA", "none", "NONE", "nOnE",
            "ES512", "rs256", "",
        ])
        .prop_map(|a| Some(json!(a))),
        any_json().prop_map(Some),
    ];
    let kid = prop_oneof![
        Just(None),
        prop::sample::select(vec!["ec1", "other", ""]).prop_map(|k| Some(json!(k))),
        Just(Some(json!("k".repeat(300)))),
        any_json().prop_map(Some),
    ];
    let extra = prop::collection::vec(
        (
            prop::sample::select(vec![
                "jku", "x5u", "jwk", "x5c", "crit", "enc", "zip", "typ", "cty", "b64", "iss",
            ]),
            any_json(),
        ),
        0..3,
    );
    (alg, kid, extra).prop_map(|(alg, kid, extra)| {
        let mut header = Map::new();
        for (name, value) in extra {
            header.insert(name.into(), value);
        }
        if let Some(alg) = alg {
            header.insert("alg".into(), alg);
        }
        if let Some(kid) = kid {
            header.insert("kid".into(), kid);
        }
        Value::Object(header)
    })
}

/// A claim set of any shape, mostly from a configured issuer so that its key is tried.
pub(super) fn any_claims() -> impl Strategy<Value = Value> {
    let time = prop_oneof![
        Just(None),
        (NOW - 1000..NOW + 1000).prop_map(|t| Some(json!(t))),
        any::<i64>().prop_map(|t| Some(json!(t))),
        any::<f64>().prop_map(|t| Some(json!(t))),
        any_json().prop_map(Some),
    ];
    let iss = prop_oneof![
        3 => issuer().prop_map(|i| Some(json!(i.iss()))),
        1 => Just(None),
        1 => any_json().prop_map(Some),
    ];
    (
        iss,
        time.clone(),
        time.clone(),
        time,
        prop::collection::vec(("[a-z]{1,6}", any_json()), 0..4),
    )
        .prop_map(|(iss, exp, nbf, iat, extra)| {
            let mut claims: Map<String, Value> = extra.into_iter().collect();
            for (name, value) in [("iss", iss), ("exp", exp), ("nbf", nbf), ("iat", iat)] {
                if let Some(value) = value {
                    claims.insert(name.into(), value);
                }
            }
            claims.insert("aud".into(), json!("https://api.example"));
            Value::Object(claims)
        })
}
