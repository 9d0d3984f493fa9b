//! Route patterns as the config writes them: paths (`/a/{id}/*`) and hosts
//! (`api.example.com`, `*.example.com`, `{tenant}.api.example.com`).

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Literal(String),
    Param(String),
}

/// A parsed path pattern: its segments, and whether it ends in `/*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    pub segments: Vec<Segment>,
    pub wildcard: bool,
}

pub fn parse_path(pattern: &str) -> Result<PathPattern, String> {
    let Some(rest) = pattern.strip_prefix('/') else {
        return Err("path pattern must start with /".to_owned());
    };
    let (body, wildcard) = match rest.strip_suffix('*') {
        Some(body) if body.is_empty() || body.ends_with('/') => (body.trim_end_matches('/'), true),
        Some(_) => return Err("* is only allowed as a whole last segment (/prefix/*)".to_owned()),
        None => (rest, false),
    };
    let mut segments = Vec::new();
    if body.is_empty() && !wildcard {
        // "/" is one empty literal segment, matching only the root.
        segments.push(Segment::Literal(String::new()));
    } else if !body.is_empty() {
        let parts: Vec<&str> = body.split('/').collect();
        let last = parts.len() - 1;
        for (i, seg) in parts.into_iter().enumerate() {
            segments.push(segment(seg, i == last && !wildcard)?);
        }
    }
    Ok(PathPattern { segments, wildcard })
}

fn segment(seg: &str, is_last: bool) -> Result<Segment, String> {
    if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        return if ok {
            Ok(Segment::Param(name.to_owned()))
        } else {
            Err("a {parameter} name may use only letters, digits and _".to_owned())
        };
    }
    if seg.is_empty() && !is_last {
        return Err("empty segment (//) in path pattern".to_owned());
    }
    if seg == "." || seg == ".." {
        return Err("path pattern may not contain . or .. segments".to_owned());
    }
    let bad = |c: char| {
        matches!(c, '{' | '}' | '*' | '%' | '\\' | '?' | '#') || c.is_control() || c.is_whitespace()
    };
    if seg.chars().any(bad) {
        return Err(
            "a literal path segment may not contain { } * % \\ ? #, spaces or control characters"
                .to_owned(),
        );
    }
    Ok(Segment::Literal(seg.to_owned()))
}

/// A host pattern, lowercased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    Exact(String),
    /// `{tenant}` as one whole label: the text before and after it.
    Tenant {
        before: String,
        after: String,
    },
    /// `*.example.com`: the suffix `.example.com`.
    Wildcard(String),
}

pub fn parse_host(pattern: &str) -> Result<HostPattern, String> {
    let host = pattern.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let labels: Vec<&str> = host.split('.').collect();
    let tenants = labels.iter().filter(|l| **l == "{tenant}").count();
    if let Some(suffix) = host.strip_prefix("*.") {
        if suffix.split('.').all(label_ok) {
            return Ok(HostPattern::Wildcard(format!(".{suffix}")));
        }
    } else if tenants == 1 && labels.iter().all(|l| *l == "{tenant}" || label_ok(l)) {
        if let Some((before, after)) = host.split_once("{tenant}") {
            return Ok(HostPattern::Tenant {
                before: before.to_owned(),
                after: after.to_owned(),
            });
        }
    } else if tenants == 0 && labels.iter().all(|l| label_ok(l)) {
        return Ok(HostPattern::Exact(host));
    }
    Err("expected a host name, *.domain or a name with one {tenant} label".to_owned())
}

impl HostPattern {
    /// For a matching (lowercased, port-free) host: `Some(tenant)` where the pattern captures
    /// one, `Some("")` where it matches without a capture.
    pub fn matches<'h>(&self, host: &'h str) -> Option<&'h str> {
        match self {
            HostPattern::Exact(name) => (name == host).then_some(""),
            HostPattern::Wildcard(suffix) => {
                (host.len() > suffix.len() && host.ends_with(suffix.as_str())).then_some("")
            }
            HostPattern::Tenant { before, after } => {
                let label = host
                    .strip_prefix(before.as_str())?
                    .strip_suffix(after.as_str())?;
                (!label.is_empty() && !label.contains('.')).then_some(label)
            }
        }
    }

    /// Literal characters: among patterns of one kind, more literal text is more specific.
    pub fn literal_len(&self) -> usize {
        match self {
            HostPattern::Exact(s) | HostPattern::Wildcard(s) => s.len(),
            HostPattern::Tenant { before, after } => before.len() + after.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_patterns() {
        let p = parse_path("/api/{id}/*").unwrap();
        assert_eq!(
            p.segments,
            vec![Segment::Literal("api".into()), Segment::Param("id".into())]
        );
        assert!(p.wildcard);
        let p = parse_path("/*").unwrap();
        assert!(p.segments.is_empty() && p.wildcard);
        let p = parse_path("/").unwrap();
        assert_eq!(p.segments, vec![Segment::Literal(String::new())]);
        assert!(!p.wildcard);
        let p = parse_path("/api/").unwrap();
        assert_eq!(
            p.segments,
            vec![
                Segment::Literal("api".into()),
                Segment::Literal(String::new())
            ]
        );
        for bad in [
            "api", "/a*", "/a/*/b", "/a//b", "/a/../b", "/a/{}", "/a/{x-y}", "/a/b%2F", "/a b",
            "/a/x{y}",
        ] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_patterns() {
        assert_eq!(
            parse_host("API.Example.com").unwrap(),
            HostPattern::Exact("api.example.com".into())
        );
        let w = parse_host("*.example.com").unwrap();
        assert_eq!(w.matches("a.example.com"), Some(""));
        assert_eq!(w.matches("a.b.example.com"), Some(""));
        assert_eq!(w.matches("example.com"), None);
        assert_eq!(w.matches("badexample.com"), None);
        let t = parse_host("{tenant}.api.example.com").unwrap();
        assert_eq!(t.matches("acme.api.example.com"), Some("acme"));
        assert_eq!(t.matches("a.b.api.example.com"), None);
        assert_eq!(t.matches(".api.example.com"), None);
        for bad in [
            "",
            "*.",
            "a.*.com",
            "{tenant}.{tenant}.com",
            "{x}.example.com",
            "exa mple.com",
            "a..b",
        ] {
            assert!(parse_host(bad).is_err(), "{bad:?}");
        }
    }
}
