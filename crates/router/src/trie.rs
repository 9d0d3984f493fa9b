//! A segment trie for one host pattern's routes.
//!
//! Not `matchit`: it refuses a `{param}` beside a catch-all at the same position
//! (`/a/{x}` with `/a/*`), which the contract allows, and its catch-all does not match the bare
//! prefix. This trie tries, at every segment, a literal child, then a parameter, then a
//! wildcard, backtracking when a branch dead-ends: literal over parameter over wildcard, and a
//! longer prefix over a shorter one, whatever the declaration order.

use std::collections::HashMap;

use crate::pattern::{PathPattern, Segment};

/// The routes that share one path pattern, told apart by method.
#[derive(Debug, Default)]
pub struct Leaf {
    pub entries: Vec<Entry>,
    /// The `Allow` header value for a 405 here: the union of the entries' methods.
    pub allow: String,
}

#[derive(Debug)]
pub struct Entry {
    pub route: usize,
    /// `None` matches every method.
    pub methods: Option<Vec<String>>,
    /// Names of the pattern's `{params}`, in order.
    pub params: Vec<String>,
}

impl Leaf {
    fn insert(&mut self, entry: Entry) -> Result<(), usize> {
        if let Some(clash) = self
            .entries
            .iter()
            .find(|e| overlap(&e.methods, &entry.methods))
        {
            return Err(clash.route);
        }
        self.entries.push(entry);
        let mut methods: Vec<&str> = self
            .entries
            .iter()
            .flat_map(|e| e.methods.iter().flatten().map(String::as_str))
            .collect();
        methods.sort_unstable();
        methods.dedup();
        self.allow = methods.join(", ");
        Ok(())
    }

    pub fn entry_for(&self, method: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| match &e.methods {
            None => true,
            Some(ms) => ms.iter().any(|m| m == method),
        })
    }
}

fn overlap(a: &Option<Vec<String>>, b: &Option<Vec<String>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
        _ => true,
    }
}

#[derive(Debug, Default)]
pub struct Node {
    literal: HashMap<Box<str>, Node>,
    param: Option<Box<Node>>,
    exact: Option<Leaf>,
    wildcard: Option<Leaf>,
}

impl Node {
    /// Adds a route; `Err(other)` names the route it is ambiguous with.
    pub fn insert(&mut self, pattern: &PathPattern, entry: Entry) -> Result<(), usize> {
        let mut node = self;
        for seg in &pattern.segments {
            node = match seg {
                Segment::Literal(s) => node.literal.entry(s.as_str().into()).or_default(),
                Segment::Param(_) => node.param.get_or_insert_with(Default::default),
            };
        }
        let leaf = if pattern.wildcard {
            node.wildcard.get_or_insert_with(Default::default)
        } else {
            node.exact.get_or_insert_with(Default::default)
        };
        leaf.insert(entry)
    }

    /// The most specific leaf matching `segments`; parameter values are pushed onto `values`.
    pub fn find<'p>(&self, segments: &[&'p str], values: &mut Vec<&'p str>) -> Option<&Leaf> {
        let Some((first, rest)) = segments.split_first() else {
            return self.exact.as_ref().or(self.wildcard.as_ref());
        };
        if let Some(leaf) = self.literal.get(*first).and_then(|n| n.find(rest, values)) {
            return Some(leaf);
        }
        if let Some(param) = self.param.as_deref().filter(|_| !first.is_empty()) {
            values.push(first);
            if let Some(leaf) = param.find(rest, values) {
                return Some(leaf);
            }
            values.pop();
        }
        self.wildcard.as_ref()
    }
}
