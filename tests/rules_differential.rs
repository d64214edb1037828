//! Differential test of per-location rules against Clerk's `has()`.
//!
//! A deterministic corpus of (claims, query) pairs: v1 and v2 claims, with
//! and without an org, roles with and without the `org:` prefix, v1
//! permission lists (system permissions included), v2 permission bit masks
//! (short, huge, malformed, with JS whitespace), features and plans with
//! every scope (and malformed lists), `fva` values on and around every
//! preset's boundary and in malformed shapes; queries of every rule kind,
//! some percent-encoded. Each pair is decided by jwtgate in process
//! (the facts kept as the cache keeps them, in a `Grant` beside the
//! identity; `RuleSet::parse`, `Requirement::holds`,
//! `RuleSet::evaluate`, the one-pass `rules::evaluate`,
//! `Forbidden::write_clerk_error`) and by the SDK in
//! one Node process (`tests/clerk/has.mjs`: `signedInAuthObject` of
//! `@clerk/backend` and one `has()` call per rule).
//!
//! They must agree on every rule of every pair: whether it holds, the
//! overall verdict (all must hold), and, for reverification, the exact
//! JSON of Clerk's `reverificationError`. Where the SDK cannot build an
//! auth object (it throws), jwtgate's facts must be "broken" (every rule
//! fails). The only exceptions are rules jwtgate refuses at parse time,
//! listed in [`DEVIATIONS`]; the test checks that each of them is refused
//! with its listed problem and shows up in the corpus.
//!
//! Every claims set is also one jwtgate accepts as a token
//! (`Identity::from_claims`), so the corpus is of reachable inputs.
//!
//! Needs Node >= 20 and `npm ci --prefix tests/clerk`; fails loudly without.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use jwtgate::gate::grant::{Grant, GrantParts};
use jwtgate::rules::{evaluate, Forbidden, Problem, Reason, Requirement, RuleSet, Verdict};
use jwtgate::token::claims::Claims;
use jwtgate::token::identity::Identity;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Seed of the random part; change it to explore, keep it fixed to commit.
const SEED: u64 = 0x7275_6c65_7321_0001;
/// Random claim sets (each gets a short and a long query).
const RANDOM_CLAIMS: usize = 600;

/// Rules jwtgate refuses where the SDK evaluates: (query, problem, why).
const DEVIATIONS: &[(&str, Problem, &str)] = &[
    (
        "permission=org:sys_memberships:manage",
        Problem::SystemPermission,
        "Clerk keeps system permissions out of session tokens (its types forbid them server-side)",
    ),
    (
        "permission=sys_domains:read",
        Problem::SystemPermission,
        "the same after the SDK's org: prefixing",
    ),
    (
        "permission=org:admin",
        Problem::BadPermission,
        "not org:<feature>:<permission>: never a real permission (a role typed as a permission?)",
    ),
    (
        "feature=x:dashboard",
        Problem::BadScope,
        "unknown scope: the SDK throws inside has() and answers false",
    ),
    (
        "plan=o:pro:extra",
        Problem::BadScope,
        "the SDK ignores everything after a second colon",
    ),
    (
        "role=org:",
        Problem::BadRole,
        "an empty role: the SDK would match a claim role of \"org:\"",
    ),
    (
        "reverify=0",
        Problem::BadMinutes,
        "the SDK refuses afterMinutes <= 0 at run time (always false)",
    ),
    (
        "reverify=first_factor:1.5",
        Problem::BadMinutes,
        "jwtgate takes whole minutes only",
    ),
];

// ---------------------------------------------------------------------------
// A small deterministic PRNG (SplitMix64).
// ---------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------
// Pools the claims and the rules are drawn from (they share names, so that
// rules hold often enough).
// ---------------------------------------------------------------------------

