//! Properties of [`normalize`] over generated paths: it agrees with a reference model written
//! from RFC 3986 (§2.3 decoding, §5.2.4 dot segments) and the refusals of docs/routing.md, its
//! normal form is a fixed point of both, and no spelling of `.`, `..` or a name resolves
//! differently from the segments it spells.

use proptest::prelude::*;

use super::{normalize, PathError};

/// The reference model: decode escapes of unreserved characters, collapse `//`, then remove
/// dot segments with RFC 3986 §5.2.4's input/output buffers. A refusal is the set of every
/// reason the path has, since the router reports only the first it meets.
fn model(raw: &str) -> Result<String, Vec<PathError>> {
    if !raw.starts_with('/') {
        return Err(vec![PathError::NotAbsolute]);
    }
    let mut why = Vec::new();
    if raw.chars().any(|c| c.is_ascii_control()) {
        why.push(PathError::ControlByte);
    }
    if raw.contains('\\') {
        why.push(PathError::Backslash);
    }
    if !why.is_empty() {
        return Err(why);
    }

    // RFC 3986 §2.3: `%XX` of ALPHA / DIGIT / "-" / "." / "_" / "~" is that character.
    let mut chunks = raw.split('%');
    let mut decoded = chunks.next().unwrap_or_default().to_owned();
    for chunk in chunks {
        let b = chunk.as_bytes();
        if b.len() < 2 || !b[0].is_ascii_hexdigit() || !b[1].is_ascii_hexdigit() {
            why.push(PathError::BadEscape);
            continue;
        }
        let byte = u8::from_str_radix(&chunk[..2], 16).unwrap();
        match byte as char {
            '/' => why.push(PathError::EncodedSlash),
            '\\' => why.push(PathError::Backslash),
            c if c.is_ascii_control() => why.push(PathError::ControlByte),
            c if c.is_ascii_alphanumeric() || "-._~".contains(c) => decoded.push(c),
            _ => decoded.push_str(&format!("%{byte:02X}")),
        }
        decoded.push_str(&chunk[2..]);
    }
    if !why.is_empty() {
        return Err(why);
    }

    let mut collapsed = String::new();
    for c in decoded.chars() {
        if !(c == '/' && collapsed.ends_with('/')) {
            collapsed.push(c);
        }
    }
    for segment in collapsed.split('/') {
        // docs/routing.md: a `.` or `..` segment with `;` parameters (CVE-2020-1957).
        if segment.contains(';') && matches!(segment.split(';').next(), Some("." | "..")) {
            why.push(PathError::DotSegmentParameters);
        }
    }

    // RFC 3986 §5.2.4, steps B, C and E (A and D need a relative path); popping from an empty
    // output is going above the root, which RFC 3986 clamps and the router refuses.
    let mut input = collapsed;
    let mut output = String::new();
    while !input.is_empty() {
        if input.starts_with("/./") {
            input.replace_range(..3, "/");
        } else if input == "/." {
            input = "/".into();
        } else if input.starts_with("/../") || input == "/.." {
            input.replace_range(..3, "");
            if input.is_empty() {
                input = "/".into();
            }
            match output.rfind('/') {
                Some(at) if !output.is_empty() => output.truncate(at),
                _ => why.push(PathError::AboveRoot),
            }
        } else {
            let end = input[1..].find('/').map_or(input.len(), |at| at + 1);
            output.extend(input.drain(..end));
        }
    }
    if why.is_empty() {
        Ok(output)
    } else {
        Err(why)
    }
}

/// Path pieces that matter: every spelling of `.`, separators, escapes kept, decoded and
/// refused, `;` parameters, and ordinary names.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "/", "//", ".", "..", "%2e", "%2E", "%2e%2E", ".%2e", "%2E.", "...", "a", "b", "api",
            "admin", "%61", "%41dmin", "%7e", "%7E", "%2d", "%5F", "%30", "%20", "%3a", "%3A",
            "%25", "%252e", "%e9", "\u{e9}", "~", "-", ";", ";x", ".;", "..;", "%3b", "?", "#",
            "%2f", "%2F", "%5c", "%5C", "\\", "%00", "%0a", "%1F", "%7f", "\u{1}", "\t", "%",
            "%4", "%zz", "%g1", "%\u{e9}",
        ]).prop_map(str::to_owned),
        1 => "[a-zA-Z0-9._~%;/-]{1,4}",
    ]
}

/// A raw path: mostly absolute, built from [`piece`]s.
fn raw_path() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["/", "/", "/", "", "//", "/api/public/"]),
        prop::collection::vec(piece(), 0..14),
    )
        .prop_map(|(start, pieces)| format!("{start}{}", pieces.concat()))
}

