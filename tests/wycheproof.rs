//! Project Wycheproof vectors against jwtgate's signature layer.
//!
//! Every case of every primitive file in `tests/vectors` (unmodified
//! Wycheproof copies, see the README there): RSASSA-PKCS1-v1_5 (RS*),
//! RSASSA-PSS (PS*), ECDSA P1363 (ES256/ES384) and Ed25519 (EdDSA), through
//! the public key loader (`VerifyingKey::from_jwk`; `from_pem` as a
//! cross-check for RS256) and `VerifyingKey::verify_signature`. That call is
//! the cryptographic check behind every token jwtgate accepts, so a forged
//! padding, wrong hash or malleable signature that verifies here is an
//! authentication bypass. The JWS and JWK files then run whole compact
//! tokens through `decode_jws` + `check_signature` with the group's keys.
//! A missing folder or file fails the test loudly; nothing is ever skipped.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use jwtgate::keys::jwk::{parse_jwks, VerifyingKey};
use jwtgate::token::algorithms::Algorithm;
use jwtgate::token::decode_jws;
use jwtgate::verify::check_signature;
use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");

/// The primitive files, all of which must be present.
const PRIMITIVE_FILES: [&str; 18] = [
    "rsa_signature_2048_sha256_test.json",
    "rsa_signature_2048_sha384_test.json",
    "rsa_signature_2048_sha512_test.json",
    "rsa_signature_3072_sha256_test.json",
    "rsa_signature_3072_sha384_test.json",
    "rsa_signature_3072_sha512_test.json",
    "rsa_signature_4096_sha256_test.json",
    "rsa_signature_4096_sha384_test.json",
    "rsa_signature_4096_sha512_test.json",
    "rsa_pss_2048_sha256_mgf1_32_test.json",
    "rsa_pss_3072_sha256_mgf1_32_test.json",
    "rsa_pss_4096_sha256_mgf1_32_test.json",
    "rsa_pss_2048_sha384_mgf1_48_test.json",
    "rsa_pss_4096_sha384_mgf1_48_test.json",
    "rsa_pss_4096_sha512_mgf1_64_test.json",
    "ecdsa_secp256r1_sha256_p1363_test.json",
    "ecdsa_secp384r1_sha384_p1363_test.json",
    "ed25519_test.json",
];

/// Decision for `acceptable` cases. The only ones in these files are flagged
/// `MissingNull`: a DigestInfo whose AlgorithmIdentifier omits the NULL
/// parameters. Wycheproof calls accepting them legacy compatibility, not a
/// vulnerability, but RFC 8017 encodes the NULL, no JWS signer omits it, and
/// accepting it means a second encoding per message (ASN.1 parsing instead of
/// comparing bytes). jwtgate REJECTS them (OpenSSL does), and this is asserted
/// so a behaviour change is noticed. An `acceptable` case with any other flag
/// fails the test until someone decides on it here.
const ACCEPTABLE_FLAGS: &[&str] = &["MissingNull"];
const ACCEPTABLE_VERIFIES: bool = false;

#[derive(Default)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable: usize,
    passed: usize,
    refused_keys: usize,
}

/// Reads one vector file; panics naming the path if the folder or file is missing.
fn load(name: &str) -> Value {
    let dir = Path::new(VECTORS);
    assert!(
        dir.is_dir(),
        "Wycheproof vector folder missing: {}",
        dir.display()
    );
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "Wycheproof vector file missing or unreadable: {}: {e}",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: bad JSON: {e}", path.display()))
}

/// `verify_signature`, with a panic turned into an `Err` so that the caller
/// can report it with the case that caused it.
fn verify(key: &VerifyingKey, alg: Algorithm, msg: &[u8], sig: &[u8]) -> Result<bool, String> {
    catch_unwind(AssertUnwindSafe(|| key.verify_signature(alg, msg, sig)))
        .map_err(|_| "verify_signature panicked".to_string())
}

