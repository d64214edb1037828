//! An allowed identity as the token cache keeps it.
//!
//! A daemon that holds 100,000 verified tokens must stay small, so a grant
//! is two heap blocks: the struct (inside its `Arc`) and one text holding,
//! in this order, the identity's values, the rule facts' strings that the
//! values do not already hold (a permission is usually inside the
//! `X-Org-Permissions` value, the role inside `org:admin`), and the extra
//! header lines (`X-Issuer`, mapped claims) as rendered at verification.
//! Header names are not stored: [`super::decision`] writes the identity
//! lines at each hit, into a response buffer that has room (no
//! allocation).

use crate::rules::{FactTable, Facts};
use crate::token::claims::Claims;
use crate::token::identity::{Identity, HEADER_NAMES};

/// An allowed identity, shared by every cache hit of its token.
#[derive(Debug)]
pub struct Grant {
    /// Until when the decision may be reused (Unix ms): the token's `exp`,
    /// capped at the configured decision TTL.
    pub reuse_until_ms: i64,
    /// The issuer that vouched for the token (an index into
    /// [`crate::verify::Verifier::issuers`]).
    pub issuer: usize,
    text: Box<str>,
    /// Where each identity value ends in `text` (value `i` starts where
    /// value `i - 1` ends, the first at 0), in [`HEADER_NAMES`] order.
    ends: [u16; HEADER_NAMES.len()],
    /// Where the extra header lines start; they run to the end of `text`.
    extra: u16,
    /// What per-location rules read from the token (Clerk's `has()`),
    /// as spans into `text`.
    facts: FactTable,
}

/// The parts a grant is made of.
pub struct GrantParts<'a> {
    pub issuer: usize,
    pub identity: &'a Identity,
    /// The claims to work out rule facts from (`None`: an issuer whose
    /// tokens are not Clerk's; every rule but `issuer=` fails).
    pub facts_from: Option<&'a Claims>,
    /// Header lines beyond the identity's, each led by CRLF.
    pub extra_headers: &'a str,
    pub reuse_until_ms: i64,
}

impl Grant {
    /// A grant of `parts`. `None` if the text would pass 64 KiB, which
    /// the verifier's limits on header values rule out.
    pub fn new(parts: GrantParts<'_>) -> Option<Grant> {
        let values = parts.identity.values();
        let length = values.iter().map(|v| v.len()).sum::<usize>() + parts.extra_headers.len();
        let mut text = String::with_capacity(length + 32);
        let mut ends = [0u16; HEADER_NAMES.len()];
        for (end, value) in ends.iter_mut().zip(values) {
            text.push_str(value);
            *end = u16::try_from(text.len()).ok()?;
        }
        let shared = text.len();
        let facts = match parts.facts_from {
            Some(claims) => FactTable::from_claims(claims, &mut text, shared),
            None => FactTable::default(),
        };
        let extra = u16::try_from(text.len()).ok()?;
        text.push_str(parts.extra_headers);
        Some(Grant {
            reuse_until_ms: parts.reuse_until_ms,
            issuer: parts.issuer,
            text: text.into_boxed_str(),
            ends,
            extra,
            facts,
        })
    }

