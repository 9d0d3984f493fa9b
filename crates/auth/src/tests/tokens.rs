//! Properties of the whole token check ([`Token::parse`], [`verify`], [`KeySet`] and
//! [`Authenticator::authenticate`]) against generated and forged tokens, for three providers:
//! HS256 from a secret, ES256 from a JWKS file and RS256 from a PEM public key.
//!
//! Nothing panics; no unsigned token, changed token, token of another key or HMAC token keyed
//! with a public key is accepted; and a good token still is, so none of this holds vacuously.

use std::sync::{Arc, LazyLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};

use super::forged::{
    any_claims, any_header, apply, b64, ecdsa, edit, hmac, pem, rsa, signing_input,
};
use super::jwks::json as any_json;
use super::{authenticator, check, tempdir, NOW, SECRET};
use crate::keys::KeySet;
use crate::token::Token;
use crate::verify::{self, Rules};
use crate::{AuthError, Authenticator};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Issuer {
    Hs,
    Ec,
    Rs,
}

use Issuer::*;

impl Issuer {
    pub(super) fn iss(self) -> &'static str {
        match self {
            Hs => "https://hs.example",
            Ec => "https://ec.example",
            Rs => "https://rs.example",
        }
    }

    fn header(self) -> Value {
        match self {
            Hs => json!({ "alg": "HS256", "typ": "JWT" }),
            Ec => json!({ "alg": "ES256", "kid": "ec1" }),
            Rs => json!({ "alg": "RS256" }),
        }
    }
}

pub(super) fn issuer() -> impl Strategy<Value = Issuer> {
    prop::sample::select(vec![Hs, Ec, Rs])
}

/// The keys, the authenticator that trusts them, and what an attacker can download.
struct Fixture {
    auth: Authenticator,
    ec: EcdsaKeyPair,
    rsa: RsaKeyPair,
    other_ec: EcdsaKeyPair,
    other_rsa: RsaKeyPair,
    /// The ES256 provider's keys, and every published form of its public key.
    ec_keys: KeySet,
    ec_public: Vec<Vec<u8>>,
    rs_keys: KeySet,
    rs_public: Vec<Vec<u8>>,
    /// One good RS256 token, signed once: RSA signing is slow in a debug build.
    rs_token: String,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let other_ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let other_rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();

    let point = ec.public_key().as_ref().to_vec();
    let jwk = json!({ "kty": "EC", "crv": "P-256", "kid": "ec1", "alg": "ES256",
        "x": b64(&point[1..33]), "y": b64(&point[33..65]) });
    let jwks = json!({ "keys": [jwk] }).to_string();
    let ec_spki = ec.public_key().as_der().unwrap().as_ref().to_vec();
    let ec_public = vec![
        jwks.clone().into_bytes(),
        jwk.to_string().into_bytes(),
        point.clone(),
        point[1..].to_vec(),
        ec_spki.clone(),
        pem("PUBLIC KEY", &ec_spki).into_bytes(),
        b64(&point[1..33]).into_bytes(),
    ];

    let public = rsa.public_key();
    let rs_spki = public.as_der().unwrap().as_ref().to_vec();
    let rs_pem = pem("PUBLIC KEY", &rs_spki);
    let n = public.modulus().big_endian_without_leading_zero().to_vec();
    let rs_public = vec![
        rs_pem.clone().into_bytes(),
        rs_pem.trim_end().as_bytes().to_vec(),
        rs_spki,
        public.as_ref().to_vec(),
        pem("RSA PUBLIC KEY", public.as_ref()).into_bytes(),
        b64(&n).into_bytes(),
        n,
    ];

    let dir = tempdir::Dir::new();
    let jwks_path = dir.file("jwks.json", &jwks);
    let pem_path = dir.file("rsa.pem", &rs_pem);
    let auth = authenticator(&format!(
        "auth:\n  providers:\n    - {{ name: hs, issuer: {}, secret: {SECRET}, audiences: [https://api.example] }}\n    - {{ name: ec, issuer: {}, jwks_file: {jwks_path} }}\n    - {{ name: rs, issuer: {}, public_key_file: {pem_path} }}",
        Hs.iss(), Ec.iss(), Rs.iss(),
    ))
    .unwrap();
    let mut fixture = Fixture {
        auth,
        ec_keys: KeySet::from_jwks(jwks.as_bytes()).unwrap().0,
        rs_keys: KeySet::from_pem(rs_pem.as_bytes()).unwrap(),
        ec,
        rsa,
        other_ec,
        other_rsa,
        ec_public,
        rs_public,
        rs_token: String::new(),
    };
    fixture.rs_token = fixture.sign(Rs, &Rs.header(), &claims(Rs, "rs-user"));
    fixture
});

