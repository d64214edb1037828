//! What Clerk's `has()` reads from a verified token, worked out once.
//!
//! This follows `@clerk/shared` 4.41.0 (`jwtPayloadParser.ts`, which
//! `@clerk/backend`'s `signedInAuthObject` calls, and `authorization.ts`):
//! - v1 (no `"v": 2`): `org_id`, `org_role`, `org_permissions` as they are.
//! - v2: only when `o` is present: `o.id`, `"org:" + o.rol` when `rol` is
//!   non-empty, and permissions decoded from `o.per` and the decimal bit
//!   masks of `o.fpm`, the i-th mask belonging to the i-th **org-scoped**
//!   feature of `fea` (`splitByScope(fea).org`; entries are trimmed, a
//!   mask that is not all digits grants nothing, bits beyond `per` are
//!   ignored, masks of any length are read exactly).
//! - features and plans: the top-level `fea` and `pla` strings (in v1 too),
//!   split into org-scoped (`o`, `ou`, `uo`) and user-scoped (`u`, `ou`,
//!   `uo`) entries; a list with an entry lacking `:` makes every check on
//!   it fail, as the SDK's `try`/`catch` does.
//! - `fva`: kept only if it is an array of exactly two numbers, each `-1`
//!   or `>= 0`.
//!
//! Where the SDK would throw while building the auth object (a v2 token
//! with `o` and a malformed `fea`) or a claim has a type the SDK does not
//! expect, the facts are *broken* and every requirement fails: jwtgate
//! answers 403 where an app using the SDK would fail the request. (Such
//! tokens are also refused at the identity stage for most type errors.)
//!
//! Building facts allocates; evaluating them ([`super::RuleSet::evaluate`])
//! does not, so they belong in the verified-token cache entry.

use serde::Deserialize;

use crate::json::{parse_object, present, Json};

/// The claims `Facts` reads (nothing else changes an evaluation).
pub const FACT_CLAIMS: [&str; 8] = [
    "v",
    "o",
    "fea",
    "pla",
    "fva",
    "org_id",
    "org_role",
    "org_permissions",
];

/// The authorization data of one verified token.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    /// Every requirement fails (see the module docs).
    pub(super) broken: bool,
    /// Present when the token has an active organization (`orgId` truthy).
    pub(super) org: Option<OrgFacts>,
    /// `fea`, by scope.
    pub(super) features: Scoped,
    /// `pla`, by scope.
    pub(super) plans: Scoped,
    /// `fva`: minutes since the first and the second factor, `-1` for none.
    pub(super) fva: Option<(f64, f64)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct OrgFacts {
    /// The role with its leading `org:` prefixes removed (`prefixWithOrg`
    /// on both sides compares exactly this); `None` when empty or absent.
    pub(super) role: Option<Box<str>>,
    /// The permission strings, compared whole (`org:<feature>:<name>`).
    pub(super) permissions: Box<[Box<str>]>,
}

/// Feature or plan entries by scope.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Scoped {
    pub(super) org: Box<[Box<str>]>,
    pub(super) user: Box<[Box<str>]>,
}

#[derive(Default, Deserialize)]
struct Payload {
    #[serde(default, deserialize_with = "present")]
    v: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    o: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    fea: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    pla: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    fva: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    org_id: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    org_role: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    org_permissions: Option<Json>,
}

/// A claim's type is not what the SDK reads: the facts are broken.
struct Broken;

impl Facts {
    /// The facts of a verified token's payload (the JSON claims). Never
    /// fails: an unreadable payload gives broken facts.
    pub fn from_payload(payload: &[u8]) -> Facts {
        match parse_object::<Payload>(payload) {
            Ok(p) => Facts::from_parsed(&p).unwrap_or_else(|Broken| Facts::broken()),
            Err(_) => Facts::broken(),
        }
    }

    /// Facts on which every requirement fails.
    pub fn broken() -> Facts {
        Facts {
            broken: true,
            ..Facts::default()
        }
    }

    /// Whether every requirement fails on these facts.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn from_parsed(p: &Payload) -> Result<Facts, Broken> {
        let is_v2 = matches!(p.v, Some(Json::Number(n)) if n == 2.0);
        let org = if is_v2 { org_v2(p)? } else { org_v1(p)? };
        Ok(Facts {
            broken: false,
            org,
            features: scoped_claim(&p.fea),
            plans: scoped_claim(&p.pla),
            fva: fva(&p.fva),
        })
    }
}

