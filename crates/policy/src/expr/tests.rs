use serde_json::{json, Map};

use super::*;

fn claims() -> Map<String, Value> {
    let Value::Object(map) = json!({
        "plan": "pro",
        "sub": "user-42",
        "groups": ["admin", "dev-team"],
        "scope": "read write",
        "level": 3,
        "ratio": 0.5,
        "verified": true,
        "realm_access": { "roles": ["user"] },
        "https://example.com/roles": ["editor"],
        "nested": { "a.b": "dotted" },
        "empty": [],
        "nothing": null,
    }) else {
        unreachable!()
    };
    map
}

fn eval(text: &str) -> bool {
    Expr::parse(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .eval(&claims())
}

#[test]
fn functions_on_strings() {
    assert!(eval("Equals(`plan`, `pro`)"));
    assert!(!eval("Equals(`plan`, `free`)"));
    assert!(eval("Prefix(`sub`, `user-`)"));
    assert!(!eval("Prefix(`sub`, `admin-`)"));
    assert!(eval("Contains(`sub`, `er-4`)"));
    assert!(eval("SplitContains(`scope`, ` `, `write`)"));
    assert!(!eval("SplitContains(`scope`, ` `, `wri`)"));
    assert!(eval("OneOf(`plan`, `free`, `pro`, `enterprise`)"));
    assert!(!eval("OneOf(`plan`, `free`, `enterprise`)"));
}

#[test]
fn functions_on_arrays() {
    assert!(eval("Contains(`groups`, `admin`)"));
    assert!(
        !eval("Contains(`groups`, `adm`)"),
        "array Contains is element equality"
    );
    assert!(eval("Equals(`groups`, `dev-team`)"));
    assert!(eval("Prefix(`groups`, `dev-`)"));
    assert!(eval("OneOf(`groups`, `x`, `admin`)"));
    assert!(!eval("SplitContains(`groups`, `,`, `admin`)"));
    assert!(!eval("Contains(`empty`, `x`)"));
    assert!(eval("Contains(`realm_access.roles`, `user`)"));
    assert!(eval("Contains(`https://example.com/roles`, `editor`)"));
    assert!(eval(r#"Equals(`nested."a.b"`, `dotted`)"#));
}

#[test]
fn functions_on_numbers_and_booleans() {
    assert!(eval("Equals(`level`, `3`)"));
    assert!(eval("Equals(`level`, `3.0`)"));
    assert!(!eval("Equals(`level`, `4`)"));
    assert!(eval("Equals(`ratio`, `0.5`)"));
    assert!(eval("OneOf(`level`, `1`, `3`)"));
    assert!(eval("Equals(`verified`, `true`)"));
    assert!(!eval("Equals(`verified`, `false`)"));
    assert!(!eval("Prefix(`level`, `3`)"));
    assert!(!eval("Contains(`level`, `3`)"));
}

#[test]
fn missing_and_null_claims_are_false() {
    for f in [
        "Equals(`missing`, `x`)",
        "Prefix(`missing`, `x`)",
        "Contains(`missing`, `x`)",
        "SplitContains(`missing`, `,`, `x`)",
        "OneOf(`missing`, `x`)",
        "Equals(`nothing`, `null`)",
        "Equals(`realm_access`, `x`)",
        "Equals(`plan.deeper`, `x`)",
    ] {
        assert!(!eval(f), "{f}");
    }
    assert!(eval("!Equals(`missing`, `x`)"));
}

#[test]
fn precedence_and_grouping() {
    // && binds tighter than ||.
    assert!(eval(
        "Equals(`plan`, `pro`) || Equals(`plan`, `x`) && Equals(`sub`, `x`)"
    ));
    assert!(!eval(
        "(Equals(`plan`, `pro`) || Equals(`plan`, `x`)) && Equals(`sub`, `x`)"
    ));
    assert!(eval(
        "!Equals(`plan`, `free`) && !(Equals(`sub`, `a`) || Equals(`sub`, `b`))"
    ));
    assert!(eval("!!Equals(`plan`, `pro`)"));
    assert_eq!(
        Expr::parse("Equals(`a`,`1`) || Equals(`a`,`2`) && Equals(`a`,`3`)").unwrap(),
        Expr::parse("Equals(`a`,`1`) || (Equals(`a`,`2`) && Equals(`a`,`3`))").unwrap()
    );
}

#[test]
fn strings_and_escapes() {
    assert!(eval(r#"Equals("plan", "pro")"#));
    let Value::Object(c) = json!({ "q": "say \"hi\" \\ ok", "b": "a`b" }) else {
        unreachable!()
    };
    assert!(Expr::parse(r#"Equals(`q`, "say \"hi\" \\ ok")"#)
        .unwrap()
        .eval(&c));
    assert!(Expr::parse(r#"Equals(`b`, "a`b")"#).unwrap().eval(&c));
    // Inside backticks a backslash is just a backslash.
    let Value::Object(c) = json!({ "p": "a\\b" }) else {
        unreachable!()
    };
    assert!(Expr::parse(r"Equals(`p`, `a\b`)").unwrap().eval(&c));
}

#[test]
fn syntax_errors_name_the_column() {
    let cases = [
        ("Equals(`plan`, `pro`", "expected ',' or ')' at column 21"),
        ("Equals(`plan` `pro`)", "expected ',' or ')' at column 15"),
        ("Equal(`plan`, `pro`)", "unknown function \"Equal\" (Equals, Prefix, Contains, SplitContains, OneOf) at column 1"),
        ("Equals(`plan`, `pro`) &&", "expected a function (Equals, Prefix, Contains, SplitContains, OneOf), '!' or '(' at column 25"),
        ("Equals(`plan`, `pro`) & Equals(`a`, `b`)", "expected && or || or the end at column 23"),
        ("(Equals(`plan`, `pro`)", "expected ')' at column 23"),
        ("Equals(`plan`)", "Equals takes a claim and 1 value(s), not 0 at column 1"),
        ("OneOf(`plan`)", "OneOf takes a claim and at least one value at column 1"),
        ("SplitContains(`a`, `b`)", "SplitContains takes a claim and 2 value(s), not 1 at column 1"),
        ("Equals(`plan, `pro`)", "expected ',' or ')' at column 16"),
        ("Equals(`plan`, `pro)", "unterminated string at column 16"),
        ("Equals(plan, `pro`)", "expected a claim name in backticks at column 8"),
        ("Equals(`a..b`, `x`)", "empty segment in claim path \"a..b\" at column 8"),
        (r#"Equals(`a`, "x\n")"#, "only \\\" and \\\\ are escapes at column 15"),
        ("", "expected a function (Equals, Prefix, Contains, SplitContains, OneOf), '!' or '(' at column 1"),
    ];
    for (text, expected) in cases {
        let e = Expr::parse(text).expect_err(text);
        assert_eq!(e.to_string(), expected, "{text}");
    }
    let deep = format!("{}Equals(`a`, `b`){}", "(".repeat(100), ")".repeat(100));
    assert!(Expr::parse(&deep).unwrap_err().message.contains("too deep"));
    let nots = format!("{}Equals(`a`, `b`)", "!".repeat(100));
    assert!(Expr::parse(&nots).is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    #[test]
    fn the_parser_never_panics(text in "\\PC{0,80}") {
        let _ = Expr::parse(&text);
    }

    #[test]
    fn the_parser_never_panics_on_near_misses(text in "[()!&|`\", a-zA-Z.]{0,60}") {
        if let Ok(e) = Expr::parse(&text) {
            let _ = e.eval(&claims());
        }
    }
}
