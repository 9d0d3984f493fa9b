//! Reading a file: YAML (serde-saphyr) into [`File`], with `serde_path_to_error` for the path of
//! a type error and a [`SourceMap`] for the line of any later semantic error.

use std::path::Path;

use crate::problem::{Problem, Problems, Report};
use crate::schema::File;
use crate::source_map::SourceMap;
use crate::validate;

/// A parsed, checked config and the map of where each value stands in the file.
#[derive(Debug)]
pub struct Loaded {
    pub file: File,
    pub source: SourceMap,
}

impl Loaded {
    /// A report for a stage's own checks, with lines from this file.
    pub fn report(&self) -> Report<'_> {
        Report::new(&self.source)
    }
}

/// Reads, parses and checks the config at `path`.
pub fn load(path: &Path) -> Result<Loaded, Problems> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Problems::one(
            path.display().to_string(),
            format!("cannot read config file: {e}"),
        )
    })?;
    parse(&text)
}

/// Parses and checks config text.
pub fn parse(text: &str) -> Result<Loaded, Problems> {
    if text.trim().is_empty() {
        return Err(Problems::one(
            "config",
            "the file is empty; `routes` is required",
        ));
    }
    let source = SourceMap::build(text);
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        with_snippet: false,
    };
    // The path of a type error leaves the closure by the side: returning the error itself
    // stops serde-saphyr at once (returning Ok would make it report the unread rest).
    let mut error_path = None;
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, File>(de).map_err(|e| {
            error_path = Some(e.path().to_string());
            e.into_inner()
        })
    });
    let file = match parsed {
        Ok(file) => file,
        Err(e) => {
            // `?` stands for a key serde could not name (a duplicate, say): cut the path there.
            let path = error_path
                .map(|p| match p.find(".?") {
                    Some(cut) => p[..cut].to_owned(),
                    None => p,
                })
                .filter(|p| !p.is_empty() && p != "." && p != "?")
                // A last key that is the empty string is an empty last segment: shown as `""`.
                // (Keys may contain dots themselves, so nothing inside the path is rewritten.)
                .map(|p| match p.strip_suffix('.') {
                    Some(head) => format!("{head}.\"\""),
                    None => p,
                });
            let line = path
                .as_deref()
                .and_then(|p| source.line(p))
                .or_else(|| e.location().map(|l| l.line() as usize));
            return Err(Problems(vec![Problem {
                path: path.unwrap_or_else(|| "config".to_owned()),
                line,
                message: bare_message(&e),
            }]));
        }
    };
    let loaded = Loaded { file, source };
    validate::check(&loaded)?;
    Ok(loaded)
}

/// The deserializer's message without its own location suffix: we print the line ourselves.
fn bare_message(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    match first.rfind(" at line ") {
        Some(cut) => first[..cut].to_owned(),
        None => first.to_owned(),
    }
}

#[cfg(test)]
mod tests;
