//! Tollgate's configuration file: the schema of `../shared/design/CONTRACT.md`, `${VAR}`
//! substitution, durations, sizes and rates, and problems that name the YAML path and line.
#![deny(clippy::unwrap_used)]

mod env;
mod load;
mod problem;
mod schema;
mod source_map;
mod units;
mod validate;

pub use env::{expand, expand_with};
pub use load::{load, parse, Loaded};
pub use problem::{Problem, Problems, Report};
pub use schema::*;
pub use source_map::SourceMap;
pub use units::{Duration, Rate, Size, Text};
