//! The checks a token passes once its issuer is known: signature with one of that issuer's
//! keys, then the registered claims (RFC 7519 §4.1, RFC 8725 §3.8–3.9).

use std::sync::Arc;

use jsonwebtoken::Algorithm;
use serde_json::Value;

use crate::keys::{Key, KeySet};
use crate::token::Token;

/// What a provider requires of a token's claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub algorithms: Vec<Algorithm>,
    pub audiences: Vec<String>,
    pub clock_skew: i64,
}

/// The key that verified a token: a cached verification stays valid only while it is in the
/// issuer's set.
pub struct Verified {
    pub key: Arc<Key>,
    pub exp: i64,
    pub nbf: Option<i64>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// No key with this `kid` (or, without a `kid`, no key of a fitting type): worth one
    /// refetch of the issuer's keys.
    UnknownKey,
    Invalid(&'static str),
}

pub fn verify(
    token: &Token<'_>,
    keys: &KeySet,
    rules: &Rules,
    now: i64,
) -> Result<Verified, Failure> {
    // The provider's allow-list first: a token never picks an algorithm the operator did not
    // list (RFC 8725 §3.1).
    if !rules.algorithms.contains(&token.alg) {
        return Err(Failure::Invalid("algorithm not allowed for this issuer"));
    }
    let candidates = keys.candidates(token.kid.as_deref(), token.alg);
    if candidates.is_empty() {
        return match &token.kid {
            // A known kid whose key does not fit the algorithm is an attack or a mistake, not a
            // rotation (the HMAC-with-public-key confusion, CVE-2016-10555).
            Some(kid) if keys.knows(kid) => Err(Failure::Invalid("algorithm does not fit the key")),
            _ => Err(Failure::UnknownKey),
        };
    }
    let key = candidates
        .into_iter()
        .find(|key| {
            jsonwebtoken::crypto::verify(
                token.signature,
                token.signing_input.as_bytes(),
                &key.decoding,
                token.alg,
            )
            .unwrap_or(false)
        })
        .ok_or(Failure::Invalid("bad signature"))?;
    let (exp, nbf) = check_claims(token, rules, now).map_err(Failure::Invalid)?;
    Ok(Verified { key, exp, nbf })
}

/// `exp` (required), `nbf`, `iat` with the clock skew, and `aud`.
pub fn check_claims(
    token: &Token<'_>,
    rules: &Rules,
    now: i64,
) -> Result<(i64, Option<i64>), &'static str> {
    let time = |name: &str| -> Result<Option<i64>, &'static str> {
        match token.claims.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
                .map(Some)
                .ok_or("a time claim is not a number"),
            Some(_) => Err("a time claim is not a number"),
        }
    };
    // A token without an expiry would be valid forever (RFC 7519 §4.1.4 makes it optional;
    // we do not).
    let exp = time("exp")?.ok_or("token has no exp")?;
    let nbf = time("nbf")?;
    let iat = time("iat")?;
    check_times(exp, nbf, now, rules.clock_skew)?;
    if iat.is_some_and(|iat| iat > now + rules.clock_skew) {
        return Err("token issued in the future");
    }
    if !rules.audiences.is_empty() {
        // A token minted for another API of the same issuer must not work here (RFC 8725 §3.9).
        let matches = |a: &Value| {
            a.as_str()
                .is_some_and(|a| rules.audiences.iter().any(|x| x == a))
        };
        let ok = match token.claims.get("aud") {
            Some(Value::Array(list)) => list.iter().any(matches),
            Some(aud) => matches(aud),
            None => return Err("token has no aud"),
        };
        if !ok {
            return Err("token audience not accepted");
        }
    }
    Ok((exp, nbf))
}

/// The time checks, also made on every cache hit.
pub fn check_times(exp: i64, nbf: Option<i64>, now: i64, skew: i64) -> Result<(), &'static str> {
    if now >= exp.saturating_add(skew) {
        return Err("token expired");
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
        return Err("token not valid yet");
    }
    Ok(())
}
