//! `${VAR}` and `${VAR:-default}` substitution inside string values.
//!
//! It runs on values the YAML parser has already produced, so a substituted value is never
//! parsed as YAML. `$$` is a literal `$`; a `$` not followed by `{` is kept as it is.

/// Expands every `${...}` in `raw` from the process environment.
pub fn expand(raw: &str) -> Result<String, String> {
    expand_with(raw, |name| std::env::var(name).ok())
}

/// The same with a caller-supplied environment (tests).
pub fn expand_with(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    if !raw.contains('$') {
        return Ok(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(body) = tail.strip_prefix("${") {
            let end = body
                .find('}')
                .ok_or_else(|| "unterminated ${...} in string value".to_owned())?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid variable name in ${{{name}}}"));
            }
            // As in the shell, `:-` also replaces a variable that is set but empty.
            match (
                lookup(name).filter(|v| !v.is_empty() || default.is_none()),
                default,
            ) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(format!("environment variable {name} is not set"));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.com".into()),
            "EMPTY" => Some(String::new()),
            "YAML" => Some("a: [b".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_variables_and_defaults() {
        assert_eq!(
            expand_with("https://${HOST}/x", env).unwrap(),
            "https://example.com/x"
        );
        assert_eq!(expand_with("${MISSING:-50ms}", env).unwrap(), "50ms");
        assert_eq!(expand_with("${HOST:-other}", env).unwrap(), "example.com");
        assert_eq!(expand_with("${EMPTY:-d}", env).unwrap(), "d");
        assert_eq!(expand_with("${EMPTY}", env).unwrap(), "");
        assert_eq!(expand_with("no vars", env).unwrap(), "no vars");
        assert_eq!(
            expand_with("cost: $5 and $$HOME", env).unwrap(),
            "cost: $5 and $HOME"
        );
    }

    #[test]
    fn substituted_values_are_never_parsed() {
        assert_eq!(expand_with("${YAML}", env).unwrap(), "a: [b");
    }

    #[test]
    fn unset_variable_is_an_error_naming_it() {
        let err = expand_with("key ${SECRET_KEY}", env).unwrap_err();
        assert!(err.contains("SECRET_KEY"), "{err}");
        assert!(expand_with("${unterminated", env).is_err());
        assert!(expand_with("${}", env).is_err());
        assert!(expand_with("${A-B}", env).is_err());
    }
}
