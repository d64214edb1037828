//! The session cookie is found bytewise: a cookie jwtgate does not read
//! (someone else's, on a shared domain) may hold any bytes without hiding
//! `__session`.

mod common;

use common::*;

fn auth_with_cookie(daemon: &Daemon, cookie: &[u8]) -> Response {
    let mut raw = b"GET /auth HTTP/1.1\r\nHost: t\r\nCookie: ".to_vec();
    raw.extend_from_slice(cookie);
    raw.extend_from_slice(b"\r\n\r\n");
    request_bytes(daemon.addr, &raw).expect("an answer")
}

#[test]
fn a_non_utf8_byte_in_another_cookie_does_not_hide_the_session() {
    let key = Key::rsa("ins_1", 2048);
    let server = KeyServer::start(jwks(&[&key]));
    let daemon = Daemon::start(&jwks_config(&server, ""));
    daemon.wait_ready();
    let token = key.sign(&claims("user_cookie"));
    for other in [
        &b"a=caf\xe9"[..], // Latin-1, as an old app would set it
        b"theme=\xff\xfe", // not text at all
        b"x=\xc3",         // a cut UTF-8 sequence
        b"n\xe4me=1",      // in the name
    ] {
        for cookie in [
            [other, b"; __session=", token.as_bytes()].concat(),
            [b"__session=", token.as_bytes(), b"; ", other].concat(),
        ] {
            let r = auth_with_cookie(&daemon, &cookie);
            assert_eq!(
                (r.status, r.header("x-user-id")),
                (200, Some("user_cookie")),
                "{}: {r:?}",
                String::from_utf8_lossy(&cookie)
            );
        }
    }
    // The session cookie itself with a byte that is not UTF-8: a bad token.
    let mut bad = format!("__session={token}").into_bytes();
    bad.push(0xe9);
    let r = auth_with_cookie(&daemon, &bad);
    assert_eq!(
        (r.status, r.reason()),
        (401, Some("token-invalid")),
        "{r:?}"
    );
}
