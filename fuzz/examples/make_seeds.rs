//! Writes the seed corpora to `fuzz/seeds/<target>/`: real tokens signed
//! with the fuzz keys, JWKS documents, TOML configs and header sets.
//!
//! `cargo run --example make_seeds` (from `fuzz/`). ECDSA signatures are
//! randomized, so ES256 seeds differ from run to run; the others do not.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwtgate_fuzz::{
    b64, good_claims, jwks_document, rsa_public_pem, valid_tokens, Signing, NOW_S, PUBLISHABLE_KEY,
};
use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use serde_json::{json, Value};

fn dir(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, mode: &[u8], body: impl AsRef<[u8]>) {
    let mut bytes = mode.to_vec();
    bytes.extend_from_slice(body.as_ref());
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    if value == json!("<absent>") {
        claims.as_object_mut().unwrap().remove(key);
    } else {
        claims[key] = value;
    }
    claims
}

fn claim_variants() -> Vec<(&'static str, Value)> {
    let g = || good_claims("user_1");
    let simple = json!({"sub": "user_2", "exp": NOW_S + 30, "sid": "sess_2", "iss": "https://clerk.example.com", "azp": "https://app.example.com"});
    vec![
        ("good", g()),
        ("simple", simple.clone()),
        (
            "v1_org",
            json!({"sub": "user_3", "exp": NOW_S + 30, "iss": "https://clerk.example.com", "azp": "https://app.example.com",
            "org_id": "org_9", "org_slug": "s", "org_role": "org:member", "org_permissions": ["org:a:read", "org:b:write"],
            "act": {"sub": "user_admin"}, "sts": "active"}),
        ),
        ("expired", with(simple.clone(), "exp", json!(NOW_S - 6))),
        ("exp_leeway", with(simple.clone(), "exp", json!(NOW_S - 4))),
        (
            "exp_float",
            with(simple.clone(), "exp", json!(NOW_S as f64 + 0.5)),
        ),
        (
            "exp_string",
            with(simple.clone(), "exp", json!("1700000060")),
        ),
        (
            "exp_huge",
            with(simple.clone(), "exp", json!(8.64e12 + 1.0)),
        ),
        ("exp_u64", with(simple.clone(), "exp", json!(u64::MAX))),
        ("exp_absent", with(simple.clone(), "exp", json!("<absent>"))),
        ("nbf_future", with(simple.clone(), "nbf", json!(NOW_S + 6))),
        ("iat_null", with(simple.clone(), "iat", json!(null))),
        (
            "sub_crlf",
            with(simple.clone(), "sub", json!("u\r\nX-Admin: 1")),
        ),
        ("sub_space", with(simple.clone(), "sub", json!(" u"))),
        ("sub_empty", with(simple.clone(), "sub", json!(""))),
        ("sub_number", with(simple.clone(), "sub", json!(7))),
        (
            "sub_long",
            with(simple.clone(), "sub", json!("x".repeat(1025))),
        ),
        ("sid_ctl", with(simple.clone(), "sid", json!("s\u{7f}"))),
        ("pending", with(simple.clone(), "sts", json!("pending"))),
        (
            "wrong_iss",
            with(simple.clone(), "iss", json!("https://clerk.example.com/")),
        ),
        ("no_azp", with(simple.clone(), "azp", json!("<absent>"))),
        ("v2_bad_o", with(g(), "o", json!([]))),
    ]
}

