//! Path normalisation before routing, so that no spelling of a path can reach a route its
//! normal form would not (`/api/public/../admin` is `/api/admin`, `%2e%2e` is `..`).
//!
//! Percent-escapes of unreserved characters (RFC 3986 §2.3) are decoded, others are kept with
//! upper-case hex; `//`, `.` and `..` segments are resolved as in RFC 3986 §5.2.4. An encoded
//! `/` or `\`, a raw `\`, `..` above the root, a control byte or a malformed escape is refused:
//! upstreams disagree on what those mean, and a gateway that guesses differently from its
//! upstream is how path-confusion bypasses happen.

use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    EncodedSlash,
    Backslash,
    AboveRoot,
    ControlByte,
    BadEscape,
    DotSegmentParameters,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "path must start with /",
            PathError::EncodedSlash => "encoded / in path",
            PathError::Backslash => "\\ or encoded \\ in path",
            PathError::AboveRoot => "path goes above the root",
            PathError::ControlByte => "control character in path",
            PathError::BadEscape => "malformed percent-escape in path",
            PathError::DotSegmentParameters => "dot segment with ; parameters in path",
        })
    }
}

impl std::error::Error for PathError {}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Returns the normal form of `path` (no query string), borrowing it when already normal.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let mut needs_work = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            0..=0x1f | 0x7f => return Err(PathError::ControlByte),
            b'\\' => return Err(PathError::Backslash),
            b'%' | b';' => needs_work = true,
            b'/' if matches!(bytes.get(i + 1), Some(b'/') | Some(b'.')) => needs_work = true,
            _ => {}
        }
    }
    if !needs_work {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(bytes)?;
    Ok(Cow::Owned(remove_dot_segments(&decoded)?))
}

fn decode_unreserved(bytes: &[u8]) -> Result<String, PathError> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            // Non-ASCII bytes cannot occur: the input is a &str of a parsed URI, and any
            // multi-byte UTF-8 sequence is copied whole below.
            let ch_len = utf8_len(b);
            let end = (i + ch_len).min(bytes.len());
            out.push_str(std::str::from_utf8(&bytes[i..end]).map_err(|_| PathError::BadEscape)?);
            i = end;
            continue;
        }
        let (Some(h), Some(l)) = (
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(PathError::BadEscape);
        };
        let v = h * 16 + l;
        match v {
            b'/' => return Err(PathError::EncodedSlash),
            b'\\' => return Err(PathError::Backslash),
            0..=0x1f | 0x7f => return Err(PathError::ControlByte),
            v if is_unreserved(v) => out.push(v as char),
            v => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(v >> 4)] as char);
                out.push(HEX[usize::from(v & 15)] as char);
            }
        }
        i += 3;
    }
    Ok(out)
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

