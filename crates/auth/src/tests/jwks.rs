//! Properties of [`KeySet::from_jwks`] against hostile documents: it never panics, it keeps a key
//! exactly when docs/authentication.md ("What a JWKS may contain") says a key is usable, the
//! first usable key of a `kid` wins, at most 64 keys are kept, and no `oct` key ever verifies.

use std::collections::HashMap;
use std::sync::LazyLock;

use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKeyKind};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::keys::{Key, KeySet, KeyType, MAX_KEYS};
use crate::verify::{self, Rules};

/// Names and strings of JWKs and JWS headers, over-represented in generated JSON.
const NAMES: &[&str] = &[
    "keys", "kty", "kid", "use", "key_ops", "alg", "crv", "n", "e", "x", "y", "k", "d", "iss",
    "sub", "exp", "nbf", "iat", "aud", "jku", "jwk", "x5c", "crit", "enc", "zip", "typ",
];
const WORDS: &[&str] = &[
    "RSA",
    "EC",
    "OKP",
    "oct",
    "sig",
    "enc",
    "verify",
    "sign",
    "P-256",
    "P-384",
    "P-521",
    "Ed25519",
    "X25519",
    "RS256",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "HS256",
    "EdDSA",
    "none",
    "AQAB",
    "AA",
    "",
    "A=",
    "+/",
    "https://ec.example",
];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(NAMES).prop_map(str::to_owned),
        1 => "\\PC{0,8}",
    ]
}

