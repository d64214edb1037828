//! Who the token says the user is, as the headers nginx hands upstream.
//!
//! Clerk has two claim layouts. v1 puts org data at the top level
//! (`org_id`, `org_slug`, `org_role` = `org:admin`, `org_permissions` as an
//! array). v2 (`"v": 2`) nests it in `o` (`id`, `slg`, `rol` without the
//! `org:` prefix) and encodes permissions as bit masks: `o.fpm[i]` is a
//! mask over `o.per` for the i-th org-scoped feature of `fea`. Both become
//! the same headers. A value with a control character is never written into
//! a header (that would be header injection): such a token is refused.

use crate::token::claims::Claims;
use crate::token::errors::TokenError;
use crate::token::json::Json;
use crate::token::scopes::{for_each_org_permission, is_scoped_list};

/// Longest value written into one header, in bytes.
pub const MAX_HEADER_VALUE: usize = 1024;
/// Longest block of identity headers, in bytes; nginx's default
/// `proxy_buffer_size` (4 KiB) must hold it with the status line.
pub const MAX_HEADER_BLOCK: usize = 3072;

/// The identity headers, in the order they are rendered; `X-User-Id` is
/// always there, the others only when the token has a non-empty value.
pub const HEADER_NAMES: [&str; 7] = [
    "X-User-Id",
    "X-Session-Id",
    "X-Org-Id",
    "X-Org-Role",
    "X-Org-Slug",
    "X-Org-Permissions",
    "X-Actor-Id",
];

/// The identity headers of a verified token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub session_id: Option<String>,
    pub org_id: Option<String>,
    pub org_role: Option<String>,
    pub org_slug: Option<String>,
    pub org_permissions: Option<String>,
    pub actor_id: Option<String>,
}

impl Identity {
    /// Maps the claims of a validated token.
    pub fn from_claims(claims: &Claims) -> Result<Identity, TokenError> {
        let user_id = opt_string(&claims.sub)?.ok_or(TokenError::InvalidSubject)?;
        let mut identity = Identity {
            user_id,
            session_id: opt_string(&claims.sid)?,
            actor_id: actor_id(&claims.act)?,
            ..Identity::default()
        };
        let is_v2 = claims.v.as_ref().and_then(Json::as_f64) == Some(2.0);
        if is_v2 {
            identity.set_org_v2(claims)?;
        } else {
            identity.set_org_v1(claims)?;
        }
        Ok(identity)
    }

    fn set_org_v1(&mut self, claims: &Claims) -> Result<(), TokenError> {
        self.org_id = opt_string(&claims.org_id)?;
        self.org_slug = opt_string(&claims.org_slug)?;
        self.org_role = opt_string(&claims.org_role)?;
        self.org_permissions = match &claims.org_permissions {
            None | Some(Json::Null) => None,
            Some(Json::Array(items)) => {
                let perms: Option<Vec<&str>> = items.iter().map(Json::as_str).collect();
                Some(perms.ok_or(TokenError::InvalidClaim)?.join(","))
            }
            Some(_) => return Err(TokenError::InvalidClaim),
        };
        Ok(())
    }

    fn set_org_v2(&mut self, claims: &Claims) -> Result<(), TokenError> {
        let org = match &claims.o {
            None | Some(Json::Null) => return Ok(()),
            Some(org @ Json::Object(_)) => org,
            Some(_) => return Err(TokenError::InvalidClaim),
        };
        self.org_id = opt_string(&org.get("id").cloned())?;
        self.org_slug = opt_string(&org.get("slg").cloned())?;
        self.org_role = opt_string(&org.get("rol").cloned())?
            .filter(|r| !r.is_empty())
            .map(|r| format!("org:{r}"));
        let fea = opt_string(&claims.fea)?;
        let per = opt_string(&org.get("per").cloned())?;
        let fpm = opt_string(&org.get("fpm").cloned())?;
        if let (Some(fea), Some(per), Some(fpm)) = (fea, per, fpm) {
            self.org_permissions = decode_permissions(&fea, &per, &fpm);
        }
        Ok(())
    }

    /// Appends the header lines, separated by CRLF with none at the end
    /// (the HTTP server adds the line breaks around each `header()` call).
    /// Fails if a value could break the header block.
    pub fn render_headers(&self, out: &mut String) -> Result<(), TokenError> {
        let start = out.len();
        for (i, (name, value)) in HEADER_NAMES.iter().zip(self.values()).enumerate() {
            if i == 0 || !value.is_empty() {
                if i > 0 {
                    out.push_str("\r\n");
                }
                push_header(out, name, value)?;
            }
        }
        if out.len() - start > MAX_HEADER_BLOCK {
            return Err(TokenError::UnsafeHeaderValue);
        }
        Ok(())
    }

    /// The values of [`HEADER_NAMES`], in that order; "" where absent.
    pub fn values(&self) -> [&str; 7] {
        fn value(v: &Option<String>) -> &str {
            v.as_deref().unwrap_or("")
        }
        [
            &self.user_id,
            value(&self.session_id),
            value(&self.org_id),
            value(&self.org_role),
            value(&self.org_slug),
            value(&self.org_permissions),
            value(&self.actor_id),
        ]
    }
}

