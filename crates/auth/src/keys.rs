//! Verification keys of one issuer: from a JWKS document, a PEM public key or an HMAC secret.
//!
//! A key knows which algorithms it may verify (its type, curve and, if the JWK names one, its
//! `alg`), so a token can never choose an algorithm its key was not made for (RFC 8725 §3.1:
//! the HMAC-with-a-public-key confusion, CVE-2015-9235 and CVE-2016-10555).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use crate::token::{parse_algorithm, MAX_KID_BYTES};

/// Keys beyond this many in one JWKS are ignored (an honest JWKS holds a handful).
pub const MAX_KEYS: usize = 64;
/// A token without `kid` tries at most this many keys.
pub const MAX_KEYS_WITHOUT_KID: usize = 4;
/// RSA moduli shorter than this are refused (NIST SP 800-131A; RFC 7518 §3.3 says 2048).
const MIN_RSA_BYTES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    P256,
    P384,
    Ed25519,
    Hmac,
}

impl KeyType {
    fn algorithms(self) -> &'static [Algorithm] {
        use Algorithm::*;
        match self {
            KeyType::Rsa => &[RS256, RS384, RS512, PS256, PS384, PS512],
            KeyType::P256 => &[ES256],
            KeyType::P384 => &[ES384],
            KeyType::Ed25519 => &[EdDSA],
            KeyType::Hmac => &[HS256, HS384, HS512],
        }
    }
}

pub struct Key {
    pub kid: Option<String>,
    pub key_type: KeyType,
    /// The JWK's own `alg`, if it has one: then only that algorithm.
    pub alg: Option<Algorithm>,
    pub decoding: DecodingKey,
    /// Unique in the process: a cached verification names the key that made it, so that a key
    /// removed by rotation invalidates what it verified.
    pub serial: u64,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("key_type", &self.key_type)
            .field("alg", &self.alg)
            .finish()
    }
}

impl Key {
    fn new(kid: Option<String>, key_type: KeyType, alg: Option<Algorithm>, d: DecodingKey) -> Key {
        static SERIAL: AtomicU64 = AtomicU64::new(1);
        Key {
            kid,
            key_type,
            alg,
            decoding: d,
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Whether this key may verify a token signed with `alg`.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.key_type.algorithms().contains(&alg) && self.alg.is_none_or(|a| a == alg)
    }
}

#[derive(Debug, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<Key>>,
    /// Keys without a `kid` (a PEM file, a secret, a JWK without one).
    unnamed: Vec<Arc<Key>>,
}