impl Fixture {
    /// A token signed by the issuer's own key.
    fn sign(&self, issuer: Issuer, header: &Value, claims: &Value) -> String {
        match issuer {
            Hs => hmac(header, claims, SECRET.as_bytes()),
            Ec => ecdsa(header, claims, &self.ec),
            Rs => rsa(header, claims, &self.rsa),
        }
    }

    /// A good token of the issuer: fresh for HS256 and ES256, the one signed once for RS256.
    fn good(&self, issuer: Issuer, sub: &str) -> String {
        match issuer {
            Rs => self.rs_token.clone(),
            _ => self.sign(issuer, &issuer.header(), &claims(issuer, sub)),
        }
    }
}

fn claims(issuer: Issuer, sub: &str) -> Value {
    json!({ "iss": issuer.iss(), "sub": sub, "exp": NOW + 600, "iat": NOW,
            "aud": "https://api.example", "roles": ["user"] })
}

/// The stage's answer, which must be a refusal: always a 401 with a description.
fn refusal(token: &str) -> AuthError {
    match check(&FIXTURE.auth, token) {
        Ok(id) => panic!("accepted as {:?}: {token}", id.subject),
        Err(e) => {
            assert_eq!((e.status, e.code), (401, "invalid_token"), "{e:?}");
            e
        }
    }
}

/// Every algorithm, HMAC included: what a provider would allow if its allow-list were wrong,
/// so that the key's own type is the only thing left to refuse a confused token.
fn every_algorithm() -> Rules {
    use Algorithm::*;
    Rules {
        algorithms: vec![
            HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA,
        ],
        audiences: vec![],
        clock_skew: 60,
    }
}

proptest::proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_is_refused(text in prop_oneof!["\\PC{0,300}", "[A-Za-z0-9_.=+/ -]{0,300}"]) {
        let _ = Token::parse(&text);
        refusal(&text);
    }

    #[test]
    fn three_parts_of_arbitrary_bytes_are_refused(
        parts in prop::array::uniform3(prop::collection::vec(any::<u8>(), 0..200)),
    ) {
        let text = parts.map(b64).join(".");
        let _ = Token::parse(&text);
        refusal(&text);
    }

    /// Well-formed JSON in any shape with a random signature: parsed as far as it goes, never
    /// a panic, never accepted.
    #[test]
    fn json_tokens_with_random_signatures_are_refused(
        header in any_header(),
        claims in any_claims(),
        signature in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            prop::sample::select(vec![32usize, 48, 64, 256]).prop_flat_map(|n| prop::collection::vec(any::<u8>(), n)),
        ],
    ) {
        let text = format!("{}.{}", signing_input(&header, &claims), b64(&signature));
        let _ = Token::parse(&text);
        refusal(&text);
    }

    /// `alg: none` in any case, or an empty signature with any algorithm, for every issuer,
    /// whatever the signature part holds.
    #[test]
    fn unsigned_tokens_are_refused(
        issuer in issuer(),
        none in "[nN][oO][nN][eE]",
        with_none in any::<bool>(),
        signature in prop_oneof![
            Just(String::new()),
            prop::collection::vec(any::<u8>(), 1..64).prop_map(b64),
            Just("good".to_owned()),
        ],
    ) {
        let fixture = &*FIXTURE;
        let good = fixture.good(issuer, "alice");
        let mut header = issuer.header();
        if with_none {
            header["alg"] = json!(none);
        }
        // A real algorithm goes with an empty signature; `none` with any.
        let signature = match signature.as_str() {
            _ if !with_none => String::new(),
            "good" => good.rsplit('.').next().unwrap().to_owned(),
            _ => signature,
        };
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(good.split('.').nth(1).unwrap()).unwrap())
                .unwrap();
        let text = format!("{}.{signature}", signing_input(&header, &claims));
        let e = refusal(&text);
        prop_assert!(
            ["alg none is never accepted", "token is not signed"].contains(&&*e.description),
            "{}: {}", text, e.description
        );
    }

    /// Any byte of the header or payload replaced, flipped, inserted or removed, any claim
    /// set, any character of the text replaced, after signing: refused. The token as signed
    /// is accepted, so the refusal is the edit's doing.
    #[test]
    fn a_token_changed_after_signing_is_refused(
        issuer in issuer(),
        sub in "[a-z]{1,8}",
        edit in edit(),
    ) {
        let good = FIXTURE.good(issuer, &sub);
        prop_assert!(check(&FIXTURE.auth, &good).is_ok(), "{}", good);
        if let Some(forged) = apply(&good, &edit) {
            refusal(&forged);
        }
    }
}

