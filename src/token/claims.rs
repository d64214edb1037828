//! The token's claims, and the checks made on them after the signature.
//!
//! The rules follow Clerk's `@clerk/backend` where it is strict: `sub` a
//! non-empty string; `exp` required; `exp`, `nbf` and `iat` compared in
//! milliseconds after truncating fractional seconds, with the leeway on the
//! lenient side; `iss` and `azp` matched exactly. jwtgate is stricter in
//! two places: time claims beyond the range of a JavaScript `Date`
//! (±8.64e12 s), which Clerk's JS silently accepts, are refused; and with
//! an audience configured, a token without `aud` (which Clerk lets through)
//! is refused.

use serde::Deserialize;

use crate::token::errors::TokenError;
use crate::token::json::{parse_object, present, Json};

/// Seconds beyond which a time claim is refused (the JS `Date` range).
const MAX_TIME_SECS: f64 = 8.64e12;

/// The names of the claims [`Claims`] reads (for tests and fuzzing: a
/// claim outside this list never changes a decision).
pub const CLAIM_NAMES: [&str; 19] = [
    "sub",
    "aud",
    "sid",
    "exp",
    "nbf",
    "iat",
    "iss",
    "azp",
    "sts",
    "v",
    "o",
    "fea",
    "pla",
    "fva",
    "org_id",
    "org_slug",
    "org_role",
    "org_permissions",
    "act",
];

/// The claims jwtgate reads; any other claim is ignored.
#[derive(Debug, Default, Deserialize)]
pub struct Claims {
    #[serde(default, deserialize_with = "present")]
    pub sub: Option<Json>,
    /// RFC 7519 audience: a string or an array of strings.
    #[serde(default, deserialize_with = "present")]
    pub aud: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    pub sid: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    pub exp: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    pub nbf: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    pub iat: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    pub iss: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    pub azp: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    pub sts: Option<Json>,
    /// Session token version: `2` means org data lives in `o`.
    #[serde(default, deserialize_with = "present")]
    pub v: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    pub o: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    pub fea: Option<Json>,
    /// Plans (v2), read by per-location rules only.
    #[serde(default, deserialize_with = "present")]
    pub pla: Option<Json>,
    /// Factor verification ages in minutes, read by `reverify` rules only.
    #[serde(default, deserialize_with = "present")]
    pub fva: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    pub org_id: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    pub org_slug: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    pub org_role: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    pub org_permissions: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    pub act: Option<Json>,
}

impl Claims {
    pub fn parse(json: &[u8]) -> Result<Claims, TokenError> {
        parse_object(json)
    }

    /// `exp` in whole seconds, once validated.
    pub fn expiry_secs(&self) -> Option<i64> {
        self.exp.as_ref()?.as_f64().map(|e| e.trunc() as i64)
    }
}

/// What the claims are checked against.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Validation {
    /// Exact `iss` when set.
    pub issuer: Option<String>,
    /// When non-empty, `azp` must be present and one of these.
    pub authorized_parties: Vec<String>,
    /// When non-empty, `aud` must be present and name one of these (a
    /// string equal to one, or an array of strings holding one).
    pub audience: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in milliseconds.
    pub leeway_ms: i64,
    /// Accept `sts: "pending"` sessions (Clerk treats them as signed out).
    pub allow_pending: bool,
}

impl Validation {
    /// Checks the claims of a token whose signature already verified.
    /// `now_ms` is the Unix time in milliseconds.
    pub fn validate(&self, claims: &Claims, now_ms: i64) -> Result<(), TokenError> {
        match &claims.sub {
            Some(Json::String(s)) if !s.is_empty() => {}
            _ => return Err(TokenError::InvalidSubject),
        }
        self.check_audience(claims)?;
        self.check_authorized_party(claims)?;
        self.check_issuer(claims)?;
        let leeway = self.leeway_ms as f64;
        let now = now_ms as f64;
        let exp =
            time_claim(&claims.exp, TokenError::InvalidExpiry)?.ok_or(TokenError::InvalidExpiry)?;
        if exp <= now - leeway {
            return Err(TokenError::Expired);
        }
        if let Some(nbf) = time_claim(&claims.nbf, TokenError::InvalidNotBefore)? {
            if nbf > now + leeway {
                return Err(TokenError::NotActiveYet);
            }
        }
        if let Some(iat) = time_claim(&claims.iat, TokenError::InvalidIssuedAt)? {
            if iat > now + leeway {
                return Err(TokenError::IssuedInTheFuture);
            }
        }
        if !self.allow_pending && claims.sts.as_ref().and_then(Json::as_str) == Some("pending") {
            return Err(TokenError::SessionPending);
        }
        Ok(())
    }

