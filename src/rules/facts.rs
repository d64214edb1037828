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
//! Building facts allocates twice (one buffer of strings, one table of
//! spans; 72 bytes inline plus about the claims' size on the heap);
//! evaluating them ([`super::evaluate`]) never allocates, so they belong in
//! the verified-token cache entry. [`Facts::from_claims`] reuses the
//! verifier's parsed [`Claims`] and costs about a third of a `Claims`
//! parse; [`Facts::from_payload`] parses the payload again.

use serde::Deserialize;

use crate::token::claims::Claims;
use crate::token::json::{parse_object, present, Json};
use crate::token::scopes::{
    for_each_org_permission, is_org_scope, is_scoped_list, is_user_scope, scoped_entries,
};

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

/// What `has()` reads from one verified token, compact for the cache:
/// flags, and a table of spans into a text the caller keeps (the cached
/// grant's), so that a string the text already holds (a permission inside
/// the `X-Org-Permissions` value, the role inside `org:admin`) is not
/// stored twice. One allocation (the table), none without entries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FactTable {
    /// Every requirement fails (see the module docs).
    broken: bool,
    /// An active organization (the auth object's `orgId` truthy).
    org: bool,
    /// The org role with its leading `org:` prefixes removed
    /// (`prefixWithOrg` on both sides compares exactly this); only with an
    /// org, and `None` when empty or absent.
    role: Option<Span>,
    /// `fva`: minutes since the first and the second factor, `-1` for none.
    fva: Option<(f64, f64)>,
    items: Box<[Item]>,
}

/// Facts to check requirements against: a [`FactTable`] with its text,
/// and the name of the issuer that vouched for the token (what an
/// `issuer=` rule compares). Borrowed, so checking allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    table: &'a FactTable,
    text: &'a str,
    issuer: Option<&'a str>,
}

/// A [`FactTable`] with a text of its own: for tests, fuzzing and
/// one-off checks, where sharing the text does not matter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OwnedFacts {
    table: FactTable,
    text: String,
    issuer: Option<String>,
}

/// Where a string lies in the text (16 bits: the identity's values, at
/// most [`MAX_FACTS_BYTES`] of facts and the mapped headers all fit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u16,
    end: u16,
}

/// What an entry of [`Facts`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// An org permission string, compared whole (`org:<feature>:<name>`;
    /// only with an org).
    Permission,
    /// An org-scoped (`o`, `ou`, `uo`) entry of `fea`.
    OrgFeature,
    /// A user-scoped (`u`, `ou`, `uo`) entry of `fea`.
    UserFeature,
    /// An org-scoped entry of `pla`.
    OrgPlan,
    /// A user-scoped entry of `pla`.
    UserPlan,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Item {
    kind: Kind,
    span: Span,
}

/// Most bytes of strings in one [`FactTable`]; beyond, the facts are
/// broken. (A v2 token's bit masks can name far more permissions than the
/// token is long; real ones stay under 1 KiB, the identity header's limit.)
pub const MAX_FACTS_BYTES: usize = 16 * 1024;
/// Most entries in one [`FactTable`]; beyond, the facts are broken.
pub const MAX_FACTS_ENTRIES: usize = 2048;

/// Builds a [`FactTable`] and appends its new strings to the text,
/// within the limits.
struct Builder<'t> {
    text: &'t mut String,
    /// A string found in `text[..shared]` is pointed at, not copied.
    shared: usize,
    /// Bytes of strings the facts hold, shared or not (the limit's measure).
    bytes: usize,
    items: Vec<Item>,
}

impl Builder<'_> {
    fn push(&mut self, kind: Kind, parts: &[&str]) -> Result<(), Broken> {
        if self.items.len() == MAX_FACTS_ENTRIES {
            return Err(Broken);
        }
        let span = self.append(parts)?;
        self.items.push(Item { kind, span });
        Ok(())
    }

    fn append(&mut self, parts: &[&str]) -> Result<Span, Broken> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.bytes += len;
        if self.bytes > MAX_FACTS_BYTES {
            return Err(Broken);
        }
        let start = self.text.len();
        for part in parts {
            self.text.push_str(part);
        }
        let (new, old) = (&self.text[start..], &self.text[..self.shared]);
        let start = match old.find(new) {
            Some(found) => {
                self.text.truncate(start);
                found
            }
            None => start,
        };
        let span = |at: usize| u16::try_from(at).map_err(|_| Broken);
        Ok(Span {
            start: span(start)?,
            end: span(start + len)?,
        })
    }
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