fn main() {
    let tokens = valid_tokens();

    // token_verify
    let d = dir("token_verify");
    for (i, (how, token)) in tokens.iter().enumerate() {
        write(&d, &format!("raw_{}", how.kid()), &[0], token);
        let payload = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        write(
            &d,
            &format!("splice_same_{}", how.kid()),
            &[1, i as u8],
            &payload,
        );
        write(
            &d,
            &format!("edit_flip_{}", how.kid()),
            &[2, i as u8],
            [0, 0, 40, 3],
        );
    }
    let rs = &tokens[0].1;
    let (input, _) = rs.rsplit_once('.').unwrap();
    write(&d, "raw_three_dots", &[0], "a.b.c");
    write(&d, "raw_no_sig", &[0], format!("{input}."));
    write(&d, "raw_padded", &[0], format!("{rs}="));
    write(&d, "edit_swap", &[2, 0], [4, 0, 1]);
    write(&d, "edit_reencode", &[2, 0], [6, 1, 0, 6, 2, 1]);
    write(&d, "edit_header", &[2, 0], {
        let h = br#"{"alg":"none","kid":"rsa-1"}"#;
        let mut s = vec![8, h.len() as u8];
        s.extend_from_slice(h);
        s
    });
    write(
        &d,
        "splice_other_sub",
        &[1, 0],
        good_claims("admin").to_string(),
    );
    for (name, claims) in claim_variants() {
        for (sel, how) in [(3u8, "ed"), (0u8, "rs")] {
            write(
                &d,
                &format!("claims_{name}_{how}"),
                &[3, sel],
                claims.to_string(),
            );
        }
    }
    let headers = [
        (
            "clerk",
            json!({"alg": "EdDSA", "kid": "ed-1", "typ": "JWT", "cat": "cl_B7d4PD111AAA"}),
        ),
        (
            "crit",
            json!({"alg": "EdDSA", "kid": "ed-1", "crit": ["b64"]}),
        ),
        (
            "typ_at",
            json!({"alg": "EdDSA", "kid": "ed-1", "typ": "at+jwt"}),
        ),
        (
            "m2m",
            json!({"alg": "EdDSA", "kid": "ed-1", "cat": "cl_B7d4PD222AAA"}),
        ),
        ("no_kid", json!({"alg": "EdDSA"})),
        ("kid_num", json!({"alg": "EdDSA", "kid": 1})),
        ("hs256", json!({"alg": "HS256", "kid": "ed-1"})),
        ("wrong_key", json!({"alg": "EdDSA", "kid": "rsa-1"})),
    ];
    let claims = good_claims("user_h").to_string();
    for (name, header) in headers {
        write(
            &d,
            &format!("header_{name}"),
            &[4, 3],
            format!("{header}\n{claims}"),
        );
    }
    write(
        &d,
        "header_rs_pem_any_kid",
        &[4, 0],
        format!("{}\n{claims}", json!({"alg": "RS256", "kid": "whatever"})),
    );

    // jwks_parse
    let d = dir("jwks_parse");
    let doc = jwks_document();
    write(&d, "ours", &[0], doc.to_string());
    write(&d, "empty", &[0], r#"{"keys":[]}"#);
    write(&d, "not_object", &[0], r#"[[]]"#);
    for (curve, nid, crv, width) in [
        ("p384", Nid::SECP384R1, "P-384", 48),
        ("p521", Nid::SECP521R1, "P-521", 66),
    ] {
        let group = EcGroup::from_curve_name(nid).unwrap();
        let key = EcKey::generate(&group).unwrap();
        let mut ctx = BigNumContext::new().unwrap();
        let (mut x, mut y) = (
            openssl::bn::BigNum::new().unwrap(),
            openssl::bn::BigNum::new().unwrap(),
        );
        key.public_key()
            .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
            .unwrap();
        let jwk = json!({"kty": "EC", "kid": curve, "crv": crv,
            "x": b64(x.to_vec_padded(width).unwrap()), "y": b64(y.to_vec_padded(width).unwrap())});
        write(
            &d,
            &format!("ec_{curve}"),
            &[0],
            json!({"keys": [jwk]}).to_string(),
        );
    }
    let rsa1 = doc["keys"][0].clone();
    let mut dup = rsa1.clone();
    dup["alg"] = json!("RS384");
    write(
        &d,
        "duplicate_kid",
        &[0],
        json!({"keys": [rsa1, dup]}).to_string(),
    );
    write(
        &d,
        "oct",
        &[0],
        r#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#,
    );
    let mut enc = doc["keys"][0].clone();
    enc["use"] = json!("enc");
    enc["key_ops"] = json!(["encrypt"]);
    write(&d, "enc_use", &[0], json!({"keys": [enc]}).to_string());
    for pick in 0u8..12 {
        write(
            &d,
            &format!("field_str_{pick}"),
            &[1, pick * 4 + pick % 4],
            "kid-x",
        );
    }
    write(&d, "field_json_keyops", &[2, 4 * 4], r#"["verify","sign"]"#);
    write(&d, "field_json_kid_num", &[2, 4], "42");
    write(&d, "field_json_e", &[2, 7 * 4], r#""AQAB""#);

    // config_parse
    let d = dir("config_parse");
    let readme = include_str!("../../README.md");
    let start = readme.find("```toml\n").unwrap() + 8;
    let end = start + readme[start..].find("```").unwrap();
    let documented = readme[start..end]
        .replace(
            "jwt_key = \"-----BEGIN PUBLIC KEY-----...\"    # networkless PEM; or:\n",
            "",
        )
        .replace("\"pk_live_...\"", &format!("\"{PUBLISHABLE_KEY}\""));
    write(&d, "readme", b"", &documented);
    write(&d, "empty", b"", "");
    write(
        &d,
        "pem_inline",
        b"",
        format!("[keys]\njwt_key = '''\n{}'''\n", rsa_public_pem()),
    );
    write(
        &d,
        "pem_file",
        b"",
        "[keys]\njwt_key_file = \"/etc/jwtgate/clerk.pem\"\n",
    );
    write(&d, "jwks_es", b"", "[keys]\njwks_url = \"https://issuer.example/jwks\"\n[verify]\nalgorithms = [\"ES256\", \"EdDSA\"]\nleeway_secs = 0\n");
    write(&d, "http_loopback", b"", "listen = \"[::1]:7070\"\nworkers = 4\n[keys]\njwks_url = \"http://127.0.0.1:8080/jwks\"\nsecret_key = \"sk_test_x\"\n[cache]\ntokens = 0\n");
    write(
        &d,
        "publishable_only",
        b"",
        format!("[keys]\npublishable_key = \"{PUBLISHABLE_KEY}\"\n"),
    );
    write(
        &d,
        "unknown_field",
        b"",
        "[keys]\nsecret_key = \"sk_test_x\"\nbogus = 1\n",
    );
    write(
        &d,
        "out_of_range",
        b"",
        "[keys]\nsecret_key = \"sk_test_x\"\nrefresh_secs = 1\n",
    );
    write(&d, "wrong_type", b"", "[verify]\nleeway_secs = \"5\"\n");

    // request_decide
    let d = dir("request_decide");
    let ed = &tokens.iter().find(|(h, _)| *h == Signing::EdDsa).unwrap().1;
    let rs = &tokens[0].1;
    let suffix = jwtgate::config::cookie_suffix(PUBLISHABLE_KEY);
    let sets: Vec<(&str, u8, String)> = vec![
        ("bearer_ed", 0, format!("Host: t\nAuthorization: Bearer {ed}\nX-Original-URI: /a?b=1\nX-Original-Method: GET")),
        ("bearer_rs_pem", 2, format!("authorization: bearer   {rs}")),
        ("cookie_plain", 0, format!("Cookie: a=b; __session={ed}; c=d")),
        ("cookie_suffix", 0, format!("Cookie: __session_{suffix}=\"{ed}\"\nCookie: __session=x")),
        ("basic_then_cookie", 0, format!("Authorization: Basic dXNlcjpwdw==\nCookie: __session={ed}")),
        ("two_authorization", 0, format!("Authorization: Bearer {ed}\nAuthorization: Bearer {ed}")),
        ("bearer_empty", 0, "Authorization: Bearer   ".into()),
        ("missing", 0, "Host: t\nX-Original-URI: /\r\n".into()),
        ("no_keys", 3, format!("Authorization: Bearer {rs}")),
        ("garbage_token", 0, "Authorization: Bearer a.b.c".into()),
        ("signed_claims", 0, format!("\x01{}", good_claims("user_sig"))),
        ("signed_cookie", 1, format!("\x02__session_{suffix}={}", good_claims("user_c"))),
        ("signed_bad_sub", 0, format!("\x01{}", json!({"sub": "a\u{85}b", "exp": NOW_S + 9}))),
        ("signed_rs_pem", 2, format!("\x01{}", good_claims("user_pem"))),
    ];
    for (name, pick, text) in sets {
        write(&d, name, &[pick], text);
    }
    println!(
        "seeds written under {}",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("seeds")
            .display()
    );
}
