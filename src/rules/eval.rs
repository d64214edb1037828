//! Requirements against [`Facts`], with the semantics of Clerk's `has()`
//! (`createCheckAuthorization` in `@clerk/shared` 4.41.0), and the 403.

use std::fmt::Write as _;

use super::facts::{Facts, Kind};
use super::parse::{
    for_each_rule, Level, Requirement, Reverification, Rule, RuleError, RuleSet, Scope,
};
use super::value::Value;

/// The 403's reason word, also sent as [`REASON_HEADER`].
pub const REASON_HEADER: &str = "X-Jwtgate-Reason";
/// On `reverification-required`: the JSON body Clerk's
/// `reverificationErrorResponse` sends, for the proxy to pass on.
pub const REVERIFICATION_HEADER: &str = "X-Jwtgate-Reverification";

/// The decision on a signed-in user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<'q> {
    Allow,
    Forbidden(Forbidden<'q>),
}

/// A requirement that does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forbidden<'q> {
    pub reason: Reason,
    /// The requirement reported (see [`RuleSet::evaluate`]).
    pub requirement: Requirement<'q>,
}

/// Why a signed-in user is refused (403).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// `org=required`: no active organization.
    OrgRequired,
    /// `role=`: not this role in the active organization (or no organization).
    MissingRole,
    /// `permission=`: not this permission in the active organization (or none).
    MissingPermission,
    /// `feature=`: not in `fea` for the scope asked.
    MissingFeature,
    /// `plan=`: not in `pla` for the scope asked.
    MissingPlan,
    /// `reverify=`: the factor was not verified recently enough (or `fva`
    /// is missing or malformed).
    ReverificationRequired,
    /// `issuer=`: the token comes from another issuer.
    WrongIssuer,
}

impl Reason {
    /// All reasons, in a fixed order (for metric counters).
    pub const ALL: [Reason; 7] = [
        Reason::OrgRequired,
        Reason::MissingRole,
        Reason::MissingPermission,
        Reason::MissingFeature,
        Reason::MissingPlan,
        Reason::ReverificationRequired,
        Reason::WrongIssuer,
    ];

    /// The short, stable word for the header, the log and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::OrgRequired => "org-required",
            Reason::MissingRole => "missing-role",
            Reason::MissingPermission => "missing-permission",
            Reason::MissingFeature => "missing-feature",
            Reason::MissingPlan => "missing-plan",
            Reason::ReverificationRequired => "reverification-required",
            Reason::WrongIssuer => "wrong-issuer",
        }
    }

    /// Position in [`Reason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Requirement<'_> {
    /// The reason given when this requirement fails.
    pub fn reason(&self) -> Reason {
        match self {
            Requirement::Org => Reason::OrgRequired,
            Requirement::Role(_) => Reason::MissingRole,
            Requirement::Permission(_) => Reason::MissingPermission,
            Requirement::Feature(..) => Reason::MissingFeature,
            Requirement::Plan(..) => Reason::MissingPlan,
            Requirement::Reverify(_) => Reason::ReverificationRequired,
            Requirement::Issuer(_) => Reason::WrongIssuer,
        }
    }

    /// Whether the requirement holds: Clerk's `has()` with the one
    /// matching parameter (`org=required`: the auth object's `orgId`).
    /// Never allocates.
    pub fn holds(&self, facts: &Facts) -> bool {
        if facts.is_broken() {
            return false;
        }
        match self {
            Requirement::Org => facts.has_org(),
            Requirement::Role(key) => {
                facts.has_org() && facts.role().is_some_and(|r| key.eq_str(r))
            }
            Requirement::Permission(rest) => {
                facts.has_org()
                    && facts
                        .entries(Kind::Permission)
                        .any(|p| p.strip_prefix("org:").is_some_and(|p| rest.eq_str(p)))
            }
            Requirement::Feature(scope, slug) => {
                scoped_has(facts, *scope, *slug, Kind::OrgFeature, Kind::UserFeature)
            }
            Requirement::Plan(scope, slug) => {
                scoped_has(facts, *scope, *slug, Kind::OrgPlan, Kind::UserPlan)
            }
            Requirement::Reverify(r) => reverified(r, facts.fva()),
            Requirement::Issuer(name) => facts.issuer().is_some_and(|i| name.eq_str(i)),
        }
    }
}

/// `checkForFeatureOrPlan`.
fn scoped_has(facts: &Facts, scope: Scope, slug: Value<'_>, org: Kind, user: Kind) -> bool {
    let has = |kind| facts.entries(kind).any(|s| slug.eq_str(s));
    match scope {
        Scope::Org => has(org),
        Scope::User => has(user),
        Scope::Any => has(org) || has(user),
    }
}