/// One segment, as the walk sees it, whatever its spelling.
#[derive(Debug, Clone)]
enum Segment {
    Name(String),
    Dot,
    DotDot,
    Empty,
    /// Looks dot-like or escaped but is an ordinary segment whose normal form is itself.
    Literal(&'static str),
}

fn segment() -> impl Strategy<Value = Segment> {
    prop_oneof![
        3 => "[a-zA-Z0-9_~-][a-zA-Z0-9._~-]{0,5}".prop_map(Segment::Name),
        2 => Just(Segment::Dot),
        3 => Just(Segment::DotDot),
        1 => Just(Segment::Empty),
        1 => prop::sample::select(vec![
            "...", "..a", ".a", "a.", "%252e", "%252E%252e", ".%252e", "%25", "%20", "%3A",
            "a;b", "..a;", "%E9",
        ])
        .prop_map(Segment::Literal),
    ]
}

/// A spelling of `text` (unreserved characters only) with each character escaped or not, in
/// either hex case.
fn spell(text: &str) -> impl Strategy<Value = String> {
    let chars: Vec<char> = text.chars().collect();
    prop::collection::vec((any::<bool>(), any::<bool>()), chars.len()).prop_map(move |how| {
        chars
            .iter()
            .zip(how)
            .map(|(&c, (escape, upper))| match (escape, upper) {
                (false, _) => c.to_string(),
                (true, true) => format!("%{:02X}", c as u32),
                (true, false) => format!("%{:02x}", c as u32),
            })
            .collect()
    })
}

fn spelled(segment: &Segment) -> BoxedStrategy<String> {
    match segment {
        Segment::Name(name) => spell(name).boxed(),
        Segment::Dot => spell(".").boxed(),
        Segment::DotDot => spell("..").boxed(),
        Segment::Empty => Just(String::new()).boxed(),
        Segment::Literal(text) => Just((*text).to_owned()).boxed(),
    }
}

/// A prefix of ordinary names, then segments; each with a random spelling.
fn walk() -> impl Strategy<Value = (Vec<String>, Vec<Segment>, String)> {
    (
        prop::collection::vec("[a-z]{1,6}", 1..4),
        prop::collection::vec(segment(), 0..10),
        any::<bool>(),
    )
        .prop_flat_map(|(prefix, rest, trailing_slash)| {
            let spellings: Vec<_> = prefix
                .iter()
                .map(|p| spell(p))
                .map(|s| s.boxed())
                .chain(rest.iter().map(spelled))
                .collect();
            (Just(prefix), Just(rest), spellings, Just(trailing_slash))
        })
        .prop_map(|(prefix, rest, spellings, trailing_slash)| {
            let mut raw = format!("/{}", spellings.join("/"));
            if trailing_slash {
                raw.push('/');
            }
            (prefix, rest, raw)
        })
}

/// What the walk of `rest` from `prefix` resolves to, by segments and not by spelling.
fn resolve(prefix: &[String], rest: &[Segment], raw: &str) -> Result<String, PathError> {
    let mut stack: Vec<String> = prefix.to_vec();
    for segment in rest {
        match segment {
            Segment::Name(name) => stack.push(name.clone()),
            Segment::Literal(text) => stack.push((*text).to_owned()),
            Segment::Dot | Segment::Empty => {}
            Segment::DotDot => {
                stack.pop().ok_or(PathError::AboveRoot)?;
            }
        }
    }
    let ends_in_directory = raw.ends_with('/')
        || matches!(rest.last(), Some(Segment::Dot | Segment::DotDot))
        || stack.is_empty();
    let mut out = String::new();
    for name in &stack {
        out.push('/');
        out.push_str(name);
    }
    if ends_in_directory {
        out.push('/');
    }
    Ok(out)
}

/// What a normal form looks like (docs/routing.md, "Path normalisation").
fn assert_normal(n: &str) {
    assert!(n.starts_with('/'), "{n:?}");
    for bad in ["//", "/./", "/../", "\\"] {
        assert!(!n.contains(bad), "{n:?} contains {bad:?}");
    }
    assert!(!n.ends_with("/.") && !n.ends_with("/.."), "{n:?}");
    assert!(!n.chars().any(|c| c.is_ascii_control()), "{n:?}");
    for escape in n.split('%').skip(1) {
        let hex = escape.get(..2).unwrap_or_default();
        assert!(
            hex.len() == 2 && hex.chars().all(|c| matches!(c, '0'..='9' | 'A'..='F')),
            "{n:?}: escape not in upper-case hex"
        );
        let byte = u8::from_str_radix(hex, 16).unwrap() as char;
        assert!(
            !(byte.is_ascii_alphanumeric() || "-._~/\\".contains(byte) || byte.is_ascii_control()),
            "{n:?}: %{hex} should have been decoded or refused"
        );
    }
}

proptest::proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn normalize_never_panics(text in any::<String>()) {
        let _ = normalize(&text);
        let _ = normalize(&format!("/{text}"));
    }