const FEATURES: &[&str] = &["dashboard", "teams", "export", "reports", "sys_memberships"];
const PER: &[&str] = &[
    "manage,read",
    "read,manage,delete",
    " manage , read",
    "manage,,read",
    "read",
    LONG_PER,
];
/// 70 names, so masks need more than 64 bits (`p64`..`p69`).
const LONG_PER: &str = "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9,p10,p11,p12,p13,p14,p15,p16,p17,p18,p19,\
p20,p21,p22,p23,p24,p25,p26,p27,p28,p29,p30,p31,p32,p33,p34,p35,p36,p37,p38,p39,p40,p41,p42,p43,\
p44,p45,p46,p47,p48,p49,p50,p51,p52,p53,p54,p55,p56,p57,p58,p59,p60,p61,p62,p63,p64,p65,p66,p67,\
p68,p69";
const V1_ROLES: &[&str] = &[
    "org:admin",
    "admin",
    "org:member",
    "org:org:admin",
    "org:billing_manager",
    "",
    "org:",
];
const V2_ROLES: &[&str] = &["admin", "member", "org:admin", "billing_manager", ""];
const V1_PERMISSIONS: &[&str] = &[
    "org:dashboard:manage",
    "org:dashboard:read",
    "org:teams:read",
    "org:billing:manage",
    "billing:manage",
    "org:sys_memberships:manage",
    "org:org:teams:manage",
];
const PLANS: &[&str] = &[
    "u:free",
    "o:pro",
    "u:free,o:pro",
    "ou:enterprise",
    "uo:team",
    "free",
    "",
    "u:free,",
    " o:pro ,\u{a0}u:free",
];
const AGES: &[f64] = &[
    -1.0, 0.0, 1.0, 5.0, 9.0, 9.5, 10.0, 11.0, 59.0, 60.0, 61.0, 1439.0, 1440.0, 1441.0, 100000.0,
];

const ROLE_RULES: &[&str] = &[
    "role=org:admin",
    "role=admin",
    "role=org:member",
    "role=member",
    "role=org:org:admin",
    "role=org:billing_manager",
    "role=org%3Aadmin",
];
const PERMISSION_RULES: &[&str] = &[
    "permission=org:dashboard:manage",
    "permission=org:dashboard:read",
    "permission=dashboard:read",
    "permission=org:teams:read",
    "permission=org:teams:manage",
    "permission=org:export:delete",
    "permission=org:reports:read",
    "permission=org:billing:manage",
    "permission=billing:manage",
    "permission=org:org:teams:read",
    "permission=org%3Ateams%3Aread",
    "permission=org:dashboard:p66",
    "permission=org:teams:p69",
    "permission=org:dashboard:p0",
];
const FEATURE_RULES: &[&str] = &[
    "feature=dashboard",
    "feature=o:dashboard",
    "feature=org:teams",
    "feature=organization:export",
    "feature=u:reports",
    "feature=user:export",
    "feature=teams",
    "feature=reports",
    "feature=u:dashboard",
    "feature=o%3Ateams",
];
const PLAN_RULES: &[&str] = &[
    "plan=free",
    "plan=u:free",
    "plan=o:pro",
    "plan=pro",
    "plan=user:enterprise",
    "plan=o:enterprise",
    "plan=team",
    "plan=o:free",
];
const REVERIFY_RULES: &[&str] = &[
    "reverify=strict",
    "reverify=strict_mfa",
    "reverify=moderate",
    "reverify=lax",
    "reverify=1",
    "reverify=10",
    "reverify=60",
    "reverify=first_factor:10",
    "reverify=first_factor:1441",
    "reverify=second_factor:5",
    "reverify=multi_factor:60",
    "reverify=multi_factor:1440",
    "reverify=second_factor%3A11",
];

fn all_valid_rules() -> Vec<&'static str> {
    [
        ROLE_RULES,
        PERMISSION_RULES,
        FEATURE_RULES,
        PLAN_RULES,
        REVERIFY_RULES,
        &["org=required"],
    ]
    .concat()
}

