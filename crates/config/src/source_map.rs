//! Where each node of the YAML file stands: a map from a YAML path (`routes[0].upstream`, the
//! same spelling `serde_path_to_error` uses) to its line, so that any later check, in any
//! crate, can name the line of the value it refuses.

use granit_parser::{Event, Parser};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Built on the first question: a config without problems (every reload of a good file) never
/// parses its YAML a second time for line numbers.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    text: Arc<str>,
    lines: OnceLock<HashMap<String, usize>>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

impl SourceMap {
    /// The map of `text`, made when a line is first asked for.
    pub fn build(text: &str) -> SourceMap {
        SourceMap {
            text: text.into(),
            lines: OnceLock::new(),
        }
    }

    /// Records the line of every mapping key and sequence item. Parse errors are left to the
    /// deserializer, which reports them with their own location.
    fn lines_of(text: &str) -> HashMap<String, usize> {
        let mut lines = HashMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        for event in Parser::new_from_str(text) {
            let Ok((event, span)) = event else { break };
            let line = span.start.line();
            // The path of the node this event starts, if it is a value (not a mapping key).
            let node_path = match stack.last_mut() {
                None => Some(String::new()),
                Some(Frame::Seq { path, index }) => {
                    let p = format!("{path}[{index}]");
                    Some(p)
                }
                Some(Frame::Map { path, key }) => key.take().map(|k| join(path, &k)),
            };
            match event {
                Event::Scalar(value, ..) => match (stack.last_mut(), node_path) {
                    (Some(Frame::Map { path, key }), None) => {
                        lines.entry(join(path, &value)).or_insert(line);
                        *key = Some(value.into_owned());
                    }
                    (parent, Some(p)) => {
                        lines.entry(p).or_insert(line);
                        advance(parent);
                    }
                    (_, None) => {}
                },
                Event::Alias(_) => {
                    if let Some(p) = node_path {
                        lines.entry(p).or_insert(line);
                    }
                    advance(stack.last_mut());
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    // A collection used as a mapping key has no path of its own.
                    let p = node_path.unwrap_or_else(|| "?".to_owned());
                    lines.entry(p.clone()).or_insert(line);
                    stack.push(match event {
                        Event::MappingStart(..) => Frame::Map { path: p, key: None },
                        _ => Frame::Seq { path: p, index: 0 },
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    advance(stack.last_mut());
                }
                _ => {}
            }
        }
        lines
    }

    /// The line of `path`, or of its nearest ancestor that the file spells out.
    pub fn line(&self, path: &str) -> Option<usize> {
        let lines = self.lines.get_or_init(|| Self::lines_of(&self.text));
        let mut p = path;
        loop {
            if let Some(line) = lines.get(p) {
                return Some(*line);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn advance(frame: Option<&mut Frame>) {
    if let Some(Frame::Seq { index, .. }) = frame {
        *index += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "\
listen:
  http: \"127.0.0.1:8080\"
upstreams:
  users:
    targets: [\"127.0.0.1:1\", \"127.0.0.1:2\"]
routes:
  - name: a
    match: { path: /a/*, methods: [GET] }
    upstream: users
  - name: b
    match:
      path: /b
    upstream: nope
";

    #[test]
    fn lines_of_keys_and_items() {
        let map = SourceMap::build(YAML);
        assert_eq!(map.line("listen.http"), Some(2));
        assert_eq!(map.line("upstreams.users.targets[1]"), Some(5));
        assert_eq!(map.line("routes[0]"), Some(7));
        assert_eq!(map.line("routes[0].match.methods[0]"), Some(8));
        assert_eq!(map.line("routes[1].match.path"), Some(12));
        assert_eq!(map.line("routes[1].upstream"), Some(13));
    }

    #[test]
    fn missing_paths_fall_back_to_the_nearest_ancestor() {
        let map = SourceMap::build(YAML);
        assert_eq!(map.line("routes[1].allow.roles"), Some(10));
        assert_eq!(map.line("nothing.here"), None);
    }
}