/// `None`/`null` as absent, a string as itself, anything else broken.
fn string(value: Option<&Json>) -> Result<Option<&str>, Broken> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(_) => Err(Broken),
    }
}

fn org_v1(p: &Payload) -> Result<Option<OrgFacts>, Broken> {
    let id = string(p.org_id.as_ref())?;
    let role = string(p.org_role.as_ref())?;
    let permissions = match &p.org_permissions {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(Box::from).ok_or(Broken))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(Broken),
    };
    if id.is_none_or(str::is_empty) {
        return Ok(None);
    }
    Ok(Some(OrgFacts {
        role: role.filter(|r| !r.is_empty()).map(strip_org_prefixes),
        permissions: permissions.into_boxed_slice(),
    }))
}

fn org_v2(p: &Payload) -> Result<Option<OrgFacts>, Broken> {
    let o = match &p.o {
        None | Some(Json::Null) => return Ok(None),
        Some(o @ Json::Object(_)) => o,
        Some(_) => return Err(Broken),
    };
    let id = string(o.get("id"))?;
    let rol = string(o.get("rol"))?;
    let per = string(o.get("per"))?;
    let fpm = string(o.get("fpm"))?;
    // The SDK splits `fea` here whether or not `o.id` is set, and throws
    // on a malformed list.
    let fea = string(p.fea.as_ref())?.unwrap_or("");
    let (org_features, _) = split_by_scope(fea).ok_or(Broken)?;
    let permissions = decode_permissions(&org_features, per, fpm);
    if id.is_none_or(str::is_empty) {
        return Ok(None);
    }
    Ok(Some(OrgFacts {
        // "org:" + rol, then prefixWithOrg: strip every leading "org:".
        role: rol.filter(|r| !r.is_empty()).map(strip_org_prefixes),
        permissions: permissions.into_boxed_slice(),
    }))
}

fn strip_org_prefixes(mut role: &str) -> Box<str> {
    while let Some(rest) = role.strip_prefix("org:") {
        role = rest;
    }
    role.into()
}

/// `fea`/`pla` as `has()` reads them: a non-empty string split by scope;
/// anything else (absent, empty, another type, a malformed list) gives
/// empty lists, on which every check fails.
fn scoped_claim(claim: &Option<Json>) -> Scoped {
    let Some(Json::String(text)) = claim else {
        return Scoped::default();
    };
    match split_by_scope(text) {
        Some((org, user)) => Scoped {
            org: org.into_iter().map(Box::from).collect(),
            user: user.into_iter().map(Box::from).collect(),
        },
        None => Scoped::default(),
    }
}

/// Clerk's `splitByScope`: `None` where it throws (an entry without `:`).
fn split_by_scope(text: &str) -> Option<(Vec<&str>, Vec<&str>)> {
    let (mut org, mut user) = (Vec::new(), Vec::new());
    if text.is_empty() {
        return Some((org, user));
    }
    for part in text.split(',') {
        let (scope, value) = js_trim(part).split_once(':')?;
        match scope {
            "o" => org.push(value),
            "u" => user.push(value),
            "ou" | "uo" => {
                org.push(value);
                user.push(value);
            }
            _ => {}
        }
    }
    Some((org, user))
}

/// `parsePermissions` + `buildOrgPermissions`: bit j of the i-th mask
/// grants `per[j]` on the i-th org feature.
fn decode_permissions(features: &[&str], per: Option<&str>, fpm: Option<&str>) -> Vec<Box<str>> {
    let (Some(per), Some(fpm)) = (per, fpm) else {
        return Vec::new();
    };
    if per.is_empty() || fpm.is_empty() {
        return Vec::new();
    }
    let names: Vec<&str> = per.split(',').map(js_trim).collect();
    let mut granted = Vec::new();
    for (feature, mask) in features.iter().zip(fpm.split(',').map(js_trim)) {
        let Some(bits) = low_bits(mask, names.len()) else {
            continue;
        };
        for (j, name) in names.iter().enumerate() {
            if bits[j / 64] >> (j % 64) & 1 == 1 {
                granted.push(format!("org:{feature}:{name}").into_boxed_str());
            }
        }
    }
    granted
}