fn push_header(out: &mut String, name: &str, value: &str) -> Result<(), TokenError> {
    if !is_safe_header_value(value) {
        return Err(TokenError::UnsafeHeaderValue);
    }
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    Ok(())
}

/// No control characters (CR, LF, NUL, DEL, ...), no edge whitespace, and bounded.
pub fn is_safe_header_value(value: &str) -> bool {
    value.len() <= MAX_HEADER_VALUE && !value.chars().any(char::is_control) && value.trim() == value
}

fn opt_string(value: &Option<Json>) -> Result<Option<String>, TokenError> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(TokenError::InvalidClaim),
    }
}

fn actor_id(act: &Option<Json>) -> Result<Option<String>, TokenError> {
    match act {
        None | Some(Json::Null) => Ok(None),
        Some(act @ Json::Object(_)) => opt_string(&act.get("sub").cloned()),
        Some(_) => Err(TokenError::InvalidClaim),
    }
}

/// Decodes v2 permissions as Clerk's SDK does ([`crate::token::scopes`]):
/// `org:<feature>:<permission>`, comma-separated. A `fea` list the SDK
/// cannot split yields none rather than wrong ones.
pub fn decode_permissions(fea: &str, per: &str, fpm: &str) -> Option<String> {
    if !is_scoped_list(fea) {
        return None;
    }
    let mut granted = String::new();
    let _ = for_each_org_permission(fea, per, fpm, |feature, name| {
        if !granted.is_empty() {
            granted.push(',');
        }
        granted.push_str("org:");
        granted.push_str(feature);
        granted.push(':');
        granted.push_str(name);
        Ok::<(), ()>(())
    });
    Some(granted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use serde_json::Value;

    fn identity(v: Value) -> Result<Identity, TokenError> {
        Identity::from_claims(&Claims::parse(v.to_string().as_bytes()).unwrap())
    }

    #[test]
    fn v2_org_claims_and_permission_bits_decode_as_clerk_documents() {
        let id = identity(json!({
            "sub": "user_1", "sid": "sess_1", "v": 2, "fea": "o:dashboard,u:billing,o:teams",
            "o": {"id": "org_1", "slg": "acme", "rol": "admin", "per": "manage,read", "fpm": "3,2"},
            "act": {"sub": "user_admin", "iss": "https://dashboard.clerk.com"}
        }))
        .unwrap();
        assert_eq!(id.org_id.as_deref(), Some("org_1"));
        assert_eq!(id.org_slug.as_deref(), Some("acme"));
        assert_eq!(id.org_role.as_deref(), Some("org:admin"));
        assert_eq!(
            id.org_permissions.as_deref(),
            Some("org:dashboard:manage,org:dashboard:read,org:teams:read")
        );
        assert_eq!(id.actor_id.as_deref(), Some("user_admin"));
    }

    #[test]
    fn v1_org_claims_map_directly() {
        let id = identity(json!({
            "sub": "user_1", "org_id": "org_9", "org_slug": "s", "org_role": "org:member",
            "org_permissions": ["org:a:read", "org:b:write"]
        }))
        .unwrap();
        assert_eq!(id.org_role.as_deref(), Some("org:member"));
        assert_eq!(
            id.org_permissions.as_deref(),
            Some("org:a:read,org:b:write")
        );
        assert_eq!(id.session_id, None);
    }

    #[test]
    fn rendered_block_has_one_line_per_present_header() {
        let id = identity(json!({"sub": "user_1", "sid": "sess_1"})).unwrap();
        let mut out = String::new();
        id.render_headers(&mut out).unwrap();
        assert_eq!(out, "X-User-Id: user_1\r\nX-Session-Id: sess_1");
    }

    #[test]
    fn values_that_could_inject_headers_are_refused() {
        for sub in ["u\r\nX-Admin: 1", "u\n", "u\0", " u", "u\u{7f}"] {
            let id = identity(json!({ "sub": sub })).unwrap();
            let mut out = String::new();
            assert_eq!(
                id.render_headers(&mut out),
                Err(TokenError::UnsafeHeaderValue),
                "{sub:?}"
            );
        }
        let id =
            identity(json!({"sub": "u", "org_slug": "x".repeat(MAX_HEADER_VALUE + 1)})).unwrap();
        assert_eq!(
            id.render_headers(&mut String::new()),
            Err(TokenError::UnsafeHeaderValue)
        );
    }

    #[test]
    fn wrong_claim_types_are_refused() {
        assert_eq!(
            identity(json!({"sub": "u", "sid": 5})),
            Err(TokenError::InvalidClaim)
        );
        assert_eq!(
            identity(json!({"sub": "u", "org_permissions": "a"})),
            Err(TokenError::InvalidClaim)
        );
        assert_eq!(
            identity(json!({"sub": "u", "v": 2, "o": []})),
            Err(TokenError::InvalidClaim)
        );
    }

    #[test]
    fn malformed_feature_lists_grant_nothing() {
        assert_eq!(decode_permissions("nocolon", "read", "1"), None);
        assert_eq!(decode_permissions("o:a", "read", "x").as_deref(), Some(""));
        assert_eq!(
            decode_permissions("o:a", "read", "7").as_deref(),
            Some("org:a:read")
        );
    }
}
