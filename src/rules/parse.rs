//! The rule grammar: a query string of `key=value` pairs joined by `&`.
//!
//! ```text
//! query       = [ pair *( "&" [ pair ] ) ]          ; empty pairs are skipped
//! pair        = "role=" role | "permission=" permission
//!             | "feature=" scoped | "plan=" scoped
//!             | "org=required" | "reverify=" reverify | "optional=1"
//!             | "issuer=" name                       ; an issuer's name (several issuers)
//! role        = *( "org:" ) key                      ; "admin" = "org:admin"
//! permission  = *( "org:" ) feature ":" name         ; never "org:sys_*"
//! scoped      = [ scope ":" ] slug                   ; no scope: org or user
//! scope       = "o" | "org" | "organization" | "u" | "user"
//! reverify    = "strict" | "strict_mfa" | "moderate" | "lax"
//!             | minutes | level ":" minutes
//! level       = "first_factor" | "second_factor" | "multi_factor"
//! minutes     = 1*DIGIT                              ; 1 ..= 1000000
//! key, feature, name, slug = 1*( ALPHA / DIGIT / "_" / "-" / "." )
//! ```
//!
//! Values may be percent-encoded (`org%3Aadmin`); `+` is not a space, it is
//! refused like every byte outside the sets above. Parsing never allocates:
//! a [`RuleSet`] borrows its values from the query.

use std::fmt;

use super::value::{Value, ValueProblem};

/// Most requirements in one query.
pub const MAX_REQUIREMENTS: usize = 16;
/// Longest query, in bytes.
pub const MAX_QUERY_BYTES: usize = 2048;
/// Largest `reverify` minutes (about 694 days).
pub const MAX_MINUTES: u32 = 1_000_000;

/// What a location requires of a signed-in user, all of them at once.
#[derive(Clone, Copy)]
pub struct RuleSet<'q> {
    items: [Requirement<'q>; MAX_REQUIREMENTS],
    len: usize,
    optional: bool,
}

/// One requirement, normalised the way Clerk's `has()` reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requirement<'q> {
    /// `org=required`: an active organization.
    Org,
    /// `role=`: the org role, without its `org:` prefix(es).
    Role(Value<'q>),
    /// `permission=`: `<feature>:<name>`, without the `org:` prefix(es).
    Permission(Value<'q>),
    /// `feature=`: an entry of the `fea` claim.
    Feature(Scope, Value<'q>),
    /// `plan=`: an entry of the `pla` claim.
    Plan(Scope, Value<'q>),
    /// `reverify=`: a factor verified recently enough (`fva` claim).
    Reverify(Reverification),
    /// `issuer=`: the token comes from the issuer of this name (with
    /// several issuers configured; not one of Clerk's `has()` checks).
    Issuer(Value<'q>),
}

/// Whose features or plans a `feature=`/`plan=` rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// No scope given: the organization's or the user's.
    Any,
    /// `o:`, `org:`, `organization:`.
    Org,
    /// `u:`, `user:`.
    User,
}

/// Which factors a reverification looks at (Clerk's `SessionVerificationLevel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    FirstFactor,
    SecondFactor,
    MultiFactor,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::FirstFactor => "first_factor",
            Level::SecondFactor => "second_factor",
            Level::MultiFactor => "multi_factor",
        }
    }
}

/// Clerk's reverification presets (`SessionVerificationTypes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    StrictMfa,
    Strict,
    Moderate,
    Lax,
}

impl Preset {
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::StrictMfa => "strict_mfa",
            Preset::Strict => "strict",
            Preset::Moderate => "moderate",
            Preset::Lax => "lax",
        }
    }

    /// The level and minutes Clerk's `TYPES_TO_OBJECTS` gives a preset.
    pub fn config(self) -> (Level, u32) {
        match self {
            Preset::StrictMfa => (Level::MultiFactor, 10),
            Preset::Strict => (Level::SecondFactor, 10),
            Preset::Moderate => (Level::SecondFactor, 60),
            Preset::Lax => (Level::SecondFactor, 1440),
        }
    }
}