proptest::proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The right header and claims signed by another key of the same type, or carrying the
    /// signature of another token of the right key: refused.
    #[test]
    fn a_token_signed_by_another_key_is_refused(
        issuer in issuer(),
        sub in "[a-z]{1,8}",
        secret in prop::collection::vec(any::<u8>(), 16..64),
    ) {
        let fixture = &*FIXTURE;
        let (header, claims) = (issuer.header(), claims(issuer, &sub));
        let forged = match issuer {
            Hs => hmac(&header, &claims, &secret),
            Ec => ecdsa(&header, &claims, &fixture.other_ec),
            Rs => rsa(&header, &claims, &fixture.other_rsa),
        };
        prop_assert_eq!(refusal(&forged).description, "bad signature");

        let other = fixture.good(issuer, &format!("{sub}-other"));
        let transplanted = format!(
            "{}.{}",
            signing_input(&header, &claims),
            other.rsplit('.').next().unwrap()
        );
        prop_assert_eq!(refusal(&transplanted).description, "bad signature");
    }

    /// HS256/384/512 MACed with any published form of an issuer's public key (the PEM file, its
    /// DER, the JWKS, the point, the modulus): refused by the provider's algorithms, and still
    /// refused by the key itself when every algorithm is allowed (RFC 8725 §3.1,
    /// CVE-2016-10555).
    #[test]
    fn hmac_keyed_with_a_public_key_is_refused(
        issuer in prop::sample::select(vec![Ec, Rs]),
        form in any::<Index>(),
        alg in prop::sample::select(vec!["HS256", "HS384", "HS512"]),
        kid in prop::option::of(prop::sample::select(vec!["ec1", "other"])),
    ) {
        let fixture = &*FIXTURE;
        let (forms, keys) = match issuer {
            Ec => (&fixture.ec_public, &fixture.ec_keys),
            _ => (&fixture.rs_public, &fixture.rs_keys),
        };
        let secret = form.get(forms);
        let mut header = json!({ "alg": alg });
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        let token = hmac(&header, &claims(issuer, "mallory"), secret);
        prop_assert_eq!(refusal(&token).description, "algorithm not allowed for this issuer");
        let parsed = Token::parse(&token).unwrap();
        // Tollgate's own guard: a public key is never tried for HMAC (jsonwebtoken also
        // refuses a key of the wrong family, a second guard this does not rely on).
        prop_assert!(keys.candidates(parsed.kid.as_deref(), parsed.alg).is_empty());
        prop_assert!(
            verify::verify(&parsed, keys, &every_algorithm(), NOW).is_err(),
            "the key verified HMAC: {}", token
        );
    }

    /// The sanity side: good tokens with any subject, roles and extra claims verify.
    #[test]
    fn a_good_token_is_accepted(
        issuer in issuer(),
        sub in "[a-zA-Z0-9@._-]{1,16}",
        roles in prop::collection::vec("[a-z]{1,6}", 0..4),
        extra in prop::collection::vec(("x-[a-z]{1,6}", any_json()), 0..3),
        exp in 1..86_400i64,
    ) {
        let mut claims = claims(issuer, &sub);
        claims["roles"] = json!(roles);
        claims["exp"] = json!(NOW + exp);
        for (name, value) in extra {
            claims[name] = value;
        }
        let token = FIXTURE.sign(issuer, &issuer.header(), &claims);
        let id = check(&FIXTURE.auth, &token);
        prop_assert!(id.is_ok(), "{:?}: {}", id.err(), token);
        let id: Arc<_> = id.unwrap();
        prop_assert_eq!(id.subject.as_deref(), Some(sub.as_str()));
        prop_assert_eq!(&id.roles, &roles);
    }
}