/// The low `n` bits (at least) of a decimal number of any length, as
/// 64-bit limbs, least significant first; `None` unless it is all ASCII
/// digits (the SDK's `/^\d+$/`). Exact: arithmetic modulo 2^(64·limbs).
fn low_bits(decimal: &str, n: usize) -> Option<Vec<u64>> {
    if decimal.is_empty() || !decimal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut limbs = vec![0u64; n.div_ceil(64).max(1)];
    for digit in decimal.bytes().map(|b| u64::from(b - b'0')) {
        let mut carry = digit;
        for limb in limbs.iter_mut() {
            let wide = u128::from(*limb) * 10 + u128::from(carry);
            *limb = wide as u64;
            carry = (wide >> 64) as u64;
        }
    }
    Some(limbs)
}

/// JavaScript's `String.prototype.trim`: WhiteSpace and LineTerminator,
/// which is not Rust's `trim` (JS trims U+FEFF, Rust trims U+0085).
fn js_trim(s: &str) -> &str {
    fn js_space(c: char) -> bool {
        matches!(
            c,
            '\u{9}'..='\u{d}'
                | ' '
                | '\u{a0}'
                | '\u{1680}'
                | '\u{2000}'..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
        )
    }
    s.trim_matches(js_space)
}

/// `fva` when `checkReverificationAuthorization` accepts its shape.
fn fva(claim: &Option<Json>) -> Option<(f64, f64)> {
    let valid = |x: &Json| match x {
        Json::Number(n) if n.is_finite() && (*n == -1.0 || *n >= 0.0) => Some(*n),
        _ => None,
    };
    match claim {
        Some(Json::Array(items)) if items.len() == 2 => {
            Some((valid(&items[0])?, valid(&items[1])?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn facts(v: Value) -> Facts {
        Facts::from_payload(v.to_string().as_bytes())
    }

    fn strs(items: &[Box<str>]) -> Vec<&str> {
        items.iter().map(|s| &**s).collect()
    }

    #[test]
    fn v1_org_claims_are_read_as_they_are() {
        let f = facts(
            json!({"sub": "u", "org_id": "org_1", "org_role": "org:admin",
                              "org_permissions": ["org:a:read", "b:write"]}),
        );
        let org = f.org.unwrap();
        assert_eq!(org.role.as_deref(), Some("admin"));
        assert_eq!(strs(&org.permissions), ["org:a:read", "b:write"]);
        // No org id, or an empty one: no org at all.
        assert_eq!(facts(json!({"org_role": "org:admin"})).org, None);
        assert_eq!(
            facts(json!({"org_id": "", "org_role": "org:admin"})).org,
            None
        );
        // An unprefixed or doubly prefixed role is the same role.
        let role = |r: &str| {
            facts(json!({"org_id": "o", "org_role": r}))
                .org
                .unwrap()
                .role
        };
        assert_eq!(role("admin").as_deref(), Some("admin"));
        assert_eq!(role("org:org:admin").as_deref(), Some("admin"));
        assert_eq!(role(""), None);
    }

    #[test]
    fn v2_permissions_decode_as_the_sdk_does() {
        let f = facts(json!({"v": 2, "fea": "o:dashboard,u:billing,o:teams",
            "o": {"id": "org_1", "rol": "admin", "per": "manage,read", "fpm": "3,2"}}));
        let org = f.org.as_ref().unwrap();
        assert_eq!(org.role.as_deref(), Some("admin"));
        // The mask index counts org-scoped features only.
        assert_eq!(
            strs(&org.permissions),
            [
                "org:dashboard:manage",
                "org:dashboard:read",
                "org:teams:read"
            ]
        );
        assert_eq!(strs(&f.features.org), ["dashboard", "teams"]);
        assert_eq!(strs(&f.features.user), ["billing"]);
    }

    #[test]
    fn v2_masks_are_read_like_the_sdk() {
        let perms = |fea: &str, per: &str, fpm: &str| {
            let f = facts(json!({"v": 2, "fea": fea, "o": {"id": "o", "per": per, "fpm": fpm}}));
            f.org.map(|o| strs(&o.permissions).join(" "))
        };
        // Trimmed entries, empty names kept in place, "ou" counts as org.
        assert_eq!(
            perms(" o:a , ou:b", "x, ,y", " 7,5").unwrap(),
            "org:a:x org:a: org:a:y org:b:x org:b:y"
        );
        // Not all digits: nothing for that feature; fewer masks than features.
        assert_eq!(perms("o:a,o:b,o:c", "x", "+1,1").unwrap(), "org:b:x");
        assert_eq!(perms("o:a,o:b", "x", "1").unwrap(), "org:a:x");
        // Bits beyond `per` are ignored; huge masks are exact.
        assert_eq!(perms("o:a", "x,y", "6").unwrap(), "org:a:y");
        let two_pow_200_plus_1 = "1606938044258990275541962092341162602522202993782792835301377";
        assert_eq!(perms("o:a", "x,y", two_pow_200_plus_1).unwrap(), "org:a:x");
        let many: Vec<String> = (0..130).map(|i| format!("p{i}")).collect();
        // 2^129 + 2^64 + 1
        let mask = "680564733841876926945195958937245974529";
        assert_eq!(
            perms("o:a", &many.join(","), mask).unwrap(),
            "org:a:p0 org:a:p64 org:a:p129"
        );
        // Scopes other than o/u/ou/uo are skipped, not counted.
        assert_eq!(perms("org:a,o:b", "x", "1,1").unwrap(), "org:b:x");
        assert_eq!(perms("o:a", "", "1").unwrap(), "");
        assert_eq!(perms("", "x", "1").unwrap(), "");
    }

    #[test]
    fn js_trim_is_not_rust_trim() {
        assert_eq!(js_trim("\u{feff}\u{a0} a \u{3000}\n"), "a");
        assert_eq!(js_trim("\u{85}a"), "\u{85}a");
        let f = facts(json!({"fea": "\u{85}o:a,\u{feff}o:b"}));
        assert_eq!(strs(&f.features.org), ["b"]);
    }

    #[test]
    fn malformed_feature_lists() {
        // v2 with an org: the SDK throws building the auth object.
        let f = facts(json!({"v": 2, "fea": "o:a,nocolon", "o": {"id": "o", "rol": "admin"}}));
        assert!(f.is_broken());
        assert!(facts(json!({"v": 2, "fea": "o:a,", "o": {"id": "o"}})).is_broken());
        // Without an org, or in v1: only feature checks on that list fail.
        for v in [
            json!({"v": 2, "fea": "o:a,nocolon"}),
            json!({"fea": "o:a,nocolon", "org_id": "o"}),
        ] {
            let f = facts(v);
            assert!(!f.is_broken());
            assert_eq!(f.features, Scoped::default());
        }
        assert_eq!(facts(json!({"pla": "u:free,"})).plans, Scoped::default());
        assert_eq!(strs(&facts(json!({"pla": "u:free"})).plans.user), ["free"]);
        assert_eq!(facts(json!({"fea": 5})).features, Scoped::default());
    }

    #[test]
    fn fva_needs_two_valid_ages() {
        let fva_of = |v: Value| facts(json!({ "fva": v })).fva;
        assert_eq!(fva_of(json!([3, -1])), Some((3.0, -1.0)));
        assert_eq!(fva_of(json!([0.5, 0])), Some((0.5, 0.0)));
        for bad in [
            json!([1]),
            json!([1, 2, 3]),
            json!([-2, 1]),
            json!(["1", 1]),
            json!([null, 1]),
            json!(0),
            json!("1,2"),
            json!(null),
            json!([-0.5, 1]),
        ] {
            assert_eq!(fva_of(bad.clone()), None, "{bad}");
        }
        assert_eq!(facts(json!({})).fva, None);
    }

    #[test]
    fn unexpected_types_break_the_facts() {
        for v in [
            json!({"org_id": 5}),
            json!({"org_id": "o", "org_role": ["a"]}),
            json!({"org_id": "o", "org_permissions": "org:a:b"}),
            json!({"org_id": "o", "org_permissions": ["org:a:b", 1]}),
            json!({"v": 2, "o": "org_1"}),
            json!({"v": 2, "o": {"id": 1}}),
            json!({"v": 2, "o": {"id": "o", "rol": 1}}),
            json!({"v": 2, "o": {"id": "o", "per": ["a"]}}),
            json!({"v": 2, "o": {"id": "o"}, "fea": ["o:a"]}),
        ] {
            assert!(facts(v.clone()).is_broken(), "{v}");
        }
        assert!(Facts::from_payload(b"not json").is_broken());
        assert!(Facts::from_payload(br#"{"fva":[1,2],"fva":[1,2]}"#).is_broken());
        // v2 ignores the v1 claims, and v1 ignores `o`.
        assert_eq!(facts(json!({"v": 2, "org_id": "o"})).org, None);
        assert_eq!(facts(json!({"o": {"id": "o"}})).org, None);
        assert!(facts(json!({"v": "2", "org_id": "o"})).org.is_some());
    }
}