/// `checkReverificationAuthorization`, including its fallbacks when a
/// factor is not enrolled (`-1`).
fn reverified(r: &Reverification, fva: Option<(f64, f64)>) -> bool {
    let Some((first, second)) = fva else {
        return false;
    };
    let none = |age: f64| age == -1.0;
    if none(first) && none(second) {
        return false;
    }
    let after = f64::from(r.after_minutes);
    let first_fresh = !none(first) && after > first;
    let second_fresh = !none(second) && after > second;
    match r.level {
        Level::FirstFactor => first_fresh,
        // No second factor enrolled: the first one counts.
        Level::SecondFactor if none(second) => first_fresh,
        Level::SecondFactor => second_fresh,
        Level::MultiFactor if none(second) => first_fresh,
        Level::MultiFactor if none(first) => false,
        Level::MultiFactor => first_fresh && second_fresh,
    }
}

impl<'q> RuleSet<'q> {
    /// Every requirement must hold. The one reported when some do not: the
    /// first failing one in query order that is not a reverification, else
    /// the first failing reverification (prompting a user to reverify is
    /// pointless while another requirement fails anyway). An optional or
    /// empty set allows. Never allocates.
    pub fn evaluate(&self, facts: &Facts) -> Verdict<'q> {
        let mut outcome = Outcome::default();
        for requirement in self.requirements() {
            outcome.see(*requirement, facts);
        }
        outcome.verdict()
    }
}

/// Parses `query` and evaluates it against `facts` in one pass, storing
/// nothing: the same answer as [`RuleSet::parse`] then
/// [`RuleSet::evaluate`], but cheaper, for the hot path (a valid token,
/// often from the cache). A bad rule anywhere is an error, even after a
/// failing one. `optional=1` allows (the token is valid). Never allocates.
pub fn evaluate<'q>(query: &'q str, facts: &Facts) -> Result<Verdict<'q>, RuleError<'q>> {
    let mut outcome = Outcome::default();
    for_each_rule(query, |rule| {
        if let Rule::Require(requirement) = rule {
            outcome.see(requirement, facts);
        }
    })?;
    Ok(outcome.verdict())
}

/// The first failures seen, by kind (see [`RuleSet::evaluate`]).
#[derive(Default)]
struct Outcome<'q> {
    failed: Option<Forbidden<'q>>,
    reverify: Option<Forbidden<'q>>,
}

impl<'q> Outcome<'q> {
    #[inline]
    fn see(&mut self, requirement: Requirement<'q>, facts: &Facts) {
        if self.failed.is_some() || requirement.holds(facts) {
            return;
        }
        let forbidden = Forbidden {
            reason: requirement.reason(),
            requirement,
        };
        match requirement {
            Requirement::Reverify(_) => {
                self.reverify.get_or_insert(forbidden);
            }
            _ => self.failed = Some(forbidden),
        }
    }

    fn verdict(self) -> Verdict<'q> {
        self.failed
            .or(self.reverify)
            .map_or(Verdict::Allow, Verdict::Forbidden)
    }
}

