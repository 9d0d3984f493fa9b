use std::net::{IpAddr, Ipv4Addr};

use serde_json::json;

use super::*;

fn policy(yaml: &str) -> Result<Arc<Policy>, String> {
    let text = format!(
        "rate_limits:\n  p:\n{yaml}\nupstreams: {{ u: {{ targets: [\"127.0.0.1:1\"] }} }}\nroutes:\n  - {{ name: r, match: {{ path: /* }}, upstream: u, auth: none }}\n"
    );
    let loaded = tollgate_config::parse(&text).map_err(|p| p.to_string())?;
    let mut report = loaded.report();
    let p = Policy::compile("p", &loaded.file.rate_limits["p"], None, None, &mut report);
    report
        .finish(p)
        .map_err(|p| p.to_string())
        .map(|p| p.unwrap())
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn acquire(p: &Policy, caller: &Caller<'_>) -> Verdict {
    block(p.acquire(caller)).unwrap().0
}

fn all(policies: &[Arc<Policy>], caller: &Caller<'_>) -> Vec<Verdict> {
    match block(acquire_all(policies, caller)) {
        Outcome::Verdicts(v) => v,
        Outcome::Unavailable => panic!("unavailable"),
    }
}

fn identity(sub: &str, plan: &str) -> Identity {
    let serde_json::Value::Object(claims) = json!({ "sub": sub, "plan": plan }) else {
        unreachable!()
    };
    Identity {
        provider: Arc::from("kc"),
        tenant: None,
        subject: Some(sub.into()),
        client: None,
        roles: vec![],
        scopes: vec![],
        claims,
        resolved: Default::default(),
    }
}

const TIERS: &str = "    key: subject\n    tiers:\n      - { name: free, when: 'Equals(`plan`, `free`)', limit: 3/minute }\n      - { name: pro, when: 'Equals(`plan`, `pro`)', limit: 100/minute, burst: 10 }\n      - { name: enterprise, limit: unlimited }";

#[test]
fn tiers_by_claim_and_independent_subjects() {
    let p = policy(TIERS).unwrap();
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (alice, bob, corp) = (
        identity("alice", "free"),
        identity("bob", "free"),
        identity("c", "enterprise"),
    );
    let caller = |id| Caller {
        identity: Some(id),
        ip,
    };
    let allowed: Vec<bool> = (0..4)
        .map(|_| acquire(&p, &caller(&alice)).allowed())
        .collect();
    assert_eq!(allowed, [true, true, true, false]);
    assert!(
        acquire(&p, &caller(&bob)).allowed(),
        "another subject has its own bucket"
    );
    for _ in 0..1000 {
        let v = acquire(&p, &caller(&corp));
        assert!(v.allowed() && v.limit.is_none());
        assert_eq!(&*v.tier, "enterprise");
    }
    let pro = acquire(&p, &caller(&identity("p", "pro")));
    let (quota, d) = pro.limit.unwrap();
    assert_eq!((&*pro.tier, quota.burst, d.remaining), ("pro", 10, 9));
    // Anonymous callers: by IP, in the default tier.
    let anon = acquire(&p, &Caller { identity: None, ip });
    assert_eq!(&*anon.tier, "enterprise");
}

#[test]
fn a_refusal_by_one_policy_consumes_nothing_from_the_others() {
    let small = policy("    key: ip\n    tiers:\n      - { name: all, limit: 1/minute }").unwrap();
    let large = policy("    key: ip\n    tiers:\n      - { name: all, limit: 2/minute }").unwrap();
    let caller = Caller {
        identity: None,
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let both = [large.clone(), small.clone()];
    assert!(all(&both, &caller).iter().all(Verdict::allowed));
    let refused = all(&both, &caller);
    assert!(!refused.last().unwrap().allowed());
    // `large` gave its count back: one more still fits in it alone.
    assert!(all(&[large], &caller).iter().all(Verdict::allowed));
}

#[test]
fn the_headline_is_the_policy_closest_to_refusing() {
    let a = policy("    key: ip\n    tiers:\n      - { name: a, limit: 10/minute }").unwrap();
    let b = policy("    key: ip\n    tiers:\n      - { name: b, limit: 2/minute }").unwrap();
    let caller = Caller {
        identity: None,
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let v = all(&[a, b], &caller);
    assert_eq!(&*headline(&v).unwrap().tier, "b");
}

#[test]
fn config_problems() {
    let cases = [
        ("    key: subject\n    tiers:\n      - { name: a, when: 'Equals(`plan`, `x`)', limit: 1/s }", "no default tier"),
        ("    key: subject\n    tiers:\n      - { name: a, limit: 1/s }\n      - { name: b, limit: 2/s }", "unreachable"),
        ("    key: nope\n    tiers:\n      - { name: a, limit: 1/s }", "unknown key \"nope\""),
        ("    key: subject\n    tiers:\n      - { name: a, when: 'Equals(`plan`', limit: 1/s }", "rate_limits.p.tiers[0].when (line 5): expected ','"),
        ("    key: subject\n    tiers:\n      - { name: a, limit: unlimited, burst: 3 }", "an unlimited tier has no burst"),
        ("    key: ip\n    tiers:\n      - { name: \"a}b\", limit: 1/s }", "a tier name cannot contain { or }"),
    ];
    for (yaml, expected) in cases {
        let Err(e) = policy(yaml) else {
            panic!("accepted: {yaml}")
        };
        assert!(e.contains(expected), "{expected:?} not in {e}");
    }
}

#[test]
fn memory_stays_bounded() {
    let p = policy("    key: claim:sub\n    tiers:\n      - { name: a, limit: 1/hour }").unwrap();
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    block(async {
        for i in 0..(MAX_KEYS + 1000) {
            let id = identity(&format!("user-{i}"), "x");
            p.acquire(&Caller {
                identity: Some(&id),
                ip,
            })
            .await;
        }
    });
    let bucket = p.tiers().next().unwrap().bucket().unwrap();
    assert!(bucket.len() <= HARD_MAX_KEYS, "{}", bucket.len());
    // The eviction ran on a blocking thread of the test's runtime, done once `block` returned.
    assert!(bucket.take_evicted() > 0);
    assert!(bucket.len() < MAX_KEYS, "{}", bucket.len());
}

#[test]
fn a_tenant_key_is_shared_by_the_users_of_one_tenant() {
    let p = policy("    key: tenant\n    tiers:\n      - { name: org, limit: 2/minute }").unwrap();
    let member = |sub: &str, tenant: &str| Identity {
        tenant: Some(Arc::from(tenant)),
        ..identity(sub, "x")
    };
    let (alice, bob, carol) = (
        member("alice", "acme"),
        member("bob", "acme"),
        member("carol", "globex"),
    );
    let caller = |id| Caller {
        identity: Some(id),
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    assert!(acquire(&p, &caller(&alice)).allowed());
    assert!(acquire(&p, &caller(&bob)).allowed());
    assert!(
        !acquire(&p, &caller(&alice)).allowed(),
        "acme's two requests are used up"
    );
    assert!(
        acquire(&p, &caller(&carol)).allowed(),
        "another tenant counts apart"
    );
    // Without a tenant, by client IP.
    assert!(acquire(&p, &caller(&identity("dave", "x"))).allowed());
}

#[test]
fn one_subject_in_two_tenants_is_two_callers() {
    let p = policy("    key: subject\n    tiers:\n      - { name: all, limit: 1/minute }").unwrap();
    let in_tenant = |tenant: &str| Identity {
        tenant: Some(Arc::from(tenant)),
        ..identity("same-sub", "x")
    };
    let (a, b) = (in_tenant("acme"), in_tenant("globex"));
    let caller = |id| Caller {
        identity: Some(id),
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    assert!(acquire(&p, &caller(&a)).allowed());
    assert!(
        acquire(&p, &caller(&b)).allowed(),
        "globex's user is not acme's"
    );
    assert!(!acquire(&p, &caller(&a)).allowed());
}