/// Runs every test of one group, counting into `tally` and describing each
/// wrong outcome in `failures`.
fn run_group(file: &str, group: &Value, tally: &mut Tally, failures: &mut Vec<String>) {
    let alg = group_algorithm(file, group);
    let jwk = group_jwk(group);
    let jwk = &jwk;
    let key = VerifyingKey::from_jwk(jwk);
    // The same key as PEM; a PEM key is RSA, pinned to RS256 (see src/jwk.rs).
    let pem = match group["type"].as_str() {
        Some("RsassaPkcs1Verify") => {
            VerifyingKey::from_pem(group["publicKeyPem"].as_str().unwrap_or_default())
        }
        _ => key.clone(),
    };
    // The JWK without `alg`, which allows the whole RSA family: a wrong-hash
    // rejection then comes from the signature check, not from the alg pin.
    let mut open_jwk = jwk.clone();
    if let Some(members) = open_jwk.as_object_mut() {
        members.remove("alg");
    }
    let open = VerifyingKey::from_jwk(&open_jwk);
    if key.is_ok() != pem.is_ok() || key.is_ok() != open.is_ok() {
        failures.push(format!(
            "{file}: JWK/PEM key loaders disagree: {key:?} / {pem:?} / {open:?}"
        ));
    }
    if key.is_err() {
        tally.refused_keys += 1;
    }

    for test in group["tests"].as_array().expect("tests array") {
        let (id, comment, result) = (&test["tcId"], &test["comment"], &test["result"]);
        let flags: Vec<&str> = test["flags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let case = format!("{file} tcId {id} ({comment}, flags {flags:?}, {result})");
        let msg = hex::decode(test["msg"].as_str().expect("msg")).expect("msg hex");
        let sig = hex::decode(test["sig"].as_str().expect("sig")).expect("sig hex");
        let expected = match result.as_str() {
            Some("valid") => {
                tally.valid += 1;
                true
            }
            Some("invalid") => {
                tally.invalid += 1;
                false
            }
            Some("acceptable") => {
                tally.acceptable += 1;
                if !flags.iter().all(|f| ACCEPTABLE_FLAGS.contains(f)) {
                    failures.push(format!("{case}: acceptable case with an undecided flag"));
                }
                ACCEPTABLE_VERIFIES
            }
            other => panic!("{case}: unknown result {other:?}"),
        };
        let (key, pem, open) = match (&key, &pem, &open) {
            (Ok(key), Ok(pem), Ok(open)) => (key, pem, open),
            (Err(why), ..) => {
                // A refused key rejects everything: fine unless a case is valid.
                if expected {
                    failures.push(format!("{case}: key refused: {why}"));
                } else {
                    tally.passed += 1;
                }
                continue;
            }
            _ => continue, // loader disagreement, reported above
        };

        let verified = match verify(key, alg, &msg, &sig) {
            Ok(verified) => verified,
            Err(e) => {
                failures.push(format!("{case}: {e}"));
                continue;
            }
        };
        if verified == expected {
            tally.passed += 1;
        } else {
            failures.push(format!(
                "{case}: expected verified={expected}, got {verified}"
            ));
        }
        let pem_pinned = group["type"] == "RsassaPkcs1Verify" && alg != Algorithm::RS256;
        if verify(pem, alg, &msg, &sig) != Ok(verified && !pem_pinned) {
            failures.push(format!(
                "{case}: PEM key disagrees with JWK key (or RS256 pin)"
            ));
        }
        if expected {
            // Valid signature: the unpinned key verifies it under its own
            // algorithm and under no other; the pinned key refuses the others.
            if verify(open, alg, &msg, &sig) != Ok(true) {
                failures.push(format!("{case}: JWK without alg does not verify it"));
            }
            for wrong in Algorithm::ALL.into_iter().filter(|&a| a != alg) {
                if verify(open, wrong, &msg, &sig) != Ok(false)
                    || verify(key, wrong, &msg, &sig) != Ok(false)
                {
                    failures.push(format!("{case}: also verifies as {}", wrong.name()));
                }
            }
        }
    }
}

/// The group's key as a JWK. A few ECDSA groups (special points) ship no
/// JWK; build it from the uncompressed point `04 || x || y`.
fn group_jwk(group: &Value) -> Value {
    use base64::Engine;
    if let Some(jwk) = group.get("keyJwk").or(group.get("publicKeyJwk")) {
        return jwk.clone();
    }
    let point = hex::decode(
        group["publicKey"]["uncompressed"]
            .as_str()
            .expect("EC point"),
    )
    .unwrap();
    let width = (point.len() - 1) / 2;
    let crv = match width {
        32 => "P-256",
        48 => "P-384",
        _ => "P-521",
    };
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    serde_json::json!({"kty": "EC", "crv": crv, "x": b64(&point[1..=width]), "y": b64(&point[1 + width..])})
}

/// The JWS algorithm a group's primitive maps to (README table).
fn group_algorithm(file: &str, group: &Value) -> Algorithm {
    let sha = group["sha"].as_str().unwrap_or_default();
    let name = match (group["type"].as_str().unwrap_or_default(), sha) {
        ("RsassaPkcs1Verify", _) => format!("RS{}", &sha[4..]),
        ("RsassaPssVerify", _) => {
            let hash_bytes: u64 = sha[4..].parse::<u64>().unwrap() / 8;
            assert_eq!(
                group["sLen"].as_u64(),
                Some(hash_bytes),
                "{file}: PS* salt = hash length"
            );
            assert_eq!(
                group["mgfSha"].as_str(),
                Some(sha),
                "{file}: MGF1 with the same hash"
            );
            format!("PS{}", &sha[4..])
        }
        ("EcdsaP1363Verify", _) => format!("ES{}", &sha[4..]),
        ("EddsaVerify", _) => "EdDSA".to_string(),
        (other, _) => panic!("{file}: unexpected group type {other}"),
    };
    Algorithm::from_name(&name).unwrap_or_else(|| panic!("{file}: no algorithm {name}"))
}

#[test]
fn signature_primitive_vectors() {
    let mut failures = Vec::new();
    let mut total = Tally::default();
    {
        for file in PRIMITIVE_FILES {
            let doc = load(file);
            let mut t = Tally::default();
            for group in doc["testGroups"].as_array().expect("testGroups array") {
                run_group(file, group, &mut t, &mut failures);
            }
            let seen = t.valid + t.invalid + t.acceptable;
            if Some(seen as u64) != doc["numberOfTests"].as_u64() {
                failures.push(format!(
                    "{file}: processed {seen} cases, numberOfTests is {}",
                    doc["numberOfTests"]
                ));
            }
            eprintln!(
                "{file}: {}/{seen} passed (valid {}, invalid {}, acceptable {}), {} keys refused",
                t.passed, t.valid, t.invalid, t.acceptable, t.refused_keys
            );
            total.valid += t.valid;
            total.invalid += t.invalid;
            total.acceptable += t.acceptable;
            total.passed += t.passed;
            total.refused_keys += t.refused_keys;
        }
    }
    eprintln!(
        "total: {}/{} passed (valid {}, invalid {}, acceptable {} expected {}), {} keys refused",
        total.passed,
        total.valid + total.invalid + total.acceptable,
        total.valid,
        total.invalid,
        total.acceptable,
        if ACCEPTABLE_VERIFIES {
            "accepted"
        } else {
            "rejected"
        },
        total.refused_keys
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
#[should_panic(expected = "missing")]
fn missing_vector_file_fails_loudly() {
    load("rsa_signature_no_such_file_test.json");
}

/// `valid` cases of json_web_signature_test.json that jwtgate rejects on
/// purpose, each with its reason.
const DELIBERATE_REJECTS: [(u64, &str); 6] = [
    (
        346,
        "the key's alg PS256 pins it; the token is PS384 (RFC 7517 4.4)",
    ),
    (
        350,
        "the key's alg PS256 pins it; the token is PS384 (RFC 7517 4.4)",
    ),
    (
        347,
        "the key's alg ES521 is no JWA algorithm, so the key is refused",
    ),
    (
        351,
        "the key's alg ES521 is no JWA algorithm, so the key is refused",
    ),
    (
        372,
        "MAC over the text with a '?' removed; strict base64url refuses it (and HS256)",
    ),
    (
        373,
        "MAC over the text with a '?' removed; strict base64url refuses it (and HS256)",
    ),
];

/// Which JWS cases jwtgate must accept: the `valid` ones, except HMAC
/// (jwtgate has no shared secrets: HS* is refused by name) and the
/// deliberate rejections above.
fn jws_must_accept(file: &str, test: &Value, header_alg: &str) -> bool {
    let deliberate = file == "json_web_signature_test.json"
        && DELIBERATE_REJECTS
            .iter()
            .any(|(id, _)| test["tcId"].as_u64() == Some(*id));
    test["result"] == "valid" && !header_alg.starts_with("HS") && !deliberate
}

/// The keys a JWS/JWK group offers: a JWK set, one JWK, or none (HMAC-only
/// groups publish no public key). Keys jwtgate refuses are left out.
fn group_keys(group: &Value) -> Vec<VerifyingKey> {
    match group.get("public") {
        None => vec![],
        Some(set) if set.get("keys").is_some() => parse_jwks(set.to_string().as_bytes())
            .map(|p| p.keys)
            .unwrap_or_default(),
        Some(jwk) => VerifyingKey::from_jwk(jwk).into_iter().collect(),
    }
}

/// Whole compact tokens: jwtgate accepts a case iff it decodes, a key of
/// the group matches its kid (single keys in these files carry the kid the
/// tokens name) and the signature checks.
fn jws_accepts(token: &str, keys: &[VerifyingKey]) -> bool {
    let Ok(jws) = decode_jws(token) else {
        return false;
    };
    keys.iter()
        .filter(|k| k.kid().is_none() || k.kid() == jws.header.kid.as_deref())
        .any(|k| check_signature(&jws, k).is_ok())
}

fn header_alg(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()
        .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
        .and_then(|h| h["alg"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn jws_and_jwk_set_vectors() {
    let mut failures = Vec::new();
    for file in ["json_web_signature_test.json", "json_web_key_test.json"] {
        let doc = load(file);
        let (mut seen, mut accepted) = (0, 0);
        for group in doc["testGroups"].as_array().expect("testGroups array") {
            let keys = group_keys(group);
            for test in group["tests"].as_array().expect("tests array") {
                seen += 1;
                let token = test["jws"].as_str().unwrap_or_default();
                let alg = header_alg(token);
                let want = jws_must_accept(file, test, &alg);
                let got = catch_unwind(AssertUnwindSafe(|| jws_accepts(token, &keys)));
                match got {
                    Ok(got) if got == want => accepted += usize::from(got),
                    Ok(got) => failures.push(format!(
                        "{file} tcId {} ({}, group {}, alg {alg}): accepted={got}, want {want}",
                        test["tcId"], test["comment"], group["comment"]
                    )),
                    Err(_) => failures.push(format!("{file} tcId {}: panicked", test["tcId"])),
                }
            }
        }
        assert_eq!(
            Some(seen as u64),
            doc["numberOfTests"].as_u64(),
            "{file}: case count"
        );
        eprintln!("{file}: {seen} cases, {accepted} accepted, all as expected unless listed");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Keys the JWK file calls bad (too small, exponent 1, ROCA-weak, wrong
/// use, alg/curve mismatch, invalid point, wrong curve or kty) are refused
/// when the set is loaded, and the refusal names the kid, so an operator
/// sees which key of an issuer's JWKS was dropped.
#[test]
fn bad_keys_in_jwk_sets_are_refused_by_kid() {
    let doc = load("json_web_key_test.json");
    let mut checked = 0;
    for group in doc["testGroups"].as_array().expect("testGroups array") {
        let Some(set) = group.get("public") else {
            continue; // symmetric-only groups: nothing public to load
        };
        let tests = group["tests"].as_array().expect("tests array");
        if tests.iter().any(|t| t["result"] == "valid") {
            continue;
        }
        let parsed = parse_jwks(set.to_string().as_bytes()).expect("a JWK set");
        for test in tests {
            let kid = test["jws"]
                .as_str()
                .and_then(|t| decode_jws(t).ok())
                .and_then(|jws| jws.header.kid);
            let Some(kid) = kid else { continue };
            let case = format!(
                "tcId {} ({}, group {})",
                test["tcId"], test["comment"], group["comment"]
            );
            assert!(
                parsed.keys.iter().all(|k| k.kid() != Some(&kid)),
                "{case}: key {kid} was loaded"
            );
            assert!(
                parsed.refused.iter().any(|r| r.contains(&kid)),
                "{case}: no refusal names {kid}: {:?}",
                parsed.refused
            );
            checked += 1;
        }
    }
    eprintln!("{checked} bad keys refused by kid");
    assert!(checked >= 10, "only {checked} bad-key cases found");
}
