//! A refused config: one [`Problem`] per thing wrong, each naming its YAML path and line, in
//! the contract's `validate` format: `error: routes[0].upstream (line 6): unknown upstream "nope"`.

use std::fmt;

use crate::source_map::SourceMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "error: {} (line {line}): {}", self.path, self.message),
            None => write!(f, "error: {}: {}", self.path, self.message),
        }
    }
}

/// Everything wrong with one config file.
#[derive(Debug, Default, Clone)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter()
    }

    /// A problem whose path is not in the file (an unreadable file, say).
    pub fn one(path: impl Into<String>, message: impl Into<String>) -> Problems {
        Problems(vec![Problem {
            path: path.into(),
            line: None,
            message: message.into(),
        }])
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Collects problems while a stage checks or compiles its section, resolving lines from the
/// file's [`SourceMap`].
pub struct Report<'a> {
    source: &'a SourceMap,
    problems: Vec<Problem>,
}

impl<'a> Report<'a> {
    pub fn new(source: &'a SourceMap) -> Report<'a> {
        Report {
            source,
            problems: Vec::new(),
        }
    }

    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let line = self.source.line(&path);
        self.problems.push(Problem {
            path,
            line,
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// `Ok(value)` when nothing was reported, else every problem in file order.
    pub fn finish<T>(mut self, value: T) -> Result<T, Problems> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            self.problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
            Err(Problems(self.problems))
        }
    }
}