/// The claims facts are made of, borrowed from wherever they were parsed.
#[derive(Clone, Copy, Default)]
struct Sources<'a> {
    v: Option<&'a Json>,
    o: Option<&'a Json>,
    fea: Option<&'a Json>,
    pla: Option<&'a Json>,
    fva: Option<&'a Json>,
    org_id: Option<&'a Json>,
    org_role: Option<&'a Json>,
    org_permissions: Option<&'a Json>,
}

/// A claim's type is not what the SDK reads: the facts are broken.
struct Broken;

impl FactTable {
    /// The facts of claims the verifier parsed. Their strings are appended
    /// to `text` unless `text[..shared]` already holds them (the cache
    /// shares the identity's values this way); spans point into `text`.
    /// Never fails: facts it cannot read are broken, and so is a `text`
    /// longer than 64 KiB.
    pub fn from_claims(claims: &Claims, text: &mut String, shared: usize) -> FactTable {
        let sources = Sources {
            v: claims.v.as_ref(),
            o: claims.o.as_ref(),
            fea: claims.fea.as_ref(),
            pla: claims.pla.as_ref(),
            fva: claims.fva.as_ref(),
            org_id: claims.org_id.as_ref(),
            org_role: claims.org_role.as_ref(),
            org_permissions: claims.org_permissions.as_ref(),
        };
        FactTable::from_sources(sources, text, shared)
    }

    /// The same from the payload JSON (parsed again; for tests and fuzzing,
    /// where no [`Claims`] are at hand).
    pub fn from_payload(payload: &[u8], text: &mut String, shared: usize) -> FactTable {
        match parse_object::<Payload>(payload) {
            Ok(p) => {
                let sources = Sources {
                    v: p.v.as_ref(),
                    o: p.o.as_ref(),
                    fea: p.fea.as_ref(),
                    pla: p.pla.as_ref(),
                    fva: p.fva.as_ref(),
                    org_id: p.org_id.as_ref(),
                    org_role: p.org_role.as_ref(),
                    org_permissions: p.org_permissions.as_ref(),
                };
                FactTable::from_sources(sources, text, shared)
            }
            Err(_) => FactTable::broken(),
        }
    }

    fn from_sources(sources: Sources<'_>, text: &mut String, shared: usize) -> FactTable {
        let length = text.len();
        let mut b = Builder {
            text: &mut *text,
            shared: shared.min(length),
            bytes: 0,
            items: Vec::new(),
        };
        match FactTable::from_parsed(&sources, &mut b) {
            Ok(table) => table,
            Err(Broken) => {
                text.truncate(length);
                FactTable::broken()
            }
        }
    }

    /// Facts on which every requirement fails.
    pub fn broken() -> FactTable {
        FactTable {
            broken: true,
            ..FactTable::default()
        }
    }

    /// Whether every requirement fails on these facts.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Bytes of heap this table holds (for cache sizing).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.items)
    }

    fn from_parsed(p: &Sources<'_>, b: &mut Builder<'_>) -> Result<FactTable, Broken> {
        let fea = string_or_other(p.fea);
        let pla = string_or_other(p.pla);
        let is_v2 = matches!(p.v, Some(Json::Number(n)) if *n == 2.0);
        let (org, role) = if is_v2 { org_v2(p, b)? } else { org_v1(p, b)? };
        push_scoped(b, fea, Kind::OrgFeature, Kind::UserFeature)?;
        push_scoped(b, pla, Kind::OrgPlan, Kind::UserPlan)?;
        Ok(FactTable {
            broken: false,
            org,
            role,
            fva: fva(p.fva),
            items: std::mem::take(&mut b.items).into_boxed_slice(),
        })
    }
}

impl<'a> Facts<'a> {
    /// `table` with the text its spans point into, for a token `issuer`
    /// (the issuer's name) vouched for.
    pub fn new(table: &'a FactTable, text: &'a str, issuer: Option<&'a str>) -> Facts<'a> {
        Facts {
            table,
            text,
            issuer,
        }
    }

    /// Whether every requirement fails on these facts.
    pub fn is_broken(&self) -> bool {
        self.table.broken
    }

    /// An active organization.
    pub(super) fn has_org(&self) -> bool {
        self.table.org
    }

    /// The org role without `org:` prefixes.
    pub(super) fn role(&self) -> Option<&'a str> {
        self.table.role.map(|span| self.str(span))
    }