    /// RFC 7519 4.1.3: the token must name one of the configured audiences.
    /// An array must hold strings only; a missing `aud` is refused.
    fn check_audience(&self, claims: &Claims) -> Result<(), TokenError> {
        if self.audience.is_empty() {
            return Ok(());
        }
        let wanted = |aud: &str| self.audience.iter().any(|a| a == aud);
        let ok = match &claims.aud {
            Some(Json::String(aud)) => wanted(aud),
            Some(Json::Array(items)) => {
                items.iter().all(|i| matches!(i, Json::String(_)))
                    && items.iter().filter_map(Json::as_str).any(wanted)
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(TokenError::InvalidAudience)
        }
    }

    fn check_authorized_party(&self, claims: &Claims) -> Result<(), TokenError> {
        if self.authorized_parties.is_empty() {
            return Ok(());
        }
        match &claims.azp {
            Some(Json::String(azp)) if self.authorized_parties.iter().any(|p| p == azp) => Ok(()),
            _ => Err(TokenError::InvalidAuthorizedParty),
        }
    }

    fn check_issuer(&self, claims: &Claims) -> Result<(), TokenError> {
        let Some(want) = &self.issuer else {
            return Ok(());
        };
        match &claims.iss {
            Some(Json::String(iss)) if iss == want => Ok(()),
            _ => Err(TokenError::InvalidIssuer),
        }
    }
}

/// A NumericDate as milliseconds, seconds truncated toward zero as a JS
/// `Date` does. `Ok(None)` when absent; `invalid` when present but not a
/// finite number within the JS `Date` range.
fn time_claim(value: &Option<Json>, invalid: TokenError) -> Result<Option<f64>, TokenError> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.as_f64() {
        Some(secs) if secs.is_finite() && secs.abs() <= MAX_TIME_SECS => {
            Ok(Some(secs.trunc() * 1000.0))
        }
        _ => Err(invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use serde_json::Value;
    use TokenError::*;

    const NOW: i64 = 1_700_000_000_000;

    fn claims(v: Value) -> Claims {
        Claims::parse(v.to_string().as_bytes()).unwrap()
    }

    fn check(validation: &Validation, v: Value) -> Result<(), TokenError> {
        validation.validate(&claims(v), NOW)
    }

    fn base() -> Value {
        json!({"sub": "user_1", "sid": "sess_1", "exp": NOW / 1000 + 60, "iat": NOW / 1000 - 10,
               "nbf": NOW / 1000 - 10, "iss": "https://clerk.example.com", "azp": "https://app.example.com"})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = base();
        if value == json!("<absent>") {
            v.as_object_mut().unwrap().remove(key);
        } else {
            v[key] = value;
        }
        v
    }

    fn strict() -> Validation {
        Validation {
            issuer: Some("https://clerk.example.com".into()),
            authorized_parties: vec!["https://app.example.com".into()],
            audience: vec![],
            leeway_ms: 5000,
            allow_pending: false,
        }
    }

    #[test]
    fn a_good_token_passes() {
        assert_eq!(check(&strict(), base()), Ok(()));
        assert_eq!(
            check(
                &Validation::default(),
                json!({"sub": "u", "exp": NOW / 1000 + 1})
            ),
            Ok(())
        );
    }

    #[test]
    fn subject_must_be_a_non_empty_string() {
        for bad in [
            json!("<absent>"),
            json!(""),
            json!(null),
            json!(7),
            json!(["u"]),
        ] {
            assert_eq!(
                check(&strict(), with("sub", bad.clone())),
                Err(InvalidSubject),
                "{bad}"
            );
        }
    }

    #[test]
    fn exp_boundaries_follow_clerk_with_leeway() {
        let v = strict();
        let s = NOW / 1000;
        // expired when exp*1000 <= now - leeway
        assert_eq!(check(&v, with("exp", json!(s - 5))), Err(Expired));
        assert_eq!(check(&v, with("exp", json!(s - 4))), Ok(()));
        assert_eq!(
            check(&v, with("exp", json!(s as f64 - 4.1))),
            Err(Expired),
            "fraction truncates"
        );
        assert_eq!(check(&v, with("exp", json!(s as f64 - 3.1))), Ok(()));
        assert_eq!(check(&v, with("exp", json!(-1))), Err(Expired));
        for bad in [
            json!("<absent>"),
            json!(null),
            json!("123"),
            json!(1e13),
            json!(true),
        ] {
            assert_eq!(
                check(&v, with("exp", bad.clone())),
                Err(InvalidExpiry),
                "{bad}"
            );
        }
    }

    #[test]
    fn nbf_and_iat_boundaries() {
        let v = strict();
        let s = NOW / 1000;
        assert_eq!(
            check(&v, with("nbf", json!(s + 5))),
            Ok(()),
            "nbf == now + leeway passes"
        );
        assert_eq!(check(&v, with("nbf", json!(s + 6))), Err(NotActiveYet));
        assert_eq!(check(&v, with("nbf", json!(null))), Err(InvalidNotBefore));
        assert_eq!(check(&v, with("nbf", json!("<absent>"))), Ok(()));
        assert_eq!(check(&v, with("iat", json!(s + 5))), Ok(()));
        assert_eq!(check(&v, with("iat", json!(s + 6))), Err(IssuedInTheFuture));
        assert_eq!(check(&v, with("iat", json!("1"))), Err(InvalidIssuedAt));
        let no_leeway = Validation {
            leeway_ms: 0,
            ..strict()
        };
        assert_eq!(check(&no_leeway, with("exp", json!(s))), Err(Expired));
        assert_eq!(
            check(&no_leeway, with("nbf", json!(s + 1))),
            Err(NotActiveYet)
        );
    }

    #[test]
    fn issuer_and_azp_match_exactly() {
        let v = strict();
        for bad in [
            "https://clerk.example.com/",
            "HTTPS://clerk.example.com",
            "https://clerk.example.co",
        ] {
            assert_eq!(
                check(&v, with("iss", json!(bad))),
                Err(InvalidIssuer),
                "{bad}"
            );
        }
        assert_eq!(
            check(&v, with("iss", json!("<absent>"))),
            Err(InvalidIssuer)
        );
        assert_eq!(
            check(&v, with("azp", json!("<absent>"))),
            Err(InvalidAuthorizedParty)
        );
        assert_eq!(
            check(&v, with("azp", json!(""))),
            Err(InvalidAuthorizedParty)
        );
        assert_eq!(
            check(&v, with("azp", json!("https://app.example.com.evil"))),
            Err(InvalidAuthorizedParty)
        );
        let open = Validation {
            authorized_parties: vec![],
            issuer: None,
            ..strict()
        };
        assert_eq!(check(&open, with("azp", json!("<absent>"))), Ok(()));
        assert_eq!(check(&open, with("iss", json!("https://other"))), Ok(()));
    }

    #[test]
    fn audience_is_a_string_or_an_array_that_names_a_configured_one() {
        let v = Validation {
            audience: vec!["api://orders".into(), "https://app.example.com".into()],
            ..strict()
        };
        for good in [
            json!("api://orders"),
            json!("https://app.example.com"),
            json!(["other", "api://orders"]),
            json!(["https://app.example.com"]),
        ] {
            assert_eq!(check(&v, with("aud", good.clone())), Ok(()), "{good}");
        }
        for bad in [
            json!("<absent>"),
            json!("api://other"),
            json!("API://ORDERS"),
            json!("api://orders/"),
            json!([]),
            json!(["other"]),
            json!(["api://orders", 7]),
            json!([["api://orders"]]),
            json!(null),
            json!(7),
            json!({"aud": "api://orders"}),
            json!(""),
        ] {
            assert_eq!(
                check(&v, with("aud", bad.clone())),
                Err(InvalidAudience),
                "{bad}"
            );
        }
        // Without a configured audience, aud is not looked at.
        for any in [json!("x"), json!(7), json!("<absent>")] {
            assert_eq!(check(&strict(), with("aud", any.clone())), Ok(()), "{any}");
        }
        // The subject is checked first, as in Clerk.
        assert_eq!(check(&v, with("sub", json!(""))), Err(InvalidSubject));
    }

    #[test]
    fn pending_sessions_are_signed_out_unless_allowed() {
        assert_eq!(
            check(&strict(), with("sts", json!("pending"))),
            Err(SessionPending)
        );
        assert_eq!(check(&strict(), with("sts", json!("active"))), Ok(()));
        let allow = Validation {
            allow_pending: true,
            ..strict()
        };
        assert_eq!(check(&allow, with("sts", json!("pending"))), Ok(()));
    }

    #[test]
    fn claim_names_are_the_fields_read() {
        let all: serde_json::Map<String, Value> = CLAIM_NAMES
            .iter()
            .map(|n| (n.to_string(), json!(null)))
            .collect();
        let c = Claims::parse(Value::Object(all).to_string().as_bytes()).unwrap();
        let read = [
            &c.sub,
            &c.aud,
            &c.sid,
            &c.exp,
            &c.nbf,
            &c.iat,
            &c.iss,
            &c.azp,
            &c.sts,
            &c.v,
            &c.o,
            &c.fea,
            &c.pla,
            &c.fva,
            &c.org_id,
            &c.org_slug,
            &c.org_role,
            &c.org_permissions,
            &c.act,
        ];
        assert!(
            read.iter().all(|f| f.is_some()),
            "every listed name is a field"
        );
        assert_eq!(read.len(), CLAIM_NAMES.len());
    }

    #[test]
    fn duplicate_claims_are_malformed() {
        let json = br#"{"sub":"a","sub":"b","exp":1}"#;
        assert_eq!(Claims::parse(json).unwrap_err(), Malformed);
    }
}
