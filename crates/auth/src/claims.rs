//! Claim paths: `realm_access.roles`, `resource_access."my.client".roles`, or a whole key with
//! dots in it such as Auth0's `https://example.com/roles`.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    /// The text as written: first looked up as one whole top-level key.
    whole: String,
    /// Then these keys, one level each.
    segments: Vec<String>,
}

impl ClaimPath {
    pub fn parse(text: &str) -> Result<ClaimPath, String> {
        if text.is_empty() {
            return Err("a claim path cannot be empty".into());
        }
        let mut segments = Vec::new();
        let mut rest = text;
        loop {
            let (segment, after) = if let Some(quoted) = rest.strip_prefix('"') {
                let end = quoted
                    .find('"')
                    .ok_or_else(|| format!("unterminated quote in claim path {text:?}"))?;
                (&quoted[..end], &quoted[end + 1..])
            } else {
                let end = rest.find('.').unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            };
            if segment.is_empty() {
                return Err(format!("empty segment in claim path {text:?}"));
            }
            segments.push(segment.to_owned());
            match after.strip_prefix('.') {
                Some(next) => rest = next,
                None if after.is_empty() => break,
                None => return Err(format!("expected '.' after a quoted segment in {text:?}")),
            }
        }
        Ok(ClaimPath {
            whole: text.to_owned(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.whole
    }

    /// The value at this path: the whole text as one top-level key first, then the segments.
    pub fn lookup<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        if let Some(v) = claims.get(&self.whole) {
            return Some(v);
        }
        let (first, rest) = self.segments.split_first()?;
        let mut value = claims.get(first)?;
        for key in rest {
            value = value.as_object()?.get(key)?;
        }
        Some(value)
    }

    /// A string claim, or the strings of an array claim; a space-separated string is split
    /// (the `scope` convention of RFC 8693 §4.2).
    pub fn strings(&self, claims: &Map<String, Value>) -> Vec<String> {
        match self.lookup(claims) {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A claim that is a string.
    pub fn string(&self, claims: &Map<String, Value>) -> Option<String> {
        self.lookup(claims)
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// The same path: the same text (the segments follow from it).
    pub fn same(&self, other: &ClaimPath) -> bool {
        self.whole == other.whole
    }
}

/// Where a rule or a header reads a caller's claims: the claims themselves, or an
/// [`Identity`](crate::Identity) with the config's paths already resolved.
pub trait Claims {
    fn claim(&self, path: &ClaimPath) -> Option<&Value>;
}

impl Claims for Map<String, Value> {
    fn claim(&self, path: &ClaimPath) -> Option<&Value> {
        path.lookup(self)
    }
}

/// The values at the paths a config reads on every request (forwarded headers, `allow.claims`,
/// tiers' `when`, `key: claim:...`), looked up once when a token is verified.
///
/// A request then reads one short array instead of walking the claims' map, whose keys are
/// each a separate allocation: with many callers, those lookups missed the CPU caches
/// (docs/benchmarks.md, the 10,000-token rotation). The paths are shared by every identity a
/// config's providers make; a path that is not among them (an identity cached before a reload
/// that added it, an API key) is looked up in the claims as before.
#[derive(Debug, Default)]
pub struct Resolved {
    paths: std::sync::Arc<[ClaimPath]>,
    values: Box<[Option<Value>]>,
}

impl Resolved {
    /// Looks up each of `paths` in `claims`.
    pub fn new(paths: &std::sync::Arc<[ClaimPath]>, claims: &Map<String, Value>) -> Resolved {
        Resolved {
            paths: paths.clone(),
            values: paths.iter().map(|p| p.lookup(claims).cloned()).collect(),
        }
    }

    /// `Some(value)` if `path` is one of the resolved paths (its value may be absent).
    pub fn get(&self, path: &ClaimPath) -> Option<Option<&Value>> {
        let i = self.paths.iter().position(|p| p.same(path))?;
        Some(self.values.get(i).and_then(Option::as_ref))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims() -> Map<String, Value> {
        let Value::Object(map) = json!({
            "sub": "u1",
            "realm_access": { "roles": ["admin", "user"] },
            "resource_access": { "my.client": { "roles": ["x"] } },
            "https://example.com/roles": ["editor"],
            "scope": "read  write",
            "a.b": 1,
            "a": { "b": 2 },
        }) else {
            unreachable!()
        };
        map
    }

    #[test]
    fn lookups() {
        let c = claims();
        let get = |p: &str| ClaimPath::parse(p).unwrap().lookup(&c).cloned();
        assert_eq!(get("sub"), Some(json!("u1")));
        assert_eq!(get("realm_access.roles"), Some(json!(["admin", "user"])));
        assert_eq!(
            get(r#"resource_access."my.client".roles"#),
            Some(json!(["x"]))
        );
        assert_eq!(get("https://example.com/roles"), Some(json!(["editor"])));
        // The whole key wins over the split path.
        assert_eq!(get("a.b"), Some(json!(1)));
        assert_eq!(get("realm_access.missing"), None);
        assert_eq!(get("sub.deeper"), None);
    }

    #[test]
    fn strings_from_strings_and_arrays() {
        let c = claims();
        let strings = |p: &str| ClaimPath::parse(p).unwrap().strings(&c);
        assert_eq!(strings("scope"), ["read", "write"]);
        assert_eq!(strings("realm_access.roles"), ["admin", "user"]);
        assert!(strings("a.b").is_empty());
    }

    #[test]
    fn resolved_values_are_the_lookups() {
        let c = claims();
        let path = |p: &str| ClaimPath::parse(p).unwrap();
        let paths: std::sync::Arc<[ClaimPath]> =
            vec![path("realm_access.roles"), path("missing"), path("a.b")].into();
        let resolved = Resolved::new(&paths, &c);
        for p in ["realm_access.roles", "missing", "a.b"] {
            assert_eq!(resolved.get(&path(p)), Some(path(p).lookup(&c)), "{p}");
        }
        // Not resolved: the caller looks in the claims.
        assert_eq!(resolved.get(&path("sub")), None);
        assert_eq!(Resolved::default().get(&path("sub")), None);
    }

    #[test]
    fn malformed_paths() {
        for bad in ["", "a..b", ".a", "a.", r#"a."b"#, r#""a"b"#, r#"a."""#] {
            assert!(ClaimPath::parse(bad).is_err(), "{bad:?}");
        }
    }
}