// ---------------------------------------------------------------------------
// Claims.
// ---------------------------------------------------------------------------

fn base() -> Map<String, Value> {
    let v = json!({"sub": "user_1", "sid": "sess_1", "iss": "https://clerk.example.com",
                   "exp": 1_767_225_660, "iat": 1_767_225_600, "nbf": 1_767_225_590});
    v.as_object().unwrap().clone()
}

/// A scoped list like `o:dashboard,u:reports` (sometimes malformed).
fn scoped_list(rng: &mut Rng) -> String {
    let n = rng.below(5);
    let mut parts: Vec<String> = (0..n)
        .map(|_| {
            let scope = rng.pick(&["o", "o", "u", "ou", "uo", "org", "x"]);
            let pad = rng.pick(&["", "", "", " ", "\u{a0}", "\u{feff}", "\u{85}"]);
            format!("{pad}{scope}:{}", rng.pick(FEATURES))
        })
        .collect();
    if rng.chance(6) {
        parts.push(rng.pick(&["nocolon", ""]).to_string());
    }
    parts.join(",")
}

fn mask(rng: &mut Rng) -> String {
    match rng.below(16) {
        0 => "+1".into(),
        1 => " 3".into(),
        2 => "x".into(),
        3 => "".into(),
        4 => "340282366920938463463374607431768211457".into(), // 2^128 + 1
        // 2^66 + 2^65 + 1, 2^69 + 2
        5 => "110680464442257309697".into(),
        6 => "590295810358705651714".into(),
        7 => "0007".into(),
        _ => rng.below(16).to_string(),
    }
}

fn fva(rng: &mut Rng) -> Option<Value> {
    match rng.below(20) {
        0 => None,
        1 => Some(json!(null)),
        2 => Some(json!([rng.pick(AGES)])),
        3 => Some(json!([1, 2, 3])),
        4 => Some(json!([-2, 1])),
        5 => Some(json!(["1", 1])),
        6 => Some(json!([-0.5, 3])),
        7 => Some(json!("5,5")),
        _ => Some(json!([rng.pick(AGES), rng.pick(AGES)])),
    }
}

fn random_claims(rng: &mut Rng) -> Value {
    let mut c = base();
    let v2 = rng.chance(55);
    if v2 {
        c.insert("v".into(), json!(2));
        if rng.chance(75) {
            let mut o = Map::new();
            if !rng.chance(8) {
                o.insert("id".into(), json!(rng.pick(&["org_1", "org_1", ""])));
            }
            o.insert("slg".into(), json!("acme"));
            if !rng.chance(10) {
                o.insert("rol".into(), json!(rng.pick(V2_ROLES)));
            }
            if !rng.chance(10) {
                o.insert("per".into(), json!(rng.pick(PER)));
            }
            if !rng.chance(10) {
                let n = rng.below(5);
                let masks: Vec<String> = (0..n).map(|_| mask(rng)).collect();
                o.insert("fpm".into(), json!(masks.join(",")));
            }
            c.insert("o".into(), Value::Object(o));
        }
    } else {
        if rng.chance(10) {
            c.insert("v".into(), json!(rng.pick(&[json!(1), json!("2")])));
        }
        if rng.chance(70) {
            c.insert("org_id".into(), json!(rng.pick(&["org_1", "org_1", ""])));
            c.insert("org_slug".into(), json!("acme"));
            if !rng.chance(10) {
                c.insert("org_role".into(), json!(rng.pick(V1_ROLES)));
            }
            if !rng.chance(15) {
                let perms: Vec<&str> = V1_PERMISSIONS
                    .iter()
                    .copied()
                    .filter(|_| rng.chance(40))
                    .collect();
                c.insert("org_permissions".into(), json!(perms));
            }
        } else if rng.chance(20) {
            // v2-style data in a v1 token is ignored.
            c.insert("o".into(), json!({"id": "org_1", "rol": "admin"}));
        }
    }
    if rng.chance(70) {
        c.insert("fea".into(), json!(scoped_list(rng)));
    }
    if rng.chance(50) {
        c.insert("pla".into(), json!(rng.pick(PLANS)));
    }
    if let Some(fva) = fva(rng) {
        c.insert("fva".into(), fva);
    }
    Value::Object(c)
}