impl Forbidden<'_> {
    /// Appends the 403's header lines to `out`, CRLF between lines and none
    /// at the end (a leading CRLF when `out` already has lines):
    ///
    /// ```text
    /// WWW-Authenticate: Bearer error="insufficient_scope", error_description="<reason>"
    /// X-Jwtgate-Reason: <reason>
    /// X-Jwtgate-Reverification: <Clerk's reverification error JSON>   (reverification only)
    /// ```
    ///
    /// Every byte comes from the fixed grammar (never from the token or the
    /// query text), so the lines are header-safe. Allocation-free when `out`
    /// has room.
    pub fn write_headers(&self, out: &mut String) {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let reason = self.reason.as_str();
        out.push_str("WWW-Authenticate: Bearer error=\"insufficient_scope\", error_description=\"");
        out.push_str(reason);
        out.push_str("\"\r\n");
        out.push_str(REASON_HEADER);
        out.push_str(": ");
        out.push_str(reason);
        if let Requirement::Reverify(_) = self.requirement {
            out.push_str("\r\n");
            out.push_str(REVERIFICATION_HEADER);
            out.push_str(": ");
            self.write_clerk_error(out);
        }
    }

    /// For a reverification: appends the JSON that Clerk's
    /// `reverificationError(config)` makes, with the config as the rule
    /// gave it (a preset name, or `{"level":...,"afterMinutes":...}`), and
    /// returns true; what `useReverification()` in Clerk's frontend SDKs
    /// reads from a 403 body. Other reasons: appends nothing, false.
    pub fn write_clerk_error(&self, out: &mut String) -> bool {
        let Requirement::Reverify(r) = self.requirement else {
            return false;
        };
        out.push_str(
            "{\"clerk_error\":{\"type\":\"forbidden\",\"reason\":\"reverification-error\",\
             \"metadata\":{\"reverification\":",
        );
        match r.preset {
            Some(preset) => {
                out.push('"');
                out.push_str(preset.as_str());
                out.push('"');
            }
            None => {
                let _ = write!(
                    out,
                    "{{\"level\":\"{}\",\"afterMinutes\":{}}}",
                    r.level.as_str(),
                    r.after_minutes
                );
            }
        }
        out.push_str("}}}");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::facts::OwnedFacts;
    use serde_json::{json, Value as J};

    fn facts(v: J) -> OwnedFacts {
        OwnedFacts::from_payload(v.to_string().as_bytes())
    }

    /// Both ways of evaluating, which must agree.
    fn verdict<'q>(query: &'q str, f: &OwnedFacts) -> Result<(), Forbidden<'q>> {
        let f = &f.facts();
        let stored = RuleSet::parse(query).unwrap().evaluate(f);
        assert_eq!(evaluate(query, f), Ok(stored), "{query}");
        match stored {
            Verdict::Allow => Ok(()),
            Verdict::Forbidden(x) => Err(x),
        }
    }

    fn allows(query: &str, f: &OwnedFacts) -> bool {
        verdict(query, f).is_ok()
    }

    fn reason(query: &str, f: &OwnedFacts) -> Option<Reason> {
        verdict(query, f).err().map(|x| x.reason)
    }

    fn admin_v1() -> OwnedFacts {
        facts(
            json!({"sub": "u", "org_id": "org_1", "org_role": "org:admin",
                     "org_permissions": ["org:billing:manage", "org:sys_memberships:manage"],
                     "fea": "o:teams,u:reports,uo:export", "pla": "o:pro"}),
        )
    }

    #[test]
    fn issuer_rules_compare_the_name_the_gate_gave() {
        let clerk = admin_v1().with_issuer("clerk.example.com");
        assert!(allows("issuer=clerk.example.com&role=admin", &clerk));
        assert_eq!(reason("issuer=partner", &clerk), Some(Reason::WrongIssuer));
        assert_eq!(
            reason("issuer=CLERK.example.com", &clerk),
            Some(Reason::WrongIssuer)
        );
        assert_eq!(
            reason("issuer=partner", &admin_v1()),
            Some(Reason::WrongIssuer)
        );
        // Another issuer's token next to Clerk's: no Clerk facts, only its name.
        let partner = OwnedFacts::default().with_issuer("partner");
        assert!(allows("issuer=partner", &partner));
        assert_eq!(
            reason("issuer=partner&role=admin", &partner),
            Some(Reason::MissingRole)
        );
        assert_eq!(
            reason("issuer=partner&org=required", &partner),
            Some(Reason::OrgRequired)
        );
        // Broken facts fail everything, the issuer too.
        assert_eq!(
            reason(
                "issuer=partner",
                &OwnedFacts::broken().with_issuer("partner")
            ),
            Some(Reason::WrongIssuer)
        );
        let mut out = String::new();
        verdict("issuer=partner", &clerk)
            .unwrap_err()
            .write_headers(&mut out);
        assert!(out.ends_with("X-Jwtgate-Reason: wrong-issuer"), "{out}");
    }

    #[test]
    fn roles_match_with_or_without_the_prefix() {
        let f = admin_v1();
        for q in ["role=org:admin", "role=admin", "role=org:org:admin"] {
            assert!(allows(q, &f), "{q}");
        }
        assert_eq!(reason("role=org:member", &f), Some(Reason::MissingRole));
        let v2 = facts(json!({"v": 2, "o": {"id": "org_1", "rol": "admin"}}));
        assert!(allows("role=org:admin", &v2) && allows("role=admin", &v2));
        let no_org = facts(json!({"org_role": "org:admin"}));
        assert_eq!(reason("role=org:admin", &no_org), Some(Reason::MissingRole));
    }

    #[test]
    fn permissions_match_the_whole_string() {
        let f = admin_v1();
        assert!(allows("permission=org:billing:manage", &f));
        assert!(allows("permission=billing:manage", &f));
        assert_eq!(
            reason("permission=org:billing:read", &f),
            Some(Reason::MissingPermission)
        );
        // An unprefixed entry in the claims is never matched (the SDK
        // prefixes only the parameter).
        let bare = facts(json!({"org_id": "o", "org_permissions": ["billing:manage"]}));
        assert!(!allows("permission=billing:manage", &bare));
        let v2 = facts(json!({"v": 2, "fea": "o:dashboard,o:teams",
                              "o": {"id": "o", "per": "manage,read", "fpm": "3,2"}}));
        assert!(allows("permission=org:teams:read", &v2));
        assert!(!allows("permission=org:teams:manage", &v2));
    }

    #[test]
    fn features_and_plans_respect_scopes() {
        let f = admin_v1();
        assert!(allows(
            "feature=teams&feature=o:teams&feature=org:teams",
            &f
        ));
        assert_eq!(reason("feature=u:teams", &f), Some(Reason::MissingFeature));
        assert!(allows("feature=reports&feature=user:reports", &f));
        assert!(!allows("feature=o:reports", &f));
        assert!(allows("feature=o:export&feature=u:export", &f));
        assert!(allows("plan=pro&plan=o:pro", &f));
        assert_eq!(reason("plan=u:pro", &f), Some(Reason::MissingPlan));
        assert_eq!(
            reason("plan=free", &facts(json!({}))),
            Some(Reason::MissingPlan)
        );
    }

    #[test]
    fn org_required_needs_an_active_org() {
        assert!(allows("org=required", &admin_v1()));
        assert_eq!(
            reason("org=required", &facts(json!({"sub": "u"}))),
            Some(Reason::OrgRequired)
        );
        assert!(allows(
            "org=required",
            &facts(json!({"v": 2, "o": {"id": "o"}}))
        ));
    }

    #[test]
    fn reverification_follows_the_sdk_fallbacks() {
        let at = |a: f64, b: f64| facts(json!({ "fva": [a, b] }));
        // Second factor enrolled: it decides for second_factor.
        assert!(allows("reverify=strict", &at(100.0, 9.0)));
        assert!(
            !allows("reverify=strict", &at(0.0, 10.0)),
            "strictly less than"
        );
        // No second factor: the first one counts.
        assert!(allows("reverify=strict", &at(9.0, -1.0)));
        assert!(!allows("reverify=strict", &at(10.0, -1.0)));
        // No first factor: the second decides.
        assert!(allows("reverify=second_factor:10", &at(-1.0, 9.0)));
        assert!(!allows("reverify=first_factor:10", &at(-1.0, 0.0)));
        // multi_factor: both, or the first when there is no second, never
        // with a second but no first.
        assert!(allows("reverify=strict_mfa", &at(9.0, 9.0)));
        assert!(!allows("reverify=strict_mfa", &at(11.0, 9.0)));
        assert!(!allows("reverify=strict_mfa", &at(9.0, 11.0)));
        assert!(allows("reverify=strict_mfa", &at(9.0, -1.0)));
        assert!(!allows("reverify=strict_mfa", &at(-1.0, 1.0)));
        // Nothing enrolled, or no fva: never.
        assert!(!allows("reverify=lax", &at(-1.0, -1.0)));
        assert!(!allows("reverify=lax", &facts(json!({}))));
        // Presets' minutes.
        assert!(allows("reverify=moderate", &at(0.0, 59.0)));
        assert!(!allows("reverify=moderate", &at(0.0, 60.0)));
        assert!(allows("reverify=lax", &at(0.0, 1439.5)));
        assert!(allows("reverify=30", &at(29.0, -1.0)));
        assert!(!allows("reverify=30", &at(0.0, 30.0)));
    }

    #[test]
    fn all_must_hold_and_reverification_is_reported_last() {
        let f = facts(json!({"org_id": "o", "org_role": "org:member", "fva": [50, 50]}));
        assert!(allows("org=required&role=member&reverify=lax", &f));
        assert_eq!(
            reason("reverify=strict&role=admin&org=required", &f),
            Some(Reason::MissingRole)
        );
        assert_eq!(
            reason("reverify=strict&reverify=1", &f),
            Some(Reason::ReverificationRequired)
        );
        match verdict("reverify=lax&reverify=strict&reverify=1", &f) {
            Err(Forbidden {
                requirement: Requirement::Reverify(r),
                ..
            }) => assert_eq!(r.after_minutes, 10, "the first failing one"),
            other => panic!("{other:?}"),
        }
        assert!(allows("", &f) && allows("optional=1", &f));
    }

    #[test]
    fn one_pass_evaluation_still_refuses_bad_rules() {
        let f = admin_v1();
        for q in [
            "role=member&role=",
            "org=required&x=1",
            "optional=1&role=admin",
            "role=a&optional=1",
        ] {
            let parsed = RuleSet::parse(q).map(|_| ()).unwrap_err();
            assert_eq!(evaluate(q, &f.facts()).map(|_| ()), Err(parsed), "{q}");
        }
        assert_eq!(evaluate("optional=1", &f.facts()), Ok(Verdict::Allow));
        assert_eq!(
            evaluate("", &OwnedFacts::broken().facts()),
            Ok(Verdict::Allow)
        );
    }

    proptest::proptest! {
        /// Any query and any payload: no panic, and the one-pass path
        /// agrees with parse-then-evaluate.
        #[test]
        fn any_input_is_handled(
            query in "((role|permission|feature|plan|org|reverify|optional|x)(=(org:|o:|u:|[a-z_]{1,12}:|%3A)?[a-z0-9_%A-F.+-]{0,12})?&?){0,6}|\\PC{0,40}",
            fea in "[ou, :a-z\u{a0}]{0,20}",
            per in "[a-z, ]{0,12}",
            fpm in "[0-9, +x]{0,30}",
            fva in proptest::collection::vec(-3.0f64..2000.0, 0..4),
        ) {
            let payloads = [
                json!({"v": 2, "fea": fea, "pla": per, "fva": fva,
                       "o": {"id": "o", "rol": per, "per": per, "fpm": fpm}}),
                json!({"org_id": "o", "org_role": fea, "org_permissions": [per, fpm],
                       "fea": fea, "fva": fva}),
            ];
            for payload in payloads {
                let f = facts(payload);
                let stored = RuleSet::parse(&query).map(|set| set.evaluate(&f.facts()));
                proptest::prop_assert_eq!(evaluate(&query, &f.facts()), stored);
                if let Ok(Verdict::Forbidden(x)) = stored {
                    let mut out = String::new();
                    x.write_headers(&mut out);
                    for line in out.split("\r\n") {
                        let value = line.split_once(": ").unwrap().1;
                        proptest::prop_assert!(crate::token::identity::is_safe_header_value(value));
                    }
                }
            }
        }
    }

    #[test]
    fn broken_facts_fail_everything() {
        let f = OwnedFacts::broken();
        for q in [
            "org=required",
            "role=admin",
            "permission=a:b",
            "feature=a",
            "plan=a",
            "reverify=1",
        ] {
            assert!(!allows(q, &f), "{q}");
        }
        assert!(allows("", &f));
    }

    #[test]
    fn forbidden_headers_carry_the_reason_and_clerks_hint() {
        let f = facts(json!({"fva": [30, -1], "org_id": "o"}));
        let headers = |q: &str| {
            let set = RuleSet::parse(q).unwrap();
            let Verdict::Forbidden(x) = set.evaluate(&f.facts()) else {
                panic!("{q}")
            };
            let mut out = String::new();
            x.write_headers(&mut out);
            out
        };
        assert_eq!(
            headers("role=admin"),
            "WWW-Authenticate: Bearer error=\"insufficient_scope\", error_description=\"missing-role\"\r\n\
             X-Jwtgate-Reason: missing-role"
        );
        assert_eq!(
            headers("reverify=strict"),
            "WWW-Authenticate: Bearer error=\"insufficient_scope\", error_description=\"reverification-required\"\r\n\
             X-Jwtgate-Reason: reverification-required\r\n\
             X-Jwtgate-Reverification: {\"clerk_error\":{\"type\":\"forbidden\",\"reason\":\"reverification-error\",\
             \"metadata\":{\"reverification\":\"strict\"}}}"
        );
        let hint = headers("reverify=first_factor:15");
        assert!(
            hint.ends_with(
                "{\"reverification\":{\"level\":\"first_factor\",\"afterMinutes\":15}}}}"
            ),
            "{hint}"
        );
        for line in hint.split("\r\n") {
            assert!(crate::token::identity::is_safe_header_value(
                line.split_once(": ").unwrap().1
            ));
        }
        let mut out = String::from("X-Existing: 1");
        let set = RuleSet::parse("org=required&feature=x").unwrap();
        let Verdict::Forbidden(x) = set.evaluate(&f.facts()) else {
            panic!()
        };
        x.write_headers(&mut out);
        assert!(
            out.starts_with("X-Existing: 1\r\nWWW-Authenticate: "),
            "{out}"
        );
        assert!(!x.write_clerk_error(&mut out));
        assert_eq!(
            Reason::ALL.iter().map(|r| r.index()).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5, 6]
        );
    }
}