impl KeySet {
    pub fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&mut self, key: Key) {
        match key.kid.clone() {
            // The first key with a kid wins; a second one with the same kid is ambiguous.
            Some(kid) => {
                self.by_kid.entry(kid).or_insert_with(|| Arc::new(key));
            }
            None => self.unnamed.push(Arc::new(key)),
        }
    }

    /// The keys a token may be verified with: the one its `kid` names, or, without a `kid`,
    /// the first few keys of a fitting type. Never a key of another issuer.
    pub fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Vec<Arc<Key>> {
        match kid {
            Some(kid) => self
                .by_kid
                .get(kid)
                .or_else(|| {
                    // A PEM key or a secret has no kid; a token that names one still uses it.
                    (self.by_kid.is_empty() && self.unnamed.len() == 1).then(|| &self.unnamed[0])
                })
                .filter(|k| k.accepts(alg))
                .cloned()
                .into_iter()
                .collect(),
            None => self
                .unnamed
                .iter()
                .chain(self.by_kid.values())
                .filter(|k| k.accepts(alg))
                .take(MAX_KEYS_WITHOUT_KID)
                .cloned()
                .collect(),
        }
    }

    /// Whether a kid is known at all (with a fitting type or not): an unknown kid may be a
    /// rotation, worth a refetch; a known one of the wrong type is just a bad token.
    pub fn knows(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Whether the key with this serial is still in the set.
    pub fn contains(&self, kid: Option<&str>, serial: u64) -> bool {
        match kid.and_then(|k| self.by_kid.get(k)) {
            Some(key) => key.serial == serial,
            None => self
                .unnamed
                .iter()
                .chain(self.by_kid.values())
                .any(|k| k.serial == serial),
        }
    }

    /// The usable keys of a JWKS document. A malformed or unusable key is skipped (and
    /// counted); a document without a single usable key is an error, so that it never
    /// replaces a good set.
    pub fn from_jwks(json: &[u8]) -> Result<(KeySet, usize), String> {
        let doc: Value =
            serde_json::from_slice(json).map_err(|e| format!("JWKS is not JSON: {e}"))?;
        let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
            return Err("JWKS has no \"keys\" array".into());
        };
        let mut set = KeySet::default();
        let mut skipped = 0;
        for jwk in keys {
            if set.len() >= MAX_KEYS {
                skipped += 1;
                continue;
            }
            match jwk_key(jwk) {
                Ok(key) => {
                    if key.kid.as_deref().is_some_and(|k| set.knows(k)) {
                        skipped += 1;
                    } else {
                        set.insert(key);
                    }
                }
                Err(_) => skipped += 1,
            }
        }
        if set.is_empty() {
            return Err(format!(
                "JWKS has no usable signing key ({} keys, all skipped)",
                keys.len()
            ));
        }
        Ok((set, skipped))
    }

    /// A PEM public key (RSA, EC P-256/P-384 or Ed25519, SPKI or PKCS#1).
    pub fn from_pem(pem: &[u8]) -> Result<KeySet, String> {
        if pem.windows(11).any(|w| w == b"PRIVATE KEY") {
            return Err("this is a private key: give the public key".into());
        }
        let key = if let Ok(d) = DecodingKey::from_rsa_pem(pem) {
            // The PKCS#1 DER of a 2048-bit key is 270 bytes; of a 1024-bit one, 140.
            if raw(&d).len() < MIN_RSA_BYTES + 8 {
                return Err("RSA key shorter than 2048 bits".into());
            }
            Key::new(None, KeyType::Rsa, None, d)
        } else if let Ok(d) = DecodingKey::from_ec_pem(pem) {
            let key_type = match raw(&d).len() {
                65 => KeyType::P256,
                97 => KeyType::P384,
                _ => return Err("unsupported EC curve (P-256 and P-384 are)".into()),
            };
            Key::new(None, key_type, None, d)
        } else if let Ok(d) = DecodingKey::from_ed_pem(pem) {
            Key::new(None, KeyType::Ed25519, None, d)
        } else {
            return Err("not a PEM public key (RSA, EC or Ed25519)".into());
        };
        let mut set = KeySet::default();
        set.insert(key);
        Ok(set)
    }

    /// An HMAC secret (the raw bytes of the configured string).
    pub fn from_secret(secret: &[u8]) -> KeySet {
        let mut set = KeySet::default();
        set.insert(Key::new(
            None,
            KeyType::Hmac,
            None,
            DecodingKey::from_secret(secret),
        ));
        set
    }
}

fn raw(d: &DecodingKey) -> &[u8] {
    match d.kind() {
        jsonwebtoken::DecodingKeyKind::SecretOrDer(bytes) => bytes,
        jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, .. } => n,
    }
}