// ---------------------------------------------------------------------------
// The corpus.
// ---------------------------------------------------------------------------

struct Case {
    claims: Value,
    query: String,
}

fn corpus() -> Vec<Case> {
    let mut rng = Rng(SEED);
    let mut cases = Vec::new();
    let valid = all_valid_rules();
    for _ in 0..RANDOM_CLAIMS {
        let claims = random_claims(&mut rng);
        // A short query (1 to 4 rules, repeats allowed) and a long one.
        let short: Vec<&str> = (0..1 + rng.below(4)).map(|_| *rng.pick(&valid)).collect();
        let long: Vec<&str> = (0..16).map(|_| *rng.pick(&valid)).collect();
        cases.push(Case {
            claims: claims.clone(),
            query: short.join("&"),
        });
        cases.push(Case {
            claims,
            query: long.join("&"),
        });
    }
    // Every reverify rule against every pair of ages.
    for &first in AGES {
        for &second in AGES {
            let mut claims = base();
            claims.insert("fva".into(), json!([first, second]));
            cases.push(Case {
                claims: Value::Object(claims),
                query: REVERIFY_RULES.join("&"),
            });
        }
    }
    // Every role rule against every v1 and v2 role.
    for role in V1_ROLES {
        let mut claims = base();
        claims.insert("org_id".into(), json!("org_1"));
        claims.insert("org_role".into(), json!(role));
        cases.push(Case {
            claims: Value::Object(claims),
            query: ROLE_RULES.join("&"),
        });
    }
    for role in V2_ROLES {
        let mut claims = base();
        claims.insert("v".into(), json!(2));
        claims.insert("o".into(), json!({"id": "org_1", "rol": role}));
        cases.push(Case {
            claims: Value::Object(claims),
            query: ROLE_RULES.join("&"),
        });
    }
    // Masks wider than 64 bits, over 70 permission names.
    let high_bits: Vec<String> = (64..70)
        .map(|i| format!("permission=org:dashboard:p{i}"))
        .collect();
    let masks = [
        "110680464442257309697",                   // 2^66 + 2^65 + 1
        "590295810358705651714",                   // 2^69 + 2
        "1180591620717411303423",                  // 2^70 - 1
        "340282366920938463463374607431768211457", // 2^128 + 1
        "18446744073709551616",                    // 2^64
    ];
    for mask in masks {
        for fea in ["o:dashboard", "u:x,o:dashboard", "o:teams,ou:dashboard"] {
            let mut claims = base();
            claims.insert("v".into(), json!(2));
            claims.insert("fea".into(), json!(fea));
            let fpm = if fea.starts_with("o:teams") {
                format!("1,{mask}")
            } else {
                mask.to_string()
            };
            claims.insert(
                "o".into(),
                json!({"id": "org_1", "rol": "admin", "per": LONG_PER, "fpm": fpm}),
            );
            cases.push(Case {
                claims: Value::Object(claims),
                query: format!(
                    "permission=org:dashboard:p0&permission=org:dashboard:p1&{}",
                    high_bits.join("&")
                ),
            });
        }
    }
    // The refused rules, against claims where the SDK says yes and no.
    let mut yes = base();
    yes.insert("org_id".into(), json!("org_1"));
    yes.insert("org_role".into(), json!("org:"));
    yes.insert(
        "org_permissions".into(),
        json!([
            "org:sys_memberships:manage",
            "org:sys_domains:read",
            "org:admin"
        ]),
    );
    yes.insert("pla".into(), json!("o:pro"));
    yes.insert("fea".into(), json!("o:dashboard"));
    yes.insert("fva".into(), json!([1, 1]));
    for claims in [Value::Object(yes), Value::Object(base())] {
        for (query, ..) in DEVIATIONS {
            cases.push(Case {
                claims: claims.clone(),
                query: query.to_string(),
            });
        }
    }
    cases
}