    pub(super) fn fva(&self) -> Option<(f64, f64)> {
        self.table.fva
    }

    /// The name of the issuer that vouched for the token, if the gate said.
    pub(super) fn issuer(&self) -> Option<&'a str> {
        self.issuer
    }

    /// The entries of one kind, in claim order.
    pub(super) fn entries(&self, kind: Kind) -> impl Iterator<Item = &'a str> + 'a {
        let text = self.text;
        self.table
            .items
            .iter()
            .filter(move |item| item.kind == kind)
            .map(move |item| span_str(text, item.span))
    }

    fn str(&self, span: Span) -> &'a str {
        span_str(self.text, span)
    }
}

fn span_str(text: &str, span: Span) -> &str {
    text.get(span.start as usize..span.end as usize)
        .unwrap_or_default()
}

impl OwnedFacts {
    /// The facts of a payload (the JSON claims). Never fails: an
    /// unreadable payload gives broken facts.
    pub fn from_payload(payload: &[u8]) -> OwnedFacts {
        OwnedFacts::build(|text| FactTable::from_payload(payload, text, 0))
    }

    /// The same from claims the verifier already parsed.
    pub fn from_claims(claims: &Claims) -> OwnedFacts {
        OwnedFacts::build(|text| FactTable::from_claims(claims, text, 0))
    }

    fn build(table_into: impl FnOnce(&mut String) -> FactTable) -> OwnedFacts {
        let mut text = String::new();
        let table = table_into(&mut text);
        OwnedFacts {
            table,
            text,
            issuer: None,
        }
    }

    /// Facts on which every requirement fails.
    pub fn broken() -> OwnedFacts {
        OwnedFacts {
            table: FactTable::broken(),
            ..OwnedFacts::default()
        }
    }

    /// These facts, for a token the issuer named `name` vouched for.
    pub fn with_issuer(mut self, name: &str) -> OwnedFacts {
        self.issuer = Some(name.to_string());
        self
    }

    /// The facts to check requirements against.
    pub fn facts(&self) -> Facts<'_> {
        Facts::new(&self.table, &self.text, self.issuer.as_deref())
    }

    /// Whether every requirement fails on these facts.
    pub fn is_broken(&self) -> bool {
        self.table.broken
    }
}

fn string(value: Option<&Json>) -> Result<Option<&str>, Broken> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(_) => Err(Broken),
    }
}

/// `fea`/`pla` as `has()` reads them (`claims.fea || ''`, then "not a
/// non-empty string: fail"): the string, else "" (no entries).
fn string_or_other(value: Option<&Json>) -> &str {
    match value {
        Some(Json::String(s)) => s,
        _ => "",
    }
}

/// v1: `org_id`, `org_role`, `org_permissions` as they are. Returns
/// whether there is an org, and the role.
fn org_v1(p: &Sources<'_>, b: &mut Builder) -> Result<(bool, Option<Span>), Broken> {
    let id = string(p.org_id)?;
    let role = string(p.org_role)?;
    let permissions: &[Json] = match p.org_permissions {
        None | Some(Json::Null) => &[],
        Some(Json::Array(items)) => items,
        Some(_) => return Err(Broken),
    };
    if permissions.iter().any(|item| item.as_str().is_none()) {
        return Err(Broken);
    }
    if id.is_none_or(str::is_empty) {
        return Ok((false, None));
    }
    for permission in permissions.iter().filter_map(Json::as_str) {
        b.push(Kind::Permission, &[permission])?;
    }
    let role = match role.filter(|r| !r.is_empty()) {
        Some(r) => Some(b.append(&[strip_org_prefixes(r)])?),
        None => None,
    };
    Ok((true, role))
}

