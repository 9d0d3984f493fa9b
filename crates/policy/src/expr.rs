//! The claim expression language of `allow.claims` and `tiers[].when` (Traefik Hub's syntax):
//!
//! ```text
//! expr    = and { "||" and }
//! and     = unary { "&&" unary }
//! unary   = "!" unary | "(" expr ")" | call
//! call    = NAME "(" claim { "," value } ")"
//! claim   = `dotted.path` | "dotted.path"
//! value   = `text` | "text with \" and \\ escapes"
//! ```
//!
//! Functions: `Equals(c, v)`, `Prefix(c, p)`, `Contains(c, v)` (an array holds `v`, or a
//! string contains it), `SplitContains(c, sep, v)`, `OneOf(c, v1, v2, ...)`. On an array claim,
//! `Equals`, `Prefix` and `OneOf` hold when any element does. A number or boolean claim is
//! compared with a value that spells the same number or boolean. A missing claim, or a claim of
//! another type, makes a function false, never an error.
//!
//! Parsed once at load into a small tree; evaluating it allocates nothing.

use serde_json::Value;
use tollgate_auth::claims::{ClaimPath, Claims};

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Call(Call),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub func: Func,
    pub claim: ClaimPath,
    pub args: Vec<Literal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Equals,
    Prefix,
    Contains,
    SplitContains,
    OneOf,
}

/// A value as written, and what it reads as when a claim is a number or a boolean.
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    pub text: String,
    number: Option<f64>,
    boolean: Option<bool>,
}

impl Literal {
    fn new(text: String) -> Literal {
        Literal {
            number: text.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
            boolean: match text.as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            text,
        }
    }

    /// Whether one scalar claim value is this literal.
    fn matches(&self, value: &Value) -> bool {
        match value {
            Value::String(s) => *s == self.text,
            Value::Number(n) => n.as_f64().zip(self.number).is_some_and(|(a, b)| a == b),
            Value::Bool(b) => self.boolean == Some(*b),
            _ => false,
        }
    }
}

/// A syntax error: what was expected, and the 1-based column (in characters) where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub column: usize,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at column {}", self.message, self.column)
    }
}

/// A syntax error for `validate`: in full, unless the expression came from the environment,
/// where only the column is given (its text may hold a secret).
pub fn describe(e: &SyntaxError, text: &tollgate_config::Text) -> String {
    if text.substituted() {
        format!(
            "syntax error at column {} (the expression comes from {})",
            e.column,
            text.quoted()
        )
    } else {
        e.to_string()
    }
}

impl Expr {
    pub fn parse(text: &str) -> Result<Expr, SyntaxError> {
        let mut p = Parser {
            chars: text.chars().collect(),
            pos: 0,
            depth: 0,
        };
        let expr = p.or()?;
        p.skip_space();
        if p.pos < p.chars.len() {
            return Err(p.error("expected && or || or the end"));
        }
        Ok(expr)
    }

    /// The claim paths it reads, into `out`.
    pub fn claim_paths<'a>(&'a self, out: &mut Vec<&'a ClaimPath>) {
        match self {
            Expr::Call(call) => out.push(&call.claim),
            Expr::Not(e) => e.claim_paths(out),
            Expr::And(es) | Expr::Or(es) => es.iter().for_each(|e| e.claim_paths(out)),
        }
    }

    pub fn eval(&self, claims: &impl Claims) -> bool {
        match self {
            Expr::Call(call) => call.eval(claims),
            Expr::Not(e) => !e.eval(claims),
            Expr::And(es) => es.iter().all(|e| e.eval(claims)),
            Expr::Or(es) => es.iter().any(|e| e.eval(claims)),
        }
    }
}

impl Call {
    fn eval(&self, claims: &impl Claims) -> bool {
        let Some(value) = claims.claim(&self.claim) else {
            return false;
        };
        let any = |f: &dyn Fn(&Value) -> bool| match value {
            Value::Array(items) => items.iter().any(f),
            scalar => f(scalar),
        };
        let arg = |i: usize| &self.args[i];
        match self.func {
            Func::Equals => any(&|v| arg(0).matches(v)),
            Func::Prefix => any(&|v| v.as_str().is_some_and(|s| s.starts_with(&arg(0).text))),
            Func::Contains => match value {
                Value::Array(items) => items.iter().any(|v| arg(0).matches(v)),
                Value::String(s) => s.contains(&arg(0).text),
                _ => false,
            },
            Func::SplitContains => value.as_str().is_some_and(|s| {
                let (sep, wanted) = (&arg(0).text, &arg(1).text);
                !sep.is_empty() && s.split(sep.as_str()).any(|part| part == wanted)
            }),
            Func::OneOf => any(&|v| self.args.iter().any(|a| a.matches(v))),
        }
    }
}