// ---------------------------------------------------------------------------
// The Node bridge.
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct SdkAnswer {
    #[serde(default)]
    holds: Vec<bool>,
    #[serde(default)]
    hints: Vec<Option<String>>,
    error: Option<String>,
}

fn clerk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clerk")
}

fn sdk_answers(cases: &[Case]) -> (String, Vec<SdkAnswer>) {
    const FIX: &str = "run `npm ci --prefix tests/clerk`";
    let dir = clerk_dir();
    assert!(
        Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "`node` is not installed or does not run: install Node.js >= 20, then {FIX}"
    );
    let pinned: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("package.json")).unwrap()).unwrap();
    let installed = dir.join("node_modules/@clerk/backend/package.json");
    let installed: Value =
        serde_json::from_str(&std::fs::read_to_string(&installed).unwrap_or_else(|_| {
            panic!("tests/clerk/node_modules is missing @clerk/backend: {FIX}")
        }))
        .unwrap();
    assert_eq!(
        installed["version"], pinned["dependencies"]["@clerk/backend"],
        "tests/clerk/node_modules has another @clerk/backend than package.json pins: {FIX}"
    );
    let mut input = String::new();
    for case in cases {
        input.push_str(&json!({"claims": case.claims, "query": case.query}).to_string());
        input.push('\n');
    }
    let mut child = Command::new("node")
        .arg(dir.join("has.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node tests/clerk/has.mjs");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "node tests/clerk/has.mjs failed ({}): {}\nIf a module is missing: {FIX}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    let versions = lines.next().unwrap_or_default().to_string();
    let answers: Vec<SdkAnswer> = lines
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line from node: {e}: {l}")))
        .collect();
    assert_eq!(answers.len(), cases.len(), "one answer per case from node");
    (versions, answers)
}

// ---------------------------------------------------------------------------
// The comparison.
// ---------------------------------------------------------------------------