/// One JWK as a verification key. Symmetric (`oct`) keys are never taken from a JWKS: a
/// published document holding a shared secret would let anyone sign.
fn jwk_key(jwk: &Value) -> Result<Key, &'static str> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    let bytes = |name: &str| -> Result<Vec<u8>, &'static str> {
        let v = text(name).ok_or("missing key parameter")?;
        URL_SAFE_NO_PAD.decode(v).map_err(|_| "bad base64url")
    };
    if jwk.get("use").is_some_and(|u| u != "sig") {
        return Err("not a signing key");
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verify = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o == "verify"));
        if !verify {
            return Err("key_ops without verify");
        }
    }
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(k)) if k.len() <= MAX_KID_BYTES => Some(k.clone()),
        Some(_) => return Err("bad kid"),
    };
    let alg = match jwk.get("alg") {
        None => None,
        Some(Value::String(a)) => Some(parse_algorithm(a).ok_or("unsupported alg")?),
        Some(_) => return Err("bad alg"),
    };
    let (key_type, decoding) = match text("kty") {
        Some("RSA") => {
            let n = bytes("n")?;
            bytes("e")?;
            let significant = n.iter().skip_while(|b| **b == 0).count();
            if significant < MIN_RSA_BYTES {
                return Err("RSA key shorter than 2048 bits");
            }
            let d =
                DecodingKey::from_rsa_components(text("n").unwrap_or(""), text("e").unwrap_or(""))
                    .map_err(|_| "bad RSA key")?;
            (KeyType::Rsa, d)
        }
        Some("EC") => {
            let (key_type, len) = match text("crv") {
                Some("P-256") => (KeyType::P256, 32),
                Some("P-384") => (KeyType::P384, 48),
                _ => return Err("unsupported curve"),
            };
            if bytes("x")?.len() != len || bytes("y")?.len() != len {
                return Err("EC coordinates of the wrong size");
            }
            let d =
                DecodingKey::from_ec_components(text("x").unwrap_or(""), text("y").unwrap_or(""))
                    .map_err(|_| "bad EC key")?;
            (key_type, d)
        }
        Some("OKP") => {
            if text("crv") != Some("Ed25519") || bytes("x")?.len() != 32 {
                return Err("unsupported OKP key");
            }
            let d = DecodingKey::from_ed_components(text("x").unwrap_or(""))
                .map_err(|_| "bad Ed25519 key")?;
            (KeyType::Ed25519, d)
        }
        _ => return Err("unsupported kty"),
    };
    if alg.is_some_and(|a| !key_type.algorithms().contains(&a)) {
        // A JWK whose alg contradicts its type is not trusted for either.
        return Err("alg does not fit the key type");
    }
    Ok(Key::new(kid, key_type, alg, decoding))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    #[test]
    fn jwks_keeps_good_keys_and_skips_bad_ones() {
        let doc = json!({ "keys": [
            { "kty": "RSA", "kid": "good", "use": "sig", "alg": "RS256", "n": N, "e": "AQAB" },
            { "kty": "RSA", "kid": "enc", "use": "enc", "n": N, "e": "AQAB" },
            { "kty": "RSA", "kid": "short", "n": "AQAB", "e": "AQAB" },
            { "kty": "oct", "kid": "secret", "k": "c2VjcmV0" },
            { "kty": "RSA", "kid": "mismatch", "alg": "ES256", "n": N, "e": "AQAB" },
            { "kty": "RSA", "kid": 5, "n": N, "e": "AQAB" },
            { "kty": "EC", "kid": "badcurve", "crv": "P-521", "x": "AA", "y": "AA" },
            { "kty": "RSA", "kid": "good", "n": N, "e": "AQAB" },
            "not an object",
        ]});
        let (set, skipped) = KeySet::from_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(skipped, 8);
        assert_eq!(set.candidates(Some("good"), Algorithm::RS256).len(), 1);
        // The JWK says RS256: no other RSA algorithm, and never HMAC.
        assert!(set.candidates(Some("good"), Algorithm::PS256).is_empty());
        assert!(set.candidates(Some("good"), Algorithm::HS256).is_empty());
        assert!(set.candidates(Some("other"), Algorithm::RS256).is_empty());
        assert_eq!(set.candidates(None, Algorithm::RS256).len(), 1);
    }

    #[test]
    fn a_jwks_without_usable_keys_is_an_error() {
        for doc in [
            json!({ "keys": [] }),
            json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0" }] }),
            json!({ "nokeys": 1 }),
            json!([1, 2]),
        ] {
            assert!(
                KeySet::from_jwks(doc.to_string().as_bytes()).is_err(),
                "{doc}"
            );
        }
        assert!(KeySet::from_jwks(b"<html>").is_err());
    }

    #[test]
    fn a_huge_jwks_is_capped() {
        let keys: Vec<_> = (0..10_000)
            .map(|i| json!({ "kty": "RSA", "kid": format!("k{i}"), "n": N, "e": "AQAB" }))
            .collect();
        let (set, skipped) =
            KeySet::from_jwks(json!({ "keys": keys }).to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), MAX_KEYS);
        assert_eq!(skipped, 10_000 - MAX_KEYS);
    }

    #[test]
    fn a_secret_verifies_only_hmac() {
        let set = KeySet::from_secret(b"s3cret");
        assert_eq!(set.candidates(None, Algorithm::HS256).len(), 1);
        assert_eq!(set.candidates(Some("any"), Algorithm::HS512).len(), 1);
        assert!(set.candidates(None, Algorithm::RS256).is_empty());
    }

    #[test]
    fn a_private_key_is_not_a_public_key() {
        let pem =
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        assert!(KeySet::from_pem(pem).unwrap_err().contains("private key"));
        assert!(KeySet::from_pem(b"garbage").is_err());
    }
}
