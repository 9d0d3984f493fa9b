//! Durations, sizes and rates as the contract writes them (`30s`, `32KiB`, `100/hour`).
//!
//! Each type deserializes from a string that first goes through `${VAR}` substitution
//! ([`crate::env`]); an error quotes the text as written in the file, never the substituted
//! value, so a secret pulled from the environment cannot leak through an error message.

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use std::fmt;
use std::time::Duration as StdDuration;

use crate::env::expand;

/// A string value after `${VAR}` substitution.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Text(pub String, Option<Box<str>>);

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the value came (in part) from the environment: then error messages must not
    /// quote it.
    pub fn substituted(&self) -> bool {
        self.1.is_some()
    }

    /// The value for an error message: quoted as written in the file when it came from the
    /// environment (so a secret is never echoed), else the value itself, quoted.
    pub fn quoted(&self) -> String {
        match &self.1 {
            Some(raw) => format!("{raw:?}"),
            None => format!("{:?}", self.0),
        }
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Text {
    // Values may come from secrets in the environment: never print them in debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Text(..)")
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(s.to_owned(), None)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        let value = expand(&raw).map_err(D::Error::custom)?;
        let substituted = (value != raw).then(|| raw.into_boxed_str());
        Ok(Text(value, substituted))
    }
}

/// Reads a scalar that may be a string or a plain number (`max_body: 1024`), expanded.
fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<(String, String), D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Int(u64),
        Str(String),
    }
    match Scalar::deserialize(d)? {
        Scalar::Int(n) => Ok((n.to_string(), n.to_string())),
        Scalar::Str(raw) => {
            let value = expand(&raw).map_err(D::Error::custom)?;
            Ok((raw, value))
        }
    }
}

/// A duration: `500ms`, `30s`, `5m`, `1h` (anything `humantime` reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duration(pub StdDuration);

impl Duration {
    pub fn parse(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s.trim())
            .map(Duration)
            .map_err(|_| "expected a duration such as 500ms, 30s, 5m or 1h".to_owned())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (raw, value) = scalar(d)?;
        Duration::parse(&value).map_err(|e| D::Error::custom(format!("{e}, got {raw:?}")))
    }
}

/// A size in bytes: `1024`, `32KiB`, `1MiB`, `2GB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl Size {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| "expected a size such as 512, 32KiB or 1MiB".to_owned())?;
        let multiplier: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" | "kB" | "K" | "k" => 1_000,
            "KiB" => 1 << 10,
            "MB" | "M" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" | "G" => 1_000_000_000,
            "GiB" => 1 << 30,
            _ => return Err("unknown size unit (use B, KiB, MiB, GiB, KB, MB, GB)".to_owned()),
        };
        n.checked_mul(multiplier)
            .map(Size)
            .ok_or_else(|| "size is too large".to_owned())
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (raw, value) = scalar(d)?;
        Size::parse(&value).map_err(|e| D::Error::custom(format!("{e}, got {raw:?}")))
    }
}

/// A rate: `N/second` (`s`), `N/minute` (`m`), `N/hour` (`h`), `N/day` (`d`), or `unlimited`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rate {
    Limited { count: u64, period: StdDuration },
    Unlimited,
}

impl Rate {
    pub fn parse(s: &str) -> Result<Self, String> {
        const HINT: &str = "expected a rate such as 100/minute, 10/s or unlimited";
        let s = s.trim();
        if s == "unlimited" {
            return Ok(Rate::Unlimited);
        }
        let (count, unit) = s.split_once('/').ok_or_else(|| HINT.to_owned())?;
        let count: u64 = count.trim().parse().map_err(|_| HINT.to_owned())?;
        if count == 0 {
            return Err(
                "a rate must allow at least 1 request per period (or be unlimited)".to_owned(),
            );
        }
        let secs = match unit.trim() {
            "second" | "s" | "sec" => 1,
            "minute" | "m" | "min" => 60,
            "hour" | "h" => 3_600,
            "day" | "d" => 86_400,
            _ => return Err(HINT.to_owned()),
        };
        Ok(Rate::Limited {
            count,
            period: StdDuration::from_secs(secs),
        })
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (raw, value) = scalar(d)?;
        Rate::parse(&value).map_err(|e| D::Error::custom(format!("{e}, got {raw:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            Duration::parse("500ms").unwrap().0,
            StdDuration::from_millis(500)
        );
        assert_eq!(
            Duration::parse("30s").unwrap().0,
            StdDuration::from_secs(30)
        );
        assert_eq!(
            Duration::parse("5m").unwrap().0,
            StdDuration::from_secs(300)
        );
        assert_eq!(
            Duration::parse("1h").unwrap().0,
            StdDuration::from_secs(3600)
        );
        assert!(Duration::parse("soon").is_err());
        assert!(Duration::parse("").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(Size::parse("1024").unwrap().0, 1024);
        assert_eq!(Size::parse("32KiB").unwrap().0, 32 * 1024);
        assert_eq!(Size::parse("1MiB").unwrap().0, 1 << 20);
        assert_eq!(Size::parse("2 MB").unwrap().0, 2_000_000);
        assert!(Size::parse("12XB").is_err());
        assert!(Size::parse("KiB").is_err());
        assert!(Size::parse("99999999999999999999GiB").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(
            Rate::parse("100/hour").unwrap(),
            Rate::Limited {
                count: 100,
                period: StdDuration::from_secs(3600)
            }
        );
        assert_eq!(
            Rate::parse("5/s").unwrap(),
            Rate::Limited {
                count: 5,
                period: StdDuration::from_secs(1)
            }
        );
        assert_eq!(Rate::parse("unlimited").unwrap(), Rate::Unlimited);
        assert!(Rate::parse("0/s").is_err());
        assert!(Rate::parse("10/fortnight").is_err());
        assert!(Rate::parse("ten/s").is_err());
    }
}