#[test]
fn rules_agree_with_clerks_has() {
    let cases = corpus();
    let (versions, answers) = sdk_answers(&cases);
    let mut mismatches = Vec::new();
    let (mut rules_compared, mut held, mut sdk_threw, mut hints_compared) = (0, 0, 0, 0);
    let mut refused = vec![(0usize, 0usize); DEVIATIONS.len()];
    // [kind][holds]: how often each kind of rule held and failed.
    let mut by_kind = [[0usize; 2]; Reason::ALL.len()];
    for (i, (case, sdk)) in cases.iter().zip(&answers).enumerate() {
        let payload = serde_json::to_vec(&case.claims).unwrap();
        let claims = Claims::parse(&payload).unwrap();
        let identity = Identity::from_claims(&claims).unwrap_or_else(|e| {
            panic!(
                "case {i}: jwtgate would refuse this token ({e}), so it is no rules case: {}",
                case.claims
            )
        });
        // As the gate keeps them: beside the identity, sharing its text.
        let grant = Grant::new(GrantParts {
            issuer: 0,
            identity: &identity,
            facts_from: Some(&claims),
            extra_headers: "",
            reuse_until_ms: 0,
        })
        .unwrap();
        let facts = grant.facts("clerk");
        let show = |what: String| {
            format!(
                "case {i}: {what}\n  claims {}\n  query  {}",
                case.claims, case.query
            )
        };

        let parsed = RuleSet::parse(&case.query);
        let one_pass = evaluate(&case.query, &facts);
        if one_pass != parsed.map(|set| set.evaluate(&facts)) {
            mismatches.push(show(format!(
                "rules::evaluate says {one_pass:?}, RuleSet otherwise"
            )));
        }
        let set = match parsed {
            Ok(set) => set,
            Err(e) => {
                match DEVIATIONS.iter().position(|(q, ..)| *q == case.query) {
                    Some(d) if DEVIATIONS[d].1 == e.problem => {
                        refused[d].0 += 1;
                        refused[d].1 += usize::from(sdk.holds.first() == Some(&true));
                    }
                    _ => mismatches.push(show(format!("jwtgate refuses the query: {e}"))),
                }
                continue;
            }
        };
        if DEVIATIONS.iter().any(|(q, ..)| *q == case.query) {
            mismatches.push(show("a listed deviation was accepted".into()));
        }
        if let Some(error) = &sdk.error {
            sdk_threw += 1;
            if !facts.is_broken() {
                mismatches.push(show(format!(
                    "the SDK throws ({error}), jwtgate's facts are usable"
                )));
            }
        } else if facts.is_broken() {
            mismatches.push(show(
                "jwtgate's facts are broken, the SDK builds an auth object".into(),
            ));
        }
        let requirements = set.requirements();
        if sdk.error.is_none() && sdk.holds.len() != requirements.len() {
            mismatches.push(show(format!(
                "{} rules for jwtgate, {} for the SDK",
                requirements.len(),
                sdk.holds.len()
            )));
            continue;
        }
        for (j, requirement) in requirements.iter().enumerate() {
            rules_compared += 1;
            let ours = requirement.holds(&facts);
            let theirs = sdk.holds.get(j).copied().unwrap_or(false);
            held += usize::from(ours);
            by_kind[requirement.reason().index()][usize::from(ours)] += 1;
            if ours != theirs {
                mismatches.push(show(format!(
                    "rule {j} ({requirement:?}): jwtgate {ours}, SDK {theirs}"
                )));
            }
            if let (Requirement::Reverify(_), Some(Some(hint))) = (requirement, sdk.hints.get(j)) {
                hints_compared += 1;
                let mut ours = String::new();
                let forbidden = Forbidden {
                    reason: requirement.reason(),
                    requirement: *requirement,
                };
                forbidden.write_clerk_error(&mut ours);
                if &ours != hint {
                    mismatches.push(show(format!(
                        "reverification hint: jwtgate {ours}, SDK {hint}"
                    )));
                }
            }
        }
        let all = sdk.error.is_none() && sdk.holds.iter().all(|h| *h);
        let allowed = set.evaluate(&facts) == Verdict::Allow;
        if allowed != all {
            mismatches.push(show(format!(
                "verdict: jwtgate allows={allowed}, SDK all hold={all}"
            )));
        }
    }
    println!("SDK: {versions}");
    println!(
        "{} pairs, {rules_compared} rules compared ({held} hold), {hints_compared} reverification \
         hints, {sdk_threw} pairs where the SDK throws",
        cases.len()
    );
    // `issuer=` is jwtgate's (several issuers), not one of has()'s checks.
    for reason in Reason::ALL
        .into_iter()
        .filter(|r| *r != Reason::WrongIssuer)
    {
        let [fail, hold] = by_kind[reason.index()];
        println!("  {:<24} holds {hold:>5}, fails {fail:>5}", reason.as_str());
        assert!(
            hold >= 50 && fail >= 50,
            "too few of one outcome for {reason}"
        );
    }
    for ((query, problem, why), (n, sdk_yes)) in DEVIATIONS.iter().zip(&refused) {
        println!(
            "deviation {query:?}: refused as {problem:?} {n} times (SDK true {sdk_yes}): {why}"
        );
        assert!(*n > 0, "deviation {query} never showed up in the corpus");
    }
    assert!(
        mismatches.is_empty(),
        "{} disagreements with the SDK, the first ones:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(sdk_threw > 0, "no case where the SDK throws");
}