/// A `reverify=` rule: `level` verified less than `after_minutes` ago.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reverification {
    pub level: Level,
    pub after_minutes: u32,
    /// The preset it was written as, if any (Clerk's error echoes it).
    pub preset: Option<Preset>,
}

/// An operator error: a rule jwtgate cannot enforce. Never a reason to
/// allow; the gate answers so that the proxy fails closed, and logs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleError<'q> {
    /// The offending `key=value` pair as written (or the query's start).
    pub pair: &'q str,
    pub problem: Problem,
}

/// What is wrong with a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Over [`MAX_QUERY_BYTES`].
    QueryTooLong,
    /// Over [`MAX_REQUIREMENTS`].
    TooManyRules,
    /// A pair without `=`.
    NoValue,
    UnknownKey,
    EmptyValue,
    /// A value over the length limit.
    ValueTooLong,
    /// A byte outside the allowed set, or a bad `%` escape.
    BadCharacter,
    /// A role that is only `org:` prefixes.
    BadRole,
    /// A permission that is not `org:<feature>:<name>`.
    BadPermission,
    /// `org:sys_*`: Clerk keeps system permissions out of session tokens,
    /// so the rule could never hold. Require a role instead.
    SystemPermission,
    /// A feature or plan with a scope other than o/org/organization/u/user,
    /// or with an empty slug or a second `:`.
    BadScope,
    /// `org=` other than `required`.
    BadOrg,
    /// A `reverify=` that is no preset, minutes or `level:minutes`.
    BadReverify,
    /// Minutes of 0, over [`MAX_MINUTES`], or not digits.
    BadMinutes,
    /// `optional=` other than `1`.
    BadOptional,
    /// `optional=1` together with requirements: allow everyone, or not?
    OptionalWithRequirements,
}

impl Problem {
    pub fn describe(self) -> &'static str {
        match self {
            Problem::QueryTooLong => "the query is too long",
            Problem::TooManyRules => "too many rules (at most 16)",
            Problem::NoValue => "no value (expected key=value)",
            Problem::UnknownKey => {
                "unknown key (role, permission, feature, plan, org, reverify, issuer, optional)"
            }
            Problem::EmptyValue => "empty value",
            Problem::ValueTooLong => "value too long (at most 128 bytes)",
            Problem::BadCharacter => "a value holds only letters, digits, _ - . and :",
            Problem::BadRole => "empty role",
            Problem::BadPermission => "a permission is org:<feature>:<permission>",
            Problem::SystemPermission => {
                "system permissions (org:sys_*) are not in session tokens; require a role"
            }
            Problem::BadScope => "expected [o|org|organization|u|user:]<slug>",
            Problem::BadOrg => "org= takes only `required`",
            Problem::BadReverify => {
                "expected strict, strict_mfa, moderate, lax, <minutes> or <level>:<minutes>"
            }
            Problem::BadMinutes => "minutes must be a whole number from 1 to 1000000",
            Problem::BadOptional => "optional= takes only `1`",
            Problem::OptionalWithRequirements => "optional=1 cannot be combined with requirements",
        }
    }
}

impl fmt::Display for RuleError<'_> {
    /// One line, safe for logs: the pair is escaped and cut at 100 bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut end = self.pair.len().min(100);
        while !self.pair.is_char_boundary(end) {
            end -= 1;
        }
        let cut = if end < self.pair.len() { "..." } else { "" };
        write!(
            f,
            "bad rule \"{}{cut}\": {}",
            self.pair[..end].escape_debug(),
            self.problem.describe()
        )
    }
}

impl std::error::Error for RuleError<'_> {}