    #[test]
    fn normalize_agrees_with_the_rfc_3986_model(raw in raw_path()) {
        match (normalize(&raw), model(&raw)) {
            (Ok(got), Ok(want)) => prop_assert_eq!(got.as_ref(), want.as_str(), "{:?}", raw),
            (Err(e), Err(reasons)) => {
                prop_assert!(reasons.contains(&e), "{:?}: router {:?}, model {:?}", raw, e, reasons)
            }
            (got, want) => prop_assert!(false, "{:?}: router {:?}, model {:?}", raw, got, want),
        }
    }

    #[test]
    fn normalising_twice_is_normalising_once(raw in raw_path()) {
        if let Ok(once) = normalize(&raw) {
            assert_normal(&once);
            let twice = normalize(&once).map(|t| t.into_owned());
            prop_assert_eq!(twice.as_deref(), Ok(once.as_ref()), "{:?}", raw);
            // An upstream that resolves the path by RFC 3986 itself reads the same path: it
            // cannot resolve it out of the route the gateway chose.
            prop_assert_eq!(model(&once), Ok(once.clone().into_owned()), "{:?}", raw);
        }
    }

    #[test]
    fn normalising_arbitrary_text_twice_is_normalising_once(text in "/\\PC{0,40}") {
        if let Ok(once) = normalize(&text) {
            assert_normal(&once);
            let twice = normalize(&once).map(|t| t.into_owned());
            prop_assert_eq!(twice.as_deref(), Ok(once.as_ref()), "{:?}", text);
        }
    }

    /// Every spelling of `.`, `..` and a name (escaped or not, either hex case) resolves as
    /// the segment it spells: so the normal form is under a prefix exactly when the walk of
    /// segments ends under it, and `..` above the root is refused however it is spelled.
    #[test]
    fn no_spelling_of_dot_segments_escapes_a_prefix((prefix, rest, raw) in walk()) {
        let want = resolve(&prefix, &rest, &raw);
        let got = normalize(&raw).map(|n| n.into_owned());
        prop_assert_eq!(&got, &want, "{:?}", raw);
        if let Ok(n) = got {
            let base = format!("/{}", prefix.join("/"));
            let under = n == base || n.starts_with(&format!("{base}/"));
            let mut stack = prefix.clone();
            let mut stayed = true;
            for segment in &rest {
                match segment {
                    Segment::DotDot => {
                        stack.pop();
                        stayed &= stack.len() >= prefix.len();
                    }
                    Segment::Name(s) => stack.push(s.clone()),
                    Segment::Literal(s) => stack.push((*s).to_owned()),
                    Segment::Dot | Segment::Empty => {}
                }
            }
            // A walk that never climbs out of the prefix stays under it...
            if stayed {
                prop_assert!(under, "{:?} -> {:?} left {:?}", raw, n, base);
            }
            // ...and a path that ends under it got there by its segments, not its spelling.
            prop_assert_eq!(
                under,
                stack.len() >= prefix.len() && stack[..prefix.len()] == prefix[..],
                "{:?} -> {:?}", raw, n
            );
        }
    }
}

#[test]
fn the_model_reads_the_documented_table() {
    // The model is checked against the contract's table before it is trusted as a reference.
    let cases = [
        ("//api//users", Ok("/api/users")),
        ("/api/users/.", Ok("/api/users/")),
        ("/api/public/../admin/x", Ok("/api/admin/x")),
        ("/api/public/..", Ok("/api/")),
        ("/api/public/.%2e/admin", Ok("/api/admin")),
        ("/api/%7Euser", Ok("/api/~user")),
        ("/api/a%3ab", Ok("/api/a%3Ab")),
        ("/api/%252e%252e/admin", Ok("/api/%252e%252e/admin")),
        ("/a//..", Ok("/")),
        ("/api/..a;/c", Ok("/api/..a;/c")),
        ("/a/../../b", Err(PathError::AboveRoot)),
        ("/api/a%2Fb", Err(PathError::EncodedSlash)),
        ("/api/a%5cb", Err(PathError::Backslash)),
        ("/api/a%0Ab", Err(PathError::ControlByte)),
        ("/api/%4", Err(PathError::BadEscape)),
        (
            "/api/public/%2e%2e;/admin",
            Err(PathError::DotSegmentParameters),
        ),
        ("*", Err(PathError::NotAbsolute)),
    ];
    for (raw, want) in cases {
        match (model(raw), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{raw}"),
            (Err(reasons), Err(want)) => assert_eq!(reasons, [want], "{raw}"),
            (got, want) => panic!("{raw}: model {got:?}, table {want:?}"),
        }
    }
}