    /// The identity's values in [`HEADER_NAMES`] order, "" where absent.
    pub fn values(&self) -> impl Iterator<Item = &str> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends)
            .map(|(start, end)| self.text(start, end))
    }

    /// The user (`sub`).
    pub fn user_id(&self) -> &str {
        self.text(0, self.ends[0])
    }

    /// The session (`sid`), if the token has one.
    pub fn session_id(&self) -> Option<&str> {
        Some(self.text(self.ends[0], self.ends[1])).filter(|s| !s.is_empty())
    }

    /// Header lines beyond the identity's, each led by CRLF ("" for none).
    pub fn extra_headers(&self) -> &str {
        self.text.get(self.extra as usize..).unwrap_or_default()
    }

    /// The rule facts, for a token the issuer named `issuer` vouched for.
    pub fn facts<'a>(&'a self, issuer: &'a str) -> Facts<'a> {
        Facts::new(&self.facts, &self.text, Some(issuer))
    }

    /// A grant for user `user_id` alone, for tests elsewhere.
    #[cfg(test)]
    pub(crate) fn of_user(user_id: &str, reuse_until_ms: i64) -> Grant {
        let identity = Identity {
            user_id: user_id.into(),
            ..Identity::default()
        };
        Grant::new(GrantParts {
            issuer: 0,
            identity: &identity,
            facts_from: None,
            extra_headers: "",
            reuse_until_ms,
        })
        .unwrap()
    }

    fn text(&self, start: u16, end: u16) -> &str {
        self.text
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleSet;
    use crate::rules::Verdict;

    fn claims(v: serde_json::Value) -> Claims {
        Claims::parse(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn holds_the_identity_the_facts_and_the_extra_lines() {
        let claims = claims(serde_json::json!({
            "sub": "user_1", "sid": "sess_1", "v": 2, "fea": "o:dashboard,u:reports",
            "o": {"id": "org_1", "slg": "acme", "rol": "admin", "per": "read,manage", "fpm": "3"}
        }));
        let identity = Identity::from_claims(&claims).unwrap();
        let grant = Grant::new(GrantParts {
            issuer: 1,
            identity: &identity,
            facts_from: Some(&claims),
            extra_headers: "\r\nX-Issuer: clerk",
            reuse_until_ms: 5,
        })
        .unwrap();
        assert_eq!(grant.user_id(), "user_1");
        assert_eq!(grant.session_id(), Some("sess_1"));
        assert_eq!(grant.values().collect::<Vec<_>>(), identity.values());
        assert_eq!(grant.extra_headers(), "\r\nX-Issuer: clerk");
        let facts = grant.facts("clerk");
        for (query, allowed) in [
            ("role=org:admin", true),
            ("permission=org:dashboard:manage", true),
            ("feature=u:reports&issuer=clerk", true),
            ("role=org:member", false),
            ("issuer=other", false),
        ] {
            let verdict = RuleSet::parse(query).unwrap().evaluate(&facts);
            assert_eq!(verdict == Verdict::Allow, allowed, "{query}");
        }
        // Only "reports" is new text: the permissions, the role and the
        // org feature are inside the identity's values.
        let values: usize = identity.values().iter().map(|v| v.len()).sum();
        assert_eq!(grant.text.len(), values + "reports".len() + 17);
    }

    #[test]
    fn a_hit_renders_what_verification_checked() {
        use crate::gate::decision::{Decision, Source};
        for v in [
            serde_json::json!({"sub": "user_1"}),
            serde_json::json!({"sub": "user_1", "sid": "s", "act": {"sub": "user_a"}}),
            serde_json::json!({"sub": "u", "org_id": "o", "org_role": "org:admin",
                               "org_slug": "acme", "org_permissions": ["org:a:b", "org:c:d"]}),
            serde_json::json!({"sub": "u", "sid": "s", "v": 2, "fea": "o:a",
                               "o": {"id": "o", "rol": "member", "per": "x,y", "fpm": "2"}}),
        ] {
            let claims = claims(v.clone());
            let identity = Identity::from_claims(&claims).unwrap();
            let mut checked = String::new();
            identity.render_headers(&mut checked).unwrap();
            let grant = Grant::new(GrantParts {
                issuer: 0,
                identity: &identity,
                facts_from: Some(&claims),
                extra_headers: "\r\nX-Email: a@b.c",
                reuse_until_ms: 1_700_000_060_000,
            })
            .unwrap();
            let mut out = String::new();
            Decision::allow(std::sync::Arc::new(grant), Source::Cache).render_headers(&mut out);
            assert_eq!(
                out,
                format!("{checked}\r\nX-Email: a@b.c\r\nX-Accel-Expires: @1700000059"),
                "{v}"
            );
        }
    }

    #[test]
    fn a_token_without_optional_claims() {
        let claims = claims(serde_json::json!({"sub": "user_2"}));
        let identity = Identity::from_claims(&claims).unwrap();
        let grant = Grant::new(GrantParts {
            issuer: 0,
            identity: &identity,
            facts_from: None,
            extra_headers: "",
            reuse_until_ms: 5,
        })
        .unwrap();
        assert_eq!(grant.user_id(), "user_2");
        assert_eq!(grant.session_id(), None);
        assert_eq!(grant.values().filter(|v| v.is_empty()).count(), 6);
        assert_eq!(&*grant.text, "user_2");
    }
}
