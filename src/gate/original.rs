//! The original request, as the proxy in front describes it.
//!
//! The auth request is the proxy's own (`GET /auth` from nginx, `GET
//! /forward` from Traefik or Caddy); what the browser asked for comes in
//! headers the proxy sets from its own variables. Two families exist, and
//! jwtgate reads both: Traefik, Caddy and Envoy send `X-Forwarded-Method`,
//! `-Uri`, `-Host`, `-Proto`; jwtgate's nginx snippets send
//! `X-Original-Method` and `X-Original-URI` (nginx's own names) with
//! `X-Forwarded-Host` and `-Proto`. The proxy overwrites any a client sent,
//! which is why they can be trusted here; nothing else talks to jwtgate.
//!
//! Envoy's `ext_authz` sends neither method nor URI header: it repeats the
//! browser's method and appends the browser's path to `/forward`. So a
//! request below `/forward/` falls back to its own method and to its path
//! with `/forward` removed ([`Original::with_route`]).

/// What the browser asked for. Values are borrowed from the request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Original<'a> {
    /// `X-Forwarded-Method`, else `X-Original-Method`.
    pub method: Option<&'a str>,
    /// Path and query as the browser sent them: `X-Forwarded-Uri`, else
    /// `X-Original-URI`.
    pub uri: Option<&'a str>,
    /// `X-Forwarded-Host` (its first comma-separated item), else `Host`.
    pub host: Option<&'a str>,
    /// `X-Forwarded-Proto` (its first item), else `https`.
    pub proto: &'a str,
}

impl<'a> Original<'a> {
    /// Reads the original request from the auth request's headers. A value
    /// that is not UTF-8 counts as absent.
    pub fn from_headers(headers: impl Iterator<Item = (&'a str, &'a [u8])> + Clone) -> Self {
        let get = |name: &str| {
            headers
                .clone()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
                .filter(|v| !v.is_empty())
        };
        let first_item = |v: &'a str| v.split(',').next().unwrap_or(v).trim_matches([' ', '\t']);
        Original {
            method: get("x-forwarded-method").or_else(|| get("x-original-method")),
            uri: get("x-forwarded-uri").or_else(|| get("x-original-uri")),
            host: get("x-forwarded-host")
                .or_else(|| get("host"))
                .map(first_item),
            proto: get("x-forwarded-proto").map_or("https", first_item),
        }
    }

    /// Fills what the headers left out from the auth request itself, when
    /// it came to `/forward/<original path>` (Envoy's `path_prefix`).
    pub fn with_route(mut self, own_method: &'a str, own_target: &'a str) -> Self {
        if let Some(rest) = own_target.strip_prefix("/forward/") {
            let uri = &own_target[own_target.len() - rest.len() - 1..];
            self.method = self.method.or(Some(own_method));
            self.uri = self.uri.or(Some(uri));
        }
        self
    }

    /// Whether the original method is GET (no method given: treated as
    /// not GET, so nothing that only GET may do happens).
    pub fn is_get(&self) -> bool {
        self.method == Some("GET")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(headers: &[(&'static str, &'static str)]) -> Original<'static> {
        Original::from_headers(headers.iter().map(|(n, v)| (*n, v.as_bytes())))
    }

    #[test]
    fn forwarded_headers_win_and_first_items_are_taken() {
        let o = read(&[
            ("Host", "jwtgate"),
            ("X-Original-Method", "POST"),
            ("X-Forwarded-Method", "GET"),
            ("X-Original-URI", "/a?b=1"),
            ("X-Forwarded-Host", "app.example.com, proxy.internal"),
            ("X-Forwarded-Proto", "http,https"),
        ]);
        assert_eq!(o.method, Some("GET"));
        assert_eq!(o.uri, Some("/a?b=1"));
        assert_eq!(o.host, Some("app.example.com"));
        assert_eq!(o.proto, "http");
        assert!(o.is_get());
    }

    #[test]
    fn envoy_style_paths_give_the_method_and_uri() {
        let o = read(&[("Host", "app.example.com")]).with_route("POST", "/forward/a/b?c=d");
        assert_eq!(o.method, Some("POST"));
        assert_eq!(o.uri, Some("/a/b?c=d"));
        let o = read(&[("X-Forwarded-Uri", "/x")]).with_route("GET", "/forward?role=a");
        assert_eq!(
            (o.method, o.uri),
            (None, Some("/x")),
            "plain /forward: headers only"
        );
    }

    #[test]
    fn defaults_when_the_proxy_says_nothing() {
        let o = read(&[("Host", "app:8443")]);
        assert_eq!(o.host, Some("app:8443"));
        assert_eq!(o.proto, "https");
        assert_eq!(o.method, None);
        assert!(!o.is_get());
    }
}