/// Nesting deeper than this is refused (a parser's recursion is bounded).
const MAX_DEPTH: usize = 64;

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn error(&self, message: &str) -> SyntaxError {
        SyntaxError {
            message: message.to_owned(),
            column: self.pos + 1,
        }
    }

    fn skip_space(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        let n = token.chars().count();
        if self.chars.len() >= self.pos + n
            && self.chars[self.pos..self.pos + n]
                .iter()
                .copied()
                .eq(token.chars())
        {
            self.pos += n;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, SyntaxError> {
        let mut items = vec![self.and()?];
        while self.eat("||") {
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, SyntaxError> {
        let mut items = vec![self.unary()?];
        while self.eat("&&") {
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("expression nests too deep"));
        }
        let expr = if self.eat("!") {
            Expr::Not(Box::new(self.unary()?))
        } else if self.eat("(") {
            let inner = self.or()?;
            if !self.eat(")") {
                return Err(self.error("expected ')'"));
            }
            inner
        } else {
            self.call()?
        };
        self.depth -= 1;
        Ok(expr)
    }

    fn call(&mut self) -> Result<Expr, SyntaxError> {
        self.skip_space();
        let start = self.pos;
        while self
            .chars
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_alphabetic())
        {
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        let func = match name.as_str() {
            "Equals" => Func::Equals,
            "Prefix" => Func::Prefix,
            "Contains" => Func::Contains,
            "SplitContains" => Func::SplitContains,
            "OneOf" => Func::OneOf,
            "" => return Err(self.error(
                "expected a function (Equals, Prefix, Contains, SplitContains, OneOf), '!' or '('",
            )),
            _ => {
                self.pos = start;
                return Err(self.error(&format!(
                    "unknown function {name:?} (Equals, Prefix, Contains, SplitContains, OneOf)"
                )));
            }
        };
        if !self.eat("(") {
            return Err(self.error("expected '('"));
        }
        self.skip_space();
        let claim_at = self.pos;
        let claim_text = self.string("a claim name in backticks")?;
        let claim = ClaimPath::parse(&claim_text).map_err(|e| SyntaxError {
            message: e,
            column: claim_at + 1,
        })?;
        let mut args = Vec::new();
        while self.eat(",") {
            args.push(Literal::new(self.string("a value in backticks")?));
        }
        if !self.eat(")") {
            return Err(self.error("expected ',' or ')'"));
        }
        let wanted = match func {
            Func::Equals | Func::Prefix | Func::Contains => Some(1),
            Func::SplitContains => Some(2),
            Func::OneOf => None,
        };
        let ok = match wanted {
            Some(n) => args.len() == n,
            None => !args.is_empty(),
        };
        if !ok {
            let message = match wanted {
                Some(n) => format!("{name} takes a claim and {n} value(s), not {}", args.len()),
                None => format!("{name} takes a claim and at least one value"),
            };
            return Err(SyntaxError {
                message,
                column: start + 1,
            });
        }
        Ok(Expr::Call(Call { func, claim, args }))
    }

    /// A backticked string (no escapes), or a double-quoted one with `\"` and `\\`.
    fn string(&mut self, what: &str) -> Result<String, SyntaxError> {
        self.skip_space();
        let quote = match self.chars.get(self.pos) {
            Some('`') => '`',
            Some('"') => '"',
            _ => return Err(self.error(&format!("expected {what}"))),
        };
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.chars.get(self.pos) {
                None => {
                    self.pos = open;
                    return Err(self.error("unterminated string"));
                }
                Some(&c) if c == quote => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') if quote == '"' => {
                    match self.chars.get(self.pos + 1) {
                        Some(&c @ ('"' | '\\')) => out.push(c),
                        _ => return Err(self.error("only \\\" and \\\\ are escapes")),
                    }
                    self.pos += 2;
                }
                Some(&c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