/// v2: only when `o` is present; the role is `"org:" + o.rol` when `rol`
/// is non-empty; permissions from `o.per`/`o.fpm` and the org features.
fn org_v2(p: &Sources<'_>, b: &mut Builder) -> Result<(bool, Option<Span>), Broken> {
    let o = match p.o {
        None | Some(Json::Null) => return Ok((false, None)),
        Some(o @ Json::Object(_)) => o,
        Some(_) => return Err(Broken),
    };
    let id = string(o.get("id"))?;
    let rol = string(o.get("rol"))?;
    let per = string(o.get("per"))?;
    let fpm = string(o.get("fpm"))?;
    // The SDK splits `fea` here whether or not `o.id` is set, and throws
    // on a malformed list.
    let fea = string(p.fea)?.unwrap_or("");
    if !is_scoped_list(fea) {
        return Err(Broken);
    }
    if id.is_none_or(str::is_empty) {
        return Ok((false, None));
    }
    if let (Some(per), Some(fpm)) = (per, fpm) {
        push_permissions(b, fea, per, fpm)?;
    }
    let role = match rol.filter(|r| !r.is_empty()) {
        Some(r) => Some(b.append(&[strip_org_prefixes(r)])?),
        None => None,
    };
    Ok((true, role))
}

fn strip_org_prefixes(mut role: &str) -> &str {
    while let Some(rest) = role.strip_prefix("org:") {
        role = rest;
    }
    role
}

/// Features or plans by scope. A list the SDK cannot split gives no
/// entries (its `has()` catches the throw and answers false).
fn push_scoped(b: &mut Builder, text: &str, org: Kind, user: Kind) -> Result<(), Broken> {
    if !is_scoped_list(text) {
        return Ok(());
    }
    for (scope, value) in scoped_entries(text) {
        if is_org_scope(scope) {
            b.push(org, &[value])?;
        }
        if is_user_scope(scope) {
            b.push(user, &[value])?;
        }
    }
    Ok(())
}

/// The org permissions of v2 claims, as `org:<feature>:<name>`.
fn push_permissions(b: &mut Builder, fea: &str, per: &str, fpm: &str) -> Result<(), Broken> {
    for_each_org_permission(fea, per, fpm, |feature, name| {
        b.push(Kind::Permission, &["org:", feature, ":", name])
    })
}