impl<'q> RuleSet<'q> {
    /// No requirements: any valid token.
    pub const EMPTY: RuleSet<'static> = RuleSet {
        items: [Requirement::Org; MAX_REQUIREMENTS],
        len: 0,
        optional: false,
    };

    /// Parses the query string of an auth request (the part after `?`,
    /// possibly empty). Never allocates.
    pub fn parse(query: &'q str) -> Result<RuleSet<'q>, RuleError<'q>> {
        let mut set = RuleSet::EMPTY;
        for_each_rule(query, |rule| match rule {
            Rule::Optional => set.optional = true,
            Rule::Require(requirement) => {
                set.items[set.len] = requirement;
                set.len += 1;
            }
        })?;
        Ok(set)
    }

    /// The requirements, in query order.
    pub fn requirements(&self) -> &[Requirement<'q>] {
        &self.items[..self.len]
    }

    /// `optional=1`: answer 200 for everyone, identity only for a valid token.
    pub fn is_optional(&self) -> bool {
        self.optional
    }

    /// No requirement and not optional: today's plain `/auth`.
    pub fn is_empty(&self) -> bool {
        self.len == 0 && !self.optional
    }
}

impl fmt::Debug for RuleSet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSet")
            .field("requirements", &self.requirements())
            .field("optional", &self.optional)
            .finish()
    }
}

impl PartialEq for RuleSet<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.requirements() == other.requirements() && self.optional == other.optional
    }
}

/// One pair of the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rule<'q> {
    Optional,
    Require(Requirement<'q>),
}

/// Reads the query pair by pair, calling `visit` for each rule in order,
/// and fails on the first bad one (after `visit` saw the ones before it);
/// also enforces the limits and that `optional=1` stands alone. Both
/// [`RuleSet::parse`] and [`super::evaluate`] use it, so they accept the
/// same queries.
#[inline]
pub(super) fn for_each_rule<'q>(
    query: &'q str,
    mut visit: impl FnMut(Rule<'q>),
) -> Result<(), RuleError<'q>> {
    if query.is_empty() {
        return Ok(());
    }
    if query.len() > MAX_QUERY_BYTES {
        let mut end = 64;
        while !query.is_char_boundary(end) {
            end -= 1;
        }
        return Err(RuleError {
            pair: &query[..end],
            problem: Problem::QueryTooLong,
        });
    }
    let (mut first_pair, mut optional, mut count) = ("", false, 0);
    let mut rest = query;
    while !rest.is_empty() {
        // (Byte loops: for strings this short they beat `split`'s memchr.)
        let end = position(rest, b'&').unwrap_or(rest.len());
        let pair = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
        if pair.is_empty() {
            continue;
        }
        let rule = parse_pair(pair).map_err(|problem| RuleError { pair, problem })?;
        if first_pair.is_empty() {
            first_pair = pair;
        }
        match rule {
            Rule::Optional => optional = true,
            Rule::Require(_) if count == MAX_REQUIREMENTS => {
                return Err(RuleError {
                    pair,
                    problem: Problem::TooManyRules,
                })
            }
            Rule::Require(_) => count += 1,
        }
        if optional && count > 0 {
            return Err(RuleError {
                pair: first_pair,
                problem: Problem::OptionalWithRequirements,
            });
        }
        visit(rule);
    }
    Ok(())
}

/// Where an ASCII byte first occurs (always a char boundary).
fn position(s: &str, b: u8) -> Option<usize> {
    s.bytes().position(|x| x == b)
}

fn parse_pair(pair: &str) -> Result<Rule<'_>, Problem> {
    let at = position(pair, b'=').ok_or(Problem::NoValue)?;
    let (key, raw) = (&pair[..at], &pair[at + 1..]);
    let value = Value::new(raw).map_err(|p| match p {
        ValueProblem::Empty => Problem::EmptyValue,
        ValueProblem::TooLong => Problem::ValueTooLong,
        ValueProblem::BadCharacter => Problem::BadCharacter,
    })?;
    let requirement = match key {
        "role" => Requirement::Role(role(value)?),
        "permission" => Requirement::Permission(permission(value)?),
        "feature" => {
            let (scope, slug) = scoped(value)?;
            Requirement::Feature(scope, slug)
        }
        "plan" => {
            let (scope, slug) = scoped(value)?;
            Requirement::Plan(scope, slug)
        }
        "reverify" => Requirement::Reverify(reverify(value)?),
        "issuer" if value.contains(b':') => return Err(Problem::BadCharacter),
        "issuer" => Requirement::Issuer(value),
        "org" if value.eq_str("required") => Requirement::Org,
        "org" => return Err(Problem::BadOrg),
        "optional" if value.eq_str("1") => return Ok(Rule::Optional),
        "optional" => return Err(Problem::BadOptional),
        _ => return Err(Problem::UnknownKey),
    };
    Ok(Rule::Require(requirement))
}