/// RFC 3986 §5.2.4, with empty segments (`//`) dropped and `..` above the root refused.
/// A dot segment carrying `;` parameters (`..;/`) is refused: Servlet containers resolve it as
/// `..` after routing, a known way past path rules (CVE-2020-1957 and kin).
fn remove_dot_segments(path: &str) -> Result<String, PathError> {
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for seg in path.split('/').skip(1) {
        trailing_slash = false;
        if let Some((dots, _)) = seg.split_once(';') {
            if dots == "." || dots == ".." {
                return Err(PathError::DotSegmentParameters);
            }
        }
        match seg {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                stack.pop().ok_or(PathError::AboveRoot)?;
                trailing_slash = true;
            }
            s => stack.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for seg in &stack {
        out.push('/');
        out.push_str(seg);
    }
    if trailing_slash || stack.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, normal form or error): the table the contract's "Routing" section implies.
    const CASES: &[(&str, Result<&str, PathError>)] = &[
        ("/", Ok("/")),
        ("/api/users", Ok("/api/users")),
        ("/api/users/", Ok("/api/users/")),
        ("//api//users", Ok("/api/users")),
        ("/api///users//", Ok("/api/users/")),
        ("/api/./users", Ok("/api/users")),
        ("/api/users/.", Ok("/api/users/")),
        ("/api/public/../admin/x", Ok("/api/admin/x")),
        ("/api/public/..", Ok("/api/")),
        ("/api/public/%2e%2e/admin", Ok("/api/admin")),
        ("/api/public/%2E%2E/admin", Ok("/api/admin")),
        ("/api/public/.%2e/admin", Ok("/api/admin")),
        ("/api/public/%2e/x", Ok("/api/public/x")),
        ("/api/%61dmin", Ok("/api/admin")),
        ("/api/%7Euser", Ok("/api/~user")),
        ("/api/a%2db", Ok("/api/a-b")),
        ("/api/a%3ab", Ok("/api/a%3Ab")),
        ("/api/a%20b", Ok("/api/a%20b")),
        ("/api/%25", Ok("/api/%25")),
        ("/api/%252e%252e/admin", Ok("/api/%252e%252e/admin")),
        ("/api/%252F", Ok("/api/%252F")),
        ("/a/b/c/../../d", Ok("/a/d")),
        ("/a/../../b", Err(PathError::AboveRoot)),
        ("/..", Err(PathError::AboveRoot)),
        ("/../etc/passwd", Err(PathError::AboveRoot)),
        ("/%2e%2e/etc", Err(PathError::AboveRoot)),
        ("/./..", Err(PathError::AboveRoot)),
        ("/api/a%2Fb", Err(PathError::EncodedSlash)),
        ("/api/a%2fb", Err(PathError::EncodedSlash)),
        ("/api/a%5Cb", Err(PathError::Backslash)),
        ("/api/a%5cb", Err(PathError::Backslash)),
        ("/api/a\\b", Err(PathError::Backslash)),
        ("/api/a%00b", Err(PathError::ControlByte)),
        ("/api/a%0Ab", Err(PathError::ControlByte)),
        ("/api/a%0db", Err(PathError::ControlByte)),
        ("/api/a%7Fb", Err(PathError::ControlByte)),
        ("/api/a\u{1}b", Err(PathError::ControlByte)),
        ("/api/a\tb", Err(PathError::ControlByte)),
        ("/api/%", Err(PathError::BadEscape)),
        ("/api/%4", Err(PathError::BadEscape)),
        ("/api/%zz", Err(PathError::BadEscape)),
        ("api/users", Err(PathError::NotAbsolute)),
        ("", Err(PathError::NotAbsolute)),
        ("*", Err(PathError::NotAbsolute)),
        ("/caf\u{e9}", Ok("/caf\u{e9}")),
        ("/.hidden", Ok("/.hidden")),
        ("/a/..b", Ok("/a/..b")),
        ("/a/...", Ok("/a/...")),
        (
            "/api/public/..;/admin",
            Err(PathError::DotSegmentParameters),
        ),
        (
            "/api/public/.;x/admin",
            Err(PathError::DotSegmentParameters),
        ),
        (
            "/api/public/%2e%2e;/admin",
            Err(PathError::DotSegmentParameters),
        ),
        ("/api/a;b/c", Ok("/api/a;b/c")),
        ("/api/..a;/c", Ok("/api/..a;/c")),
    ];

    #[test]
    fn table() {
        for (input, want) in CASES {
            let got = normalize(input);
            let got = got.as_ref().map(|c| c.as_ref()).map_err(|e| *e);
            assert_eq!(got, *want, "normalize({input:?})");
        }
    }

    #[test]
    fn normalising_twice_is_normalising_once() {
        for (input, _) in CASES {
            if let Ok(once) = normalize(input) {
                let twice = normalize(&once).map(|c| c.into_owned());
                assert_eq!(twice.as_deref(), Ok(once.as_ref()), "normalize({input:?})");
            }
        }
    }

    #[test]
    fn already_normal_paths_are_borrowed() {
        assert!(matches!(normalize("/api/users/42"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize("/api/x%2e"), Ok(Cow::Owned(_))));
    }
}