/// `fva` when `checkReverificationAuthorization` accepts its shape.
fn fva(claim: Option<&Json>) -> Option<(f64, f64)> {
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

    fn facts(v: Value) -> OwnedFacts {
        OwnedFacts::from_payload(v.to_string().as_bytes())
    }

    fn all(f: &OwnedFacts, kind: Kind) -> Vec<&str> {
        f.facts().entries(kind).collect()
    }

    #[test]
    fn v1_org_claims_are_read_as_they_are() {
        let f = facts(
            json!({"sub": "u", "org_id": "org_1", "org_role": "org:admin",
                              "org_permissions": ["org:a:read", "b:write"]}),
        );
        assert!(f.facts().has_org());
        assert_eq!(f.facts().role(), Some("admin"));
        assert_eq!(all(&f, Kind::Permission), ["org:a:read", "b:write"]);
        // No org id, or an empty one: no org at all.
        for v in [
            json!({"org_role": "org:admin", "org_permissions": ["org:a:b"]}),
            json!({"org_id": "", "org_role": "org:admin"}),
        ] {
            let f = facts(v);
            assert!(!f.facts().has_org() && f.facts().role().is_none());
            assert_eq!(all(&f, Kind::Permission), Vec::<&str>::new());
        }
        // An unprefixed or doubly prefixed role is the same role.
        let role = |r: &str| {
            facts(json!({"org_id": "o", "org_role": r}))
                .facts()
                .role()
                .map(str::to_string)
        };
        assert_eq!(role("admin").as_deref(), Some("admin"));
        assert_eq!(role("org:org:admin").as_deref(), Some("admin"));
        assert_eq!(role("org:").as_deref(), Some(""));
        assert_eq!(role(""), None);
    }

    #[test]
    fn v2_permissions_decode_as_the_sdk_does() {
        let f = facts(json!({"v": 2, "fea": "o:dashboard,u:billing,o:teams",
            "o": {"id": "org_1", "rol": "admin", "per": "manage,read", "fpm": "3,2"}}));
        assert!(f.facts().has_org());
        assert_eq!(f.facts().role(), Some("admin"));
        // The mask index counts org-scoped features only.
        assert_eq!(
            all(&f, Kind::Permission),
            [
                "org:dashboard:manage",
                "org:dashboard:read",
                "org:teams:read"
            ]
        );
        assert_eq!(all(&f, Kind::OrgFeature), ["dashboard", "teams"]);
        assert_eq!(all(&f, Kind::UserFeature), ["billing"]);
        assert!(
            (f.table.heap_bytes() + f.text.len()) < 200,
            "{}",
            (f.table.heap_bytes() + f.text.len())
        );
    }

    #[test]
    fn v2_masks_are_read_like_the_sdk() {
        let perms = |fea: &str, per: &str, fpm: &str| {
            let f = facts(json!({"v": 2, "fea": fea, "o": {"id": "o", "per": per, "fpm": fpm}}));
            all(&f, Kind::Permission).join(" ")
        };
        // Trimmed entries, empty names kept in place, "ou" counts as org.
        assert_eq!(
            perms(" o:a , ou:b", "x, ,y", " 7,5"),
            "org:a:x org:a: org:a:y org:b:x org:b:y"
        );
        // Not all digits: nothing for that feature; fewer masks than features.
        assert_eq!(perms("o:a,o:b,o:c", "x", "+1,1"), "org:b:x");
        assert_eq!(perms("o:a,o:b", "x", "1"), "org:a:x");
        // Bits beyond `per` are ignored; huge masks are exact.
        assert_eq!(perms("o:a", "x,y", "6"), "org:a:y");
        let two_pow_200_plus_1 = "1606938044258990275541962092341162602522202993782792835301377";
        assert_eq!(perms("o:a", "x,y", two_pow_200_plus_1), "org:a:x");
        let names = |n: usize| {
            (0..n)
                .map(|i| format!("p{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        // 2^127 + 2^64 + 1 with 128 names; 2^129 + 2^64 + 1 with 130.
        let mask = "170141183460469231750134047789593657345";
        assert_eq!(
            perms("o:a", &names(128), mask),
            "org:a:p0 org:a:p64 org:a:p127"
        );
        let mask = "680564733841876926945195958937245974529";
        assert_eq!(
            perms("o:a", &names(130), mask),
            "org:a:p0 org:a:p64 org:a:p129"
        );
        // Scopes other than o/u/ou/uo are skipped, not counted.
        assert_eq!(perms("org:a,o:b", "x", "1,1"), "org:b:x");
        assert_eq!(perms("o:a", "", "1"), "");
        assert_eq!(perms("", "x", "1"), "");
    }

    #[test]
    fn facts_are_bounded() {
        // 300 features x 70 names, every bit set: 21000 permissions.
        let fea: Vec<String> = (0..300).map(|i| format!("o:f{i}")).collect();
        let names: Vec<String> = (0..70).map(|i| format!("p{i}")).collect();
        let all_bits = "1180591620717411303423"; // 2^70 - 1
        let masks = vec![all_bits; 300].join(",");
        let f = facts(json!({"v": 2, "fea": fea.join(","),
                             "o": {"id": "o", "per": names.join(","), "fpm": masks}}));
        assert!(f.is_broken());
        // Within the limits: all there.
        let f = facts(json!({"v": 2, "fea": fea[..20].join(","),
                             "o": {"id": "o", "per": names.join(","), "fpm": masks}}));
        assert!(!f.is_broken());
        assert_eq!(f.facts().entries(Kind::Permission).count(), 20 * 70);
        let many: Vec<String> = (0..MAX_FACTS_ENTRIES + 1)
            .map(|i| format!("u:{i}"))
            .collect();
        assert!(facts(json!({ "pla": many.join(",") })).is_broken());
        let long = format!("u:{}", "x".repeat(MAX_FACTS_BYTES + 1));
        assert!(facts(json!({ "fea": long })).is_broken());
    }

    #[test]
    fn strings_the_text_holds_are_shared_not_copied() {
        let parse = |v: Value| Claims::parse(v.to_string().as_bytes()).unwrap();
        let claims = parse(json!({"org_id": "o", "org_role": "org:admin",
                                  "org_permissions": ["org:a:read"], "fea": "u:x,o:a"}));
        let mut text = String::from("org:adminorg:a:read");
        let table = FactTable::from_claims(&claims, &mut text, 19);
        assert_eq!(text, "org:adminorg:a:readx", "only the feature x is new");
        let f = Facts::new(&table, &text, None);
        assert_eq!(f.role(), Some("admin"));
        assert_eq!(
            f.entries(Kind::Permission).collect::<Vec<_>>(),
            ["org:a:read"]
        );
        assert_eq!(f.entries(Kind::UserFeature).collect::<Vec<_>>(), ["x"]);
        assert_eq!(f.entries(Kind::OrgFeature).collect::<Vec<_>>(), ["a"]);
        // Beyond `shared`, nothing is reused; broken facts add nothing.
        let mut text = String::from("org:a:read");
        let table = FactTable::from_claims(&claims, &mut text, 0);
        assert_eq!(text, "org:a:readorg:a:readadminxa");
        assert!(!table.is_broken());
        let mut text = String::from("kept");
        let broken = parse(json!({"v": 2, "o": {"id": "o", "rol": "admin"}, "fea": "o:a,bad"}));
        assert!(FactTable::from_claims(&broken, &mut text, 4).is_broken());
        assert_eq!(text, "kept");
    }

    #[test]
    fn js_trim_is_not_rust_trim() {
        let f = facts(json!({"fea": "\u{85}o:a,\u{feff}o:b"}));
        assert_eq!(all(&f, Kind::OrgFeature), ["b"]);
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
            json!({"fea": "o:a,nocolon", "org_id": "o", "org_role": "admin"}),
        ] {
            let f = facts(v);
            assert!(!f.is_broken());
            assert_eq!(all(&f, Kind::OrgFeature), Vec::<&str>::new());
        }
        assert_eq!(
            all(&facts(json!({"pla": "u:free,"})), Kind::UserPlan),
            Vec::<&str>::new()
        );
        assert_eq!(
            all(&facts(json!({"pla": "u:free"})), Kind::UserPlan),
            ["free"]
        );
        assert_eq!(
            all(&facts(json!({"pla": "uo:team"})), Kind::OrgPlan),
            ["team"]
        );
        assert_eq!(
            all(&facts(json!({"fea": 5})), Kind::OrgFeature),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn fva_needs_two_valid_ages() {
        let fva_of = |v: Value| facts(json!({ "fva": v })).facts().fva();
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
        assert_eq!(facts(json!({})).facts().fva(), None);
    }

    #[test]
    fn from_claims_equals_from_payload() {
        let payloads = [
            json!({"sub": "u"}),
            json!({"sub": "u", "org_id": "org_1", "org_role": "org:admin",
                   "org_permissions": ["org:a:read"], "fea": "o:a,u:b", "pla": "u:free", "fva": [1, -1]}),
            json!({"sub": "u", "v": 2, "fea": "o:dashboard,u:billing,o:teams", "pla": "o:pro",
                   "o": {"id": "org_1", "rol": "admin", "per": "manage,read", "fpm": "3,2"}, "fva": [5, 5]}),
            json!({"sub": "u", "v": 2, "fea": "o:a,bad", "o": {"id": "o"}}),
            json!({"sub": "u", "org_id": 5}),
            json!({"sub": "u", "fva": null, "pla": 7, "fea": ""}),
        ];
        for payload in payloads {
            let bytes = payload.to_string();
            let claims = Claims::parse(bytes.as_bytes()).unwrap();
            assert_eq!(
                OwnedFacts::from_claims(&claims),
                OwnedFacts::from_payload(bytes.as_bytes()),
                "{payload}"
            );
        }
    }

    #[test]
    fn unexpected_types_break_the_facts() {
        for v in [
            json!({"org_id": 5}),
            json!({"org_id": "o", "org_role": ["a"]}),
            json!({"org_id": "o", "org_permissions": "org:a:b"}),
            json!({"org_id": "o", "org_permissions": ["org:a:b", 1]}),
            json!({"org_permissions": [1]}),
            json!({"v": 2, "o": "org_1"}),
            json!({"v": 2, "o": {"id": 1}}),
            json!({"v": 2, "o": {"id": "o", "rol": 1}}),
            json!({"v": 2, "o": {"id": "o", "per": ["a"]}}),
            json!({"v": 2, "o": {"id": "o"}, "fea": ["o:a"]}),
        ] {
            assert!(facts(v.clone()).is_broken(), "{v}");
        }
        assert!(OwnedFacts::from_payload(b"not json").is_broken());
        assert!(OwnedFacts::from_payload(br#"{"fva":[1,2],"fva":[1,2]}"#).is_broken());
        // v2 ignores the v1 claims, and v1 ignores `o`.
        assert!(!facts(json!({"v": 2, "org_id": "o"})).facts().has_org());
        assert!(!facts(json!({"o": {"id": "o"}})).facts().has_org());
        assert!(facts(json!({"v": "2", "org_id": "o"})).facts().has_org());
    }
}
