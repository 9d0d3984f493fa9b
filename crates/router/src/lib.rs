//! Tollgate's router: which route a request belongs to, by host, then path, then method.
//!
//! Built once per config from [`RouteSpec`]s; a lookup takes no lock and allocates only for
//! captured `{params}`.
#![deny(clippy::unwrap_used)]

mod normalize;
mod pattern;
mod trie;

pub use normalize::{normalize, PathError};
pub use pattern::{parse_host, parse_path, HostPattern, PathPattern, Segment};

use std::collections::HashMap;

use trie::{Entry, Node};

/// One route as the router needs it: indices are the caller's route ids.
#[derive(Debug, Clone)]
pub struct RouteSpec<'a> {
    pub path: &'a str,
    pub host: Option<&'a str>,
    /// Upper-case method names; `None` matches every method.
    pub methods: Option<Vec<String>>,
}

/// Why a set of routes cannot be built, naming the route (by index) and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    Path {
        route: usize,
        message: String,
    },
    Host {
        route: usize,
        message: String,
    },
    /// `route` has the same host pattern, path pattern and an overlapping method as `other`.
    Ambiguous {
        route: usize,
        other: usize,
    },
}

#[derive(Debug, Default)]
pub struct Router {
    exact: HashMap<String, Node>,
    /// `{tenant}` label patterns, most literal text first.
    tenant: Vec<(HostPattern, Node)>,
    /// `*.` patterns, longest suffix first.
    wildcard: Vec<(HostPattern, Node)>,
    any: Node,
}

/// The outcome of a lookup.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'r, 'p> {
    Found(Found<'r, 'p>),
    /// The most specific path allows other methods: answer 405 with this `Allow` value.
    MethodNotAllowed {
        allow: &'r str,
    },
    NotFound,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Found<'r, 'p> {
    pub route: usize,
    /// `{param}` names and the path segments they captured.
    pub params: Vec<(&'r str, &'p str)>,
    /// The label a `{tenant}` host pattern captured.
    pub host_tenant: Option<&'p str>,
}

impl Router {
    pub fn build(routes: &[RouteSpec<'_>]) -> Result<Router, Vec<BuildError>> {
        let mut router = Router::default();
        let mut errors = Vec::new();
        for (route, spec) in routes.iter().enumerate() {
            let path = match parse_path(spec.path) {
                Ok(p) => p,
                Err(message) => {
                    errors.push(BuildError::Path { route, message });
                    continue;
                }
            };
            let host = match spec.host.map(parse_host).transpose() {
                Ok(h) => h,
                Err(message) => {
                    errors.push(BuildError::Host { route, message });
                    continue;
                }
            };
            let params = path
                .segments
                .iter()
                .filter_map(|s| match s {
                    Segment::Param(name) => Some(name.clone()),
                    Segment::Literal(_) => None,
                })
                .collect();
            let entry = Entry {
                route,
                methods: spec.methods.clone(),
                params,
            };
            if let Err(other) = router.node_for(host).insert(&path, entry) {
                errors.push(BuildError::Ambiguous { route, other });
            }
        }
        router.tenant.sort_by(|(a, _), (b, _)| {
            b.literal_len()
                .cmp(&a.literal_len())
                .then_with(|| format!("{a:?}").cmp(&format!("{b:?}")))
        });
        router
            .wildcard
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.literal_len()));
        if errors.is_empty() {
            Ok(router)
        } else {
            Err(errors)
        }
    }

    fn node_for(&mut self, host: Option<HostPattern>) -> &mut Node {
        let list = match host {
            None => return &mut self.any,
            Some(HostPattern::Exact(name)) => return self.exact.entry(name).or_default(),
            Some(p @ HostPattern::Tenant { .. }) => (&mut self.tenant, p),
            Some(p @ HostPattern::Wildcard(_)) => (&mut self.wildcard, p),
        };
        let (list, pattern) = list;
        let at = match list.iter().position(|(p, _)| *p == pattern) {
            Some(at) => at,
            None => {
                list.push((pattern, Node::default()));
                list.len() - 1
            }
        };
        &mut list[at].1
    }

    /// Finds the route for a request. `host` is the lowercased name without port (or `None`);
    /// `path` must already be normalised ([`normalize`]).
    pub fn find<'r, 'p>(
        &'r self,
        host: Option<&'p str>,
        path: &'p str,
        method: &str,
    ) -> Lookup<'r, 'p> {
        let segments: Vec<&'p str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        let mut values = Vec::new();
        // Host precedence: exact, then {tenant} label, then wildcard, then routes without host.
        if let Some(host) = host {
            if let Some(node) = self.exact.get(host) {
                if let Some(found) = lookup(node, &segments, &mut values, method, None) {
                    return found;
                }
            }
            for (pattern, node) in self.tenant.iter().chain(&self.wildcard) {
                if let Some(captured) = pattern.matches(host) {
                    let tenant = (!captured.is_empty()).then_some(captured);
                    if let Some(found) = lookup(node, &segments, &mut values, method, tenant) {
                        return found;
                    }
                }
            }
        }
        lookup(&self.any, &segments, &mut values, method, None).unwrap_or(Lookup::NotFound)
    }
}

fn lookup<'r, 'p>(
    node: &'r Node,
    segments: &[&'p str],
    values: &mut Vec<&'p str>,
    method: &str,
    host_tenant: Option<&'p str>,
) -> Option<Lookup<'r, 'p>> {
    values.clear();
    let leaf = node.find(segments, values)?;
    Some(match leaf.entry_for(method) {
        Some(entry) => Lookup::Found(Found {
            route: entry.route,
            params: entry
                .params
                .iter()
                .map(String::as_str)
                .zip(values.iter().copied())
                .collect(),
            host_tenant,
        }),
        None => Lookup::MethodNotAllowed { allow: &leaf.allow },
    })
}

/// The request's host for routing: lowercased, without port or trailing dot.
pub fn host_of(authority: &str) -> String {
    let host = if authority.starts_with('[') {
        authority
            .split_once(']')
            .map_or(authority, |(h, _)| h)
            .trim_start_matches('[')
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests;