/// Any JSON value, with the words of JWKs and tokens over-represented.
pub(super) fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::from),
        prop::sample::select(WORDS).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((name(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Real public keys of every type a JWKS may hold, made once.
struct Material {
    rsa: Value,
    p256: [Value; 2],
    p384: Value,
    ed25519: Value,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn ec_jwk(crv: &str, point: &[u8]) -> Value {
    let half = (point.len() - 1) / 2;
    json!({ "kty": "EC", "crv": crv, "x": b64(&point[1..=half]), "y": b64(&point[half + 1..]) })
}

static MATERIAL: LazyLock<Material> = LazyLock::new(|| {
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let public = rsa.public_key();
    let p256 = || EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let p384 = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
    let ed = Ed25519KeyPair::generate().unwrap();
    let n = public.modulus().big_endian_without_leading_zero().to_vec();
    let e = public.exponent().big_endian_without_leading_zero().to_vec();
    Material {
        rsa: json!({ "kty": "RSA", "n": b64(&n), "e": b64(&e) }),
        p256: [
            ec_jwk("P-256", p256().public_key().as_ref()),
            ec_jwk("P-256", p256().public_key().as_ref()),
        ],
        p384: ec_jwk("P-384", p384.public_key().as_ref()),
        ed25519: json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(ed.public_key().as_ref()) }),
    }
});

/// The docs' rules for one JWK, written from docs/authentication.md, not from the code.
fn usable(jwk: &Value) -> bool {
    let Some(o) = jwk.as_object() else {
        return false;
    };
    let text = |k: &str| o.get(k).and_then(Value::as_str);
    let decoded = |k: &str| text(k).and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
    let sized = |k: &str, len: usize| decoded(k).is_some_and(|b| b.len() == len);
    if o.get("use").is_some_and(|u| u != "sig") {
        return false;
    }
    if let Some(ops) = o.get("key_ops") {
        if !ops
            .as_array()
            .is_some_and(|a| a.iter().any(|op| op == "verify"))
        {
            return false;
        }
    }
    match o.get("kid") {
        None => {}
        Some(Value::String(kid)) if kid.len() <= 256 => {}
        Some(_) => return false,
    }
    let algs: &[&str] = match (text("kty"), text("crv")) {
        (Some("RSA"), _) => {
            let bits = decoded("n").map_or(0, |n| n.iter().skip_while(|b| **b == 0).count() * 8);
            if bits < 2048 || decoded("e").is_none() {
                return false;
            }
            &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
        }
        (Some("EC"), Some("P-256")) if sized("x", 32) && sized("y", 32) => &["ES256"],
        (Some("EC"), Some("P-384")) if sized("x", 48) && sized("y", 48) => &["ES384"],
        (Some("OKP"), Some("Ed25519")) if sized("x", 32) => &["EdDSA"],
        _ => return false,
    };
    match o.get("alg") {
        None => true,
        Some(Value::String(alg)) => algs.contains(&alg.as_str()),
        Some(_) => false,
    }
}

/// A JWK that starts as a real key of some type with optional good metadata, then has up to
/// three fields replaced by a wrong value, a wrong type or nothing.
fn hostile_jwk() -> impl Strategy<Value = Value> {
    let metadata = (
        prop::option::of(prop::sample::select(vec!["k1", "k2", ""])),
        prop::option::of(Just("sig")),
        prop::option::of(Just(json!(["verify"]))),
        any::<bool>(),
    );
    let replacement = prop_oneof![
        2 => Just(None),
        3 => json().prop_map(Some),
        3 => prop::sample::select(vec![
            json!("oct"), json!("RSA"), json!("EC"), json!("OKP"), json!("enc"), json!("sig"),
            json!(["sign"]), json!(["verify", "sign"]), json!("verify"), json!("P-256"),
            json!("P-384"), json!("P-521"), json!("Ed448"), json!("ES256"), json!("ES384"),
            json!("RS256"), json!("HS256"), json!("EdDSA"), json!("none"), json!("AQAB"),
            json!("AA"), json!(""), json!("A=="), json!("+/+/"), json!(URL_SAFE_NO_PAD.encode([7u8; 32])),
            json!(URL_SAFE_NO_PAD.encode([7u8; 48])), json!("k".repeat(257)), json!(5), json!(null),
        ]).prop_map(Some),
    ];
    (
        0..5usize,
        metadata,
        prop::collection::vec(
            (
                prop::sample::select(vec![
                    "kty", "kid", "use", "key_ops", "alg", "n", "e", "crv", "x", "y",
                ]),
                replacement,
            ),
            0..4,
        ),
    )
        .prop_map(|(which, (kid, use_, ops, with_alg), edits)| {
            let m = &*MATERIAL;
            let (mut jwk, alg) = match which {
                0 => (m.rsa.clone(), "RS256"),
                1 => (m.p256[0].clone(), "ES256"),
                2 => (m.p384.clone(), "ES384"),
                3 => (m.ed25519.clone(), "EdDSA"),
                _ => (
                    json!({ "kty": "oct", "k": b64(b"0123456789abcdef") }),
                    "HS256",
                ),
            };
            let o = jwk.as_object_mut().unwrap();
            if let Some(kid) = kid {
                o.insert("kid".into(), kid.into());
            }
            if let Some(u) = use_ {
                o.insert("use".into(), u.into());
            }
            if let Some(ops) = ops {
                o.insert("key_ops".into(), ops);
            }
            if with_alg {
                o.insert("alg".into(), alg.into());
            }
            for (field, value) in edits {
                match value {
                    Some(v) => o.insert(field.into(), v),
                    None => o.remove(field),
                };
            }
            jwk
        })
}

fn point(key: &Key) -> Vec<u8> {
    match key.decoding.kind() {
        DecodingKeyKind::SecretOrDer(bytes) => bytes.clone(),
        DecodingKeyKind::RsaModulusExponent { n, .. } => n.clone(),
    }
}

fn p256_point(jwk: &Value) -> Vec<u8> {
    let mut p = vec![4u8];
    for c in ["x", "y"] {
        p.extend(URL_SAFE_NO_PAD.decode(jwk[c].as_str().unwrap()).unwrap());
    }
    p
}

const ALL: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

proptest::proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = KeySet::from_jwks(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(doc in json(), keys in prop::collection::vec(json(), 0..8)) {
        let _ = KeySet::from_jwks(doc.to_string().as_bytes());
        let n = keys.len();
        if let Ok((set, skipped)) = KeySet::from_jwks(json!({ "keys": keys }).to_string().as_bytes()) {
            prop_assert!(!set.is_empty() && set.len() <= MAX_KEYS);
            prop_assert_eq!(set.len() + skipped, n);
        }
    }

    /// Every field of a real key replaced by every wrong type, a wrong value or nothing: the
    /// key is kept exactly when the documented rules say it is usable.
    #[test]
    fn a_jwk_is_kept_exactly_when_the_docs_say_it_is_usable(jwk in hostile_jwk()) {
        let doc = json!({ "keys": [jwk] }).to_string();
        match KeySet::from_jwks(doc.as_bytes()) {
            Ok((set, skipped)) => {
                prop_assert!(usable(&jwk), "kept, but the docs say skip: {}", jwk);
                prop_assert_eq!((set.len(), skipped), (1, 0));
                // Whatever else it is, a key from a JWKS never verifies HMAC.
                for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                    prop_assert!(set.candidates(None, alg).is_empty());
                    prop_assert!(set.candidates(jwk["kid"].as_str(), alg).is_empty());
                }
            }
            Err(_) => prop_assert!(!usable(&jwk), "skipped, but the docs say usable: {}", jwk),
        }
    }

    /// Many keys, some unusable, kids from a small pool: the set holds the first usable key of
    /// each kid, every unnamed usable key, never more than 64, and counts the rest as skipped.
    #[test]
    fn first_usable_key_of_a_kid_wins_and_at_most_64_are_kept(
        entries in prop::collection::vec(
            (0..3usize, prop::option::of(0..80usize), any::<bool>()),
            0..300,
        ),
    ) {
        let m = &*MATERIAL;
        let mut keys = Vec::new();
        // The model: which key (by index into `keys`) each kid should hold, and how many keys.
        let mut winners: HashMap<String, usize> = HashMap::new();
        let mut kept = 0;
        for (which, kid, enc) in &entries {
            let mut jwk = match which {
                0 | 1 => m.p256[*which].clone(),
                _ => json!({ "kty": "oct", "k": "c2VjcmV0" }),
            };
            if let Some(kid) = kid {
                jwk["kid"] = json!(format!("k{kid}"));
            }
            if *enc {
                jwk["use"] = json!("enc");
            }
            if usable(&jwk) && kept < MAX_KEYS {
                match kid {
                    Some(kid) if winners.contains_key(&format!("k{kid}")) => {}
                    Some(kid) => {
                        winners.insert(format!("k{kid}"), *which);
                        kept += 1;
                    }
                    None => kept += 1,
                }
            }
            keys.push(jwk);
        }
        let doc = json!({ "keys": keys }).to_string();
        match KeySet::from_jwks(doc.as_bytes()) {
            Ok((set, skipped)) => {
                prop_assert_eq!(set.len(), kept);
                prop_assert_eq!(skipped, entries.len() - kept);
                for (kid, &which) in &winners {
                    let found = set.candidates(Some(kid), Algorithm::ES256);
                    prop_assert_eq!(found.len(), 1, "{}", kid);
                    prop_assert_eq!(point(&found[0]), p256_point(&m.p256[which]), "{}", kid);
                }
                for n in 0..80 {
                    let kid = format!("k{n}");
                    if !winners.contains_key(&kid) {
                        prop_assert!(!set.knows(&kid), "{}", kid);
                    }
                }
            }
            Err(_) => prop_assert_eq!(kept, 0),
        }
    }

    /// `oct` keys of every shape beside a real EC key: none is usable for any algorithm, and a
    /// token MACed with an `oct` key's own `k` is refused even by rules that allow HMAC.
    #[test]
    fn an_oct_key_never_verifies(
        octs in prop::collection::vec(
            (
                prop::option::of("[a-z0-9]{1,4}"),
                prop::option::of(prop::sample::select(vec!["HS256", "HS512", "ES256", "none"])),
                prop::option::of(Just("sig")),
                prop::option::of(Just(json!(["verify"]))),
                prop::collection::vec(any::<u8>(), 0..48),
            ),
            1..8,
        ),
        claims in json(),
    ) {
        let mut keys = vec![MATERIAL.p256[0].clone()];
        let mut kids = Vec::new();
        for (kid, alg, use_, ops, k) in &octs {
            let mut jwk = json!({ "kty": "oct", "k": b64(k) });
            if let Some(kid) = kid {
                jwk["kid"] = json!(format!("oct-{kid}"));
                kids.push(format!("oct-{kid}"));
            }
            if let Some(alg) = alg {
                jwk["alg"] = json!(alg);
            }
            if let Some(u) = use_ {
                jwk["use"] = json!(u);
            }
            if let Some(ops) = ops {
                jwk["key_ops"] = ops.clone();
            }
            keys.push(jwk);
        }
        let (set, skipped) =
            KeySet::from_jwks(json!({ "keys": keys }).to_string().as_bytes()).unwrap();
        prop_assert_eq!((set.len(), skipped), (1, octs.len()));
        // A token naming an `oct` kid may still get the set's one unnamed key (as a PEM key
        // would be used): that is the EC key, for ES256 only, never the secret.
        for alg in ALL {
            for kid in kids.iter().map(|k| Some(k.as_str())).chain([None]) {
                for key in set.candidates(kid, alg) {
                    prop_assert_eq!(key.key_type, KeyType::P256, "{:?} {:?}", kid, alg);
                    prop_assert_eq!(alg, Algorithm::ES256);
                }
            }
        }
        let everything = Rules { algorithms: ALL.to_vec(), audiences: vec![], clock_skew: 60 };
        for (i, (kid, _, _, _, k)) in octs.iter().enumerate() {
            let alg = ["HS256", "HS384", "HS512"][i % 3];
            let mut header = json!({ "alg": alg });
            if let Some(kid) = kid {
                header["kid"] = json!(format!("oct-{kid}"));
            }
            let mut claims = claims.clone();
            if !claims.is_object() {
                claims = json!({ "value": claims });
            }
            claims["iss"] = json!("https://ec.example");
            claims["exp"] = json!(super::NOW + 600);
            let token = super::forged::hmac(&header, &claims, k);
            let parsed = crate::token::Token::parse(&token).unwrap();
            let got = verify::verify(&parsed, &set, &everything, super::NOW);
            prop_assert!(got.is_err(), "an oct key verified {}", token);
        }
    }
}

#[test]
fn hostile_documents_near_the_size_cap() {
    let cap = crate::remote::MAX_DOCUMENT_BYTES;
    let rsa = &MATERIAL.rsa;
    let key = |i: usize| {
        let mut k = rsa.clone();
        k["kid"] = json!(format!("k{i}"));
        k
    };
    let filled = |unit: &str, open: &str, close: &str| {
        let mut doc = open.to_owned();
        while doc.len() + unit.len() + close.len() < cap {
            doc.push_str(unit);
        }
        doc.pop();
        doc.push_str(close);
        doc
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "deep arrays",
            format!("{}{}", "[".repeat(cap / 2), "]".repeat(cap / 2)),
        ),
        (
            "deep objects in a key",
            format!(
                r#"{{"keys":[{{"kty":"RSA","n":{}1{}}}]}}"#,
                r#"{"a":"#.repeat(cap / 8),
                "}".repeat(cap / 8)
            ),
        ),
        ("empty objects", filled("{},", r#"{"keys":["#, "]}")),
        ("nulls", filled("null,", r#"{"keys":["#, "]}")),
        (
            "one huge kid",
            json!({ "keys": [{ "kty": "EC", "crv": "P-256", "kid": "k".repeat(cap - 200) }] })
                .to_string(),
        ),
        (
            "one huge modulus",
            json!({ "keys": [{ "kty": "RSA", "n": "A".repeat(cap - 200), "e": "AQAB" }] })
                .to_string(),
        ),
        (
            "a huge number",
            format!(r#"{{"keys":[{}]}}"#, "9".repeat(cap - 20)),
        ),
        (
            "one kid repeated",
            filled(&format!("{},", key(0)), r#"{"keys":["#, "]}"),
        ),
    ];
    for (what, doc) in cases {
        assert!(doc.len() <= cap, "{what}: {}", doc.len());
        let started = std::time::Instant::now();
        let got = KeySet::from_jwks(doc.as_bytes()).map(|(set, skipped)| (set.len(), skipped));
        eprintln!("{what}: {got:?} in {:?}", started.elapsed());
        match what {
            "one kid repeated" => assert!(matches!(got, Ok((1, n)) if n > 1000), "{what}"),
            _ => assert!(got.is_err(), "{what}: {got:?}"),
        }
    }
}

#[test]
fn ten_thousand_keys_keep_the_first_64_usable_ones() {
    let m = &*MATERIAL;
    let mut keys = Vec::new();
    for i in 0..10_000 {
        let mut k = match i % 4 {
            0 => json!({ "kty": "oct", "kid": format!("k{i}"), "k": "c2VjcmV0" }),
            1 => json!({ "kty": "EC", "crv": "P-256", "kid": format!("k{i}"), "x": 1, "y": 2 }),
            _ => m.p256[i % 2].clone(),
        };
        if k["kid"].is_null() {
            k["kid"] = json!(format!("k{i}"));
        }
        keys.push(k);
    }
    let doc = json!({ "keys": keys }).to_string();
    let (set, skipped) = KeySet::from_jwks(doc.as_bytes()).unwrap();
    assert_eq!((set.len(), skipped), (MAX_KEYS, 10_000 - MAX_KEYS));
    // The cap counts usable keys in document order: half of the first 128 entries are unusable
    // (an `oct` key, a key with numbers for coordinates), so the 64th usable one is entry 127.
    assert!(set.knows("k126") && set.knows("k127"));
    assert!(!set.knows("k128") && !set.knows("k131"));
    assert!(!set.knows("k0") && !set.knows("k1"));
}
