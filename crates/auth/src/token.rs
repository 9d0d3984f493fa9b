//! A compact JWS, taken apart strictly before anything trusts it.
//!
//! Nothing here checks a signature: [`Token::parse`] only decides whether the text is a
//! well-formed JWS worth looking a key up for, and reads the unverified `iss` and `kid` that
//! pick the key. Every refusal names what was wrong, never the token itself.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

/// Longer tokens are refused before any decoding (Azure AD tokens with group claims reach ~6
/// KiB; nothing honest comes near this).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Deeper JSON is refused before it is parsed: no honest claim set nests this far, and a
/// parser's recursion is not a resource to hand to an attacker.
pub const MAX_JSON_DEPTH: usize = 32;
/// A longer `kid` is refused.
pub const MAX_KID_BYTES: usize = 256;

#[derive(Debug)]
pub struct Token<'a> {
    pub alg: Algorithm,
    pub kid: Option<String>,
    /// The unverified issuer: it only picks which provider's keys to try.
    pub iss: String,
    pub claims: Map<String, Value>,
    /// `base64url(header) "." base64url(payload)`: what the signature covers.
    pub signing_input: &'a str,
    pub signature: &'a str,
}

impl<'a> Token<'a> {
    pub fn parse(text: &'a str) -> Result<Token<'a>, &'static str> {
        if text.len() > MAX_TOKEN_BYTES {
            return Err("token too large");
        }
        let mut parts = text.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            // Five parts is a JWE: encrypted tokens are not accepted (one explicit token type,
            // RFC 8725 §3.11).
            return Err(if text.split('.').count() == 5 {
                "encrypted tokens (JWE) are not accepted"
            } else {
                "token is not a JWS in compact form"
            });
        };
        if signature.is_empty() {
            // An empty signature is the unsecured `alg: none` shape (RFC 7519 §6; RFC 8725
            // §2.1).
            return Err("token is not signed");
        }
        let signing_input = &text[..header.len() + 1 + payload.len()];

        let header = object(&strict_base64(header)?, "header")?;
        let alg = algorithm(&header)?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) if kid.len() <= MAX_KID_BYTES => Some(kid.clone()),
            Some(Value::String(_)) => return Err("kid too long"),
            Some(_) => return Err("kid is not a string"),
        };
        for refused in ["jku", "x5u", "jwk", "x5c"] {
            // Keys named or carried by the token itself are never used: the token would pick
            // its own verifier (RFC 8725 §3.10; CVE-2018-0114 for `jwk`).
            if header.contains_key(refused) {
                return Err("token header names its own key (jku, x5u, jwk or x5c)");
            }
        }
        if header.contains_key("crit") {
            // We understand no critical extension, so RFC 7515 §4.1.11 says reject.
            return Err("token header has a crit parameter");
        }
        if header.contains_key("enc") || header.contains_key("zip") {
            return Err("encrypted or compressed tokens are not accepted");
        }

        let claims = object(&strict_base64(payload)?, "payload")?;
        let iss = match claims.get("iss") {
            Some(Value::String(iss)) => iss.clone(),
            Some(_) => return Err("iss is not a string"),
            None => return Err("token has no iss"),
        };
        // Checked here so that a malformed signature part is a parse error, not a failed
        // verification; `crypto::verify` decodes it again.
        strict_base64(signature)?;
        Ok(Token {
            alg,
            kid,
            iss,
            claims,
            signing_input,
            signature,
        })
    }
}

/// Strict base64url: no padding, no `+` or `/`, no whitespace, no stray trailing bits
/// (RFC 7515 §2; a lenient decoder lets one token have many spellings).
fn strict_base64(part: &str) -> Result<Vec<u8>, &'static str> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| "token is not strict base64url")
}