/// Clerk's `prefixWithOrg` keeps one `org:` however many were written; the
/// rest is what is compared.
fn strip_org_prefixes(mut value: Value<'_>) -> Value<'_> {
    while let Some(rest) = value.strip_prefix(b"org:") {
        value = rest;
    }
    value
}

fn role(value: Value<'_>) -> Result<Value<'_>, Problem> {
    let key = strip_org_prefixes(value);
    if key.is_empty() {
        return Err(Problem::BadRole);
    }
    Ok(key)
}

fn permission(value: Value<'_>) -> Result<Value<'_>, Problem> {
    let rest = strip_org_prefixes(value);
    let (feature, name) = rest.split_once(b':').ok_or(Problem::BadPermission)?;
    if feature.is_empty() || name.is_empty() || name.contains(b':') {
        return Err(Problem::BadPermission);
    }
    if feature.strip_prefix(b"sys_").is_some() {
        return Err(Problem::SystemPermission);
    }
    Ok(rest)
}

fn scoped(value: Value<'_>) -> Result<(Scope, Value<'_>), Problem> {
    let Some((scope, slug)) = value.split_once(b':') else {
        return Ok((Scope::Any, value));
    };
    let scope = if ["o", "org", "organization"].iter().any(|s| scope.eq_str(s)) {
        Scope::Org
    } else if ["u", "user"].iter().any(|s| scope.eq_str(s)) {
        Scope::User
    } else {
        return Err(Problem::BadScope);
    };
    if slug.is_empty() || slug.contains(b':') {
        return Err(Problem::BadScope);
    }
    Ok((scope, slug))
}

fn reverify(value: Value<'_>) -> Result<Reverification, Problem> {
    const PRESETS: [Preset; 4] = [
        Preset::StrictMfa,
        Preset::Strict,
        Preset::Moderate,
        Preset::Lax,
    ];
    const LEVELS: [Level; 3] = [Level::FirstFactor, Level::SecondFactor, Level::MultiFactor];
    if let Some(preset) = PRESETS.into_iter().find(|p| value.eq_str(p.as_str())) {
        let (level, after_minutes) = preset.config();
        return Ok(Reverification {
            level,
            after_minutes,
            preset: Some(preset),
        });
    }
    let (level, minutes) = match value.split_once(b':') {
        Some((level, minutes)) => {
            let level = LEVELS
                .into_iter()
                .find(|l| level.eq_str(l.as_str()))
                .ok_or(Problem::BadReverify)?;
            (level, minutes)
        }
        // Bare minutes: the presets' level (second factor, else the first).
        None if value.bytes().all(|b| b.is_ascii_digit()) => (Level::SecondFactor, value),
        None => return Err(Problem::BadReverify),
    };
    Ok(Reverification {
        level,
        after_minutes: parse_minutes(minutes)?,
        preset: None,
    })
}

fn parse_minutes(value: Value<'_>) -> Result<u32, Problem> {
    let mut n: u32 = 0;
    for b in value.bytes() {
        if !b.is_ascii_digit() {
            return Err(Problem::BadMinutes);
        }
        n = n
            .saturating_mul(10)
            .saturating_add(u32::from(b - b'0'))
            .min(MAX_MINUTES + 1);
    }
    if value.is_empty() || n == 0 || n > MAX_MINUTES {
        return Err(Problem::BadMinutes);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<RuleSet<'_>, RuleError<'_>> {
        RuleSet::parse(query)
    }

    fn one(query: &str) -> Requirement<'_> {
        let set = parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        assert_eq!(set.requirements().len(), 1, "{query}");
        set.requirements()[0]
    }

    fn problem(query: &str) -> Problem {
        match parse(query) {
            Ok(set) => panic!("{query} parsed: {set:?}"),
            Err(e) => e.problem,
        }
    }

    fn v(s: &str) -> Value<'_> {
        Value::new(s).unwrap()
    }

    #[test]
    fn empty_query_is_no_requirement() {
        let set = parse("").unwrap();
        assert!(set.is_empty() && !set.is_optional());
        assert_eq!(set, RuleSet::EMPTY);
        assert!(parse("&&").unwrap().is_empty());
    }

    #[test]
    fn roles_lose_their_org_prefixes_as_in_clerk() {
        for q in [
            "role=org:admin",
            "role=admin",
            "role=org:org:admin",
            "role=org%3Aadmin",
        ] {
            match one(q) {
                Requirement::Role(r) => assert!(r.eq_str("admin"), "{q}: {r}"),
                other => panic!("{q}: {other:?}"),
            }
        }
        assert_eq!(problem("role=org:"), Problem::BadRole);
        assert_eq!(problem("role=org:org:"), Problem::BadRole);
        assert_eq!(problem("role="), Problem::EmptyValue);
    }

    #[test]
    fn permissions_are_feature_and_name() {
        for q in [
            "permission=org:billing:manage",
            "permission=billing:manage",
            "permission=org:org:billing:manage",
        ] {
            assert_eq!(one(q), Requirement::Permission(v("billing:manage")), "{q}");
        }
        for q in [
            "permission=org:admin",
            "permission=manage",
            "permission=org::manage",
            "permission=org:billing:",
            "permission=org:a:b:c",
        ] {
            assert_eq!(problem(q), Problem::BadPermission, "{q}");
        }
        for q in [
            "permission=org:sys_memberships:manage",
            "permission=sys_domains:read",
            "permission=org%3Asys_profile%3Adelete",
        ] {
            assert_eq!(problem(q), Problem::SystemPermission, "{q}");
        }
    }

    #[test]
    fn features_and_plans_take_clerk_scopes() {
        assert_eq!(
            one("feature=dashboard"),
            Requirement::Feature(Scope::Any, v("dashboard"))
        );
        for (q, scope) in [
            ("feature=o:teams", Scope::Org),
            ("feature=org:teams", Scope::Org),
            ("feature=organization:teams", Scope::Org),
            ("feature=u:teams", Scope::User),
            ("feature=user:teams", Scope::User),
        ] {
            assert_eq!(one(q), Requirement::Feature(scope, v("teams")), "{q}");
        }
        assert_eq!(
            one("plan=u:free"),
            Requirement::Plan(Scope::User, v("free"))
        );
        for q in [
            "feature=x:teams",
            "feature=ou:teams",
            "plan=o:",
            "plan=o:a:b",
            "feature=:a",
        ] {
            assert_eq!(problem(q), Problem::BadScope, "{q}");
        }
    }

    #[test]
    fn reverify_presets_minutes_and_levels() {
        let r = |level, after_minutes, preset| {
            Requirement::Reverify(Reverification {
                level,
                after_minutes,
                preset,
            })
        };
        use Level::*;
        assert_eq!(
            one("reverify=strict"),
            r(SecondFactor, 10, Some(Preset::Strict))
        );
        assert_eq!(
            one("reverify=strict_mfa"),
            r(MultiFactor, 10, Some(Preset::StrictMfa))
        );
        assert_eq!(
            one("reverify=moderate"),
            r(SecondFactor, 60, Some(Preset::Moderate))
        );
        assert_eq!(
            one("reverify=lax"),
            r(SecondFactor, 1440, Some(Preset::Lax))
        );
        assert_eq!(one("reverify=15"), r(SecondFactor, 15, None));
        assert_eq!(one("reverify=007"), r(SecondFactor, 7, None));
        assert_eq!(one("reverify=first_factor:5"), r(FirstFactor, 5, None));
        assert_eq!(one("reverify=second_factor:30"), r(SecondFactor, 30, None));
        assert_eq!(
            one("reverify=multi_factor%3A1000000"),
            r(MultiFactor, 1_000_000, None)
        );
        for q in [
            "reverify=0",
            "reverify=1000001",
            "reverify=99999999999999999999",
        ] {
            assert_eq!(problem(q), Problem::BadMinutes, "{q}");
        }
        for q in [
            "reverify=first_factor:0",
            "reverify=first_factor:",
            "reverify=first_factor:1.5",
            "reverify=first_factor:-1",
        ] {
            assert_eq!(problem(q), Problem::BadMinutes, "{q}");
        }
        for q in [
            "reverify=STRICT",
            "reverify=1.5",
            "reverify=third_factor:5",
            "reverify=strict:5",
            "reverify=-5",
        ] {
            assert_eq!(problem(q), Problem::BadReverify, "{q}");
        }
        assert_eq!(problem("reverify=5%2B"), Problem::BadCharacter);
    }

    #[test]
    fn several_rules_and_repeats_are_kept_in_order() {
        let set = parse("role=admin&permission=org:a:b&role=member&org=required&").unwrap();
        assert_eq!(
            set.requirements(),
            &[
                Requirement::Role(v("admin")),
                Requirement::Permission(v("a:b")),
                Requirement::Role(v("member")),
                Requirement::Org,
            ]
        );
        let many = vec!["org=required"; MAX_REQUIREMENTS].join("&");
        assert_eq!(parse(&many).unwrap().requirements().len(), MAX_REQUIREMENTS);
        assert_eq!(
            problem(&format!("{many}&org=required")),
            Problem::TooManyRules
        );
    }

    #[test]
    fn optional_stands_alone() {
        let set = parse("optional=1").unwrap();
        assert!(set.is_optional() && !set.is_empty());
        assert!(parse("optional=1&optional=1").unwrap().is_optional());
        assert_eq!(problem("optional=true"), Problem::BadOptional);
        assert_eq!(problem("optional"), Problem::NoValue);
        assert_eq!(
            problem("optional=1&role=admin"),
            Problem::OptionalWithRequirements
        );
        assert_eq!(
            problem("role=admin&optional=1"),
            Problem::OptionalWithRequirements
        );
    }

    #[test]
    fn malformed_rules_are_errors_naming_the_pair() {
        assert_eq!(problem("org=yes"), Problem::BadOrg);
        assert_eq!(problem("org=required&roles=admin"), Problem::UnknownKey);
        assert_eq!(problem("Role=admin"), Problem::UnknownKey);
        assert_eq!(problem("role"), Problem::NoValue);
        assert_eq!(problem("=admin"), Problem::UnknownKey);
        assert_eq!(problem("role=a+b"), Problem::BadCharacter);
        assert_eq!(problem("role=a%"), Problem::BadCharacter);
        assert_eq!(problem("role=a=b"), Problem::BadCharacter);
        assert_eq!(
            problem(&format!("role={}", "a".repeat(129))),
            Problem::ValueTooLong
        );
        assert_eq!(
            problem(&format!("role={}", "a".repeat(MAX_QUERY_BYTES))),
            Problem::QueryTooLong
        );
        let err = parse("role=admin&reverify=fast").unwrap_err();
        assert_eq!(err.pair, "reverify=fast");
        assert_eq!(
            err.to_string(),
            "bad rule \"reverify=fast\": expected strict, strict_mfa, moderate, lax, \
             <minutes> or <level>:<minutes>"
        );
        assert_eq!(problem("issuer="), Problem::EmptyValue);
        assert_eq!(problem("issuer=a:b"), Problem::BadCharacter);
        assert_eq!(
            parse("issuer=partner&role=admin").unwrap().requirements()[0],
            Requirement::Issuer(Value::new("partner").unwrap())
        );
        let hostile = parse("x=\n\u{1b}[31m").unwrap_err().to_string();
        assert!(!hostile.chars().any(char::is_control), "{hostile:?}");
        let long = parse(&format!("é{}", "x".repeat(300)))
            .unwrap_err()
            .to_string();
        assert!(long.contains("...") && long.len() < 200, "{long}");
    }
}