fn object(json: &[u8], what: &'static str) -> Result<Map<String, Value>, &'static str> {
    if depth(json) > MAX_JSON_DEPTH {
        return Err(if what == "header" {
            "token header nests too deep"
        } else {
            "token claims nest too deep"
        });
    }
    match serde_json::from_slice(json) {
        Ok(Value::Object(map)) => Ok(map),
        _ if what == "header" => Err("token header is not a JSON object"),
        _ => Err("token claims are not a JSON object"),
    }
}

/// The deepest nesting of `[` and `{` outside strings (an upper bound if the JSON is invalid).
fn depth(json: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// The header's `alg`, exactly as RFC 7518 spells it. `none` in any spelling, and anything
/// unknown, is refused here (RFC 8725 §2.1 and §3.1).
fn algorithm(header: &Map<String, Value>) -> Result<Algorithm, &'static str> {
    let Some(Value::String(alg)) = header.get("alg") else {
        return Err("token header has no alg");
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err("alg none is never accepted");
    }
    parse_algorithm(alg).ok_or("unsupported alg")
}

/// An algorithm name as written in a JWS header, a JWK or the config.
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.c2ln", b64(header), b64(payload))
    }

    const CLAIMS: &str = r#"{"iss":"https://idp","sub":"a","exp":9999999999}"#;

    #[test]
    fn a_well_formed_token_parses() {
        let text = token(r#"{"alg":"RS256","kid":"k1"}"#, CLAIMS);
        let t = Token::parse(&text).unwrap();
        assert_eq!(t.alg, Algorithm::RS256);
        assert_eq!(t.kid.as_deref(), Some("k1"));
        assert_eq!(t.iss, "https://idp");
        assert_eq!(t.signature, "c2ln");
        assert_eq!(t.signing_input.matches('.').count(), 1);
    }

    #[test]
    fn refusals() {
        let deep = format!(r#"{{"iss":"x","a":{}1{}}}"#, "[".repeat(40), "]".repeat(40));
        let cases: Vec<(String, &str)> = vec![
            (
                token(r#"{"alg":"none"}"#, CLAIMS),
                "alg none is never accepted",
            ),
            (
                token(r#"{"alg":"nOnE"}"#, CLAIMS),
                "alg none is never accepted",
            ),
            (token(r#"{"alg":"ES512"}"#, CLAIMS), "unsupported alg"),
            (token(r#"{"alg":"rs256"}"#, CLAIMS), "unsupported alg"),
            (token(r#"{"kid":"x"}"#, CLAIMS), "token header has no alg"),
            (
                token(r#"{"alg":"RS256","kid":7}"#, CLAIMS),
                "kid is not a string",
            ),
            (
                token(
                    &format!(r#"{{"alg":"RS256","kid":"{}"}}"#, "k".repeat(10_000)),
                    CLAIMS,
                ),
                "kid too long",
            ),
            (
                token(r#"{"alg":"RS256","jku":"http://evil"}"#, CLAIMS),
                "token header names its own key (jku, x5u, jwk or x5c)",
            ),
            (
                token(r#"{"alg":"RS256","jwk":{"kty":"oct"}}"#, CLAIMS),
                "token header names its own key (jku, x5u, jwk or x5c)",
            ),
            (
                token(r#"{"alg":"RS256","crit":["exp"]}"#, CLAIMS),
                "token header has a crit parameter",
            ),
            (
                token(r#"["alg"]"#, CLAIMS),
                "token header is not a JSON object",
            ),
            (
                token(r#"{"alg":"RS256"}"#, "[1]"),
                "token claims are not a JSON object",
            ),
            (
                token(r#"{"alg":"RS256"}"#, r#"{"sub":"a"}"#),
                "token has no iss",
            ),
            (
                token(r#"{"alg":"RS256"}"#, r#"{"iss":1}"#),
                "iss is not a string",
            ),
            (
                token(r#"{"alg":"RS256"}"#, &deep),
                "token claims nest too deep",
            ),
            ("a.b".to_owned(), "token is not a JWS in compact form"),
            ("a.b.c.d".to_owned(), "token is not a JWS in compact form"),
            (
                "a.b.c.d.e".to_owned(),
                "encrypted tokens (JWE) are not accepted",
            ),
            (
                format!("{}.{}.", b64(r#"{"alg":"RS256"}"#), b64(CLAIMS)),
                "token is not signed",
            ),
            (
                format!("{}=.{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64(CLAIMS)),
                "token is not strict base64url",
            ),
            (
                format!("{}.{}.c2l+", b64(r#"{"alg":"RS256"}"#), b64(CLAIMS)),
                "token is not strict base64url",
            ),
            (
                format!("{}.{} .c2ln", b64(r#"{"alg":"RS256"}"#), b64(CLAIMS)),
                "token is not strict base64url",
            ),
            ("x".repeat(MAX_TOKEN_BYTES + 1), "token too large"),
        ];
        for (text, why) in cases {
            assert_eq!(
                Token::parse(&text).err(),
                Some(why),
                "{}",
                &text[..text.len().min(80)]
            );
        }
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(depth(br#"{"a":"[[[[\"[[["}"#), 1);
        assert_eq!(depth(br#"{"a":[{"b":[]}]}"#), 4);
    }
}
