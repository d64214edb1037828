//! Project Wycheproof RSASSA-PKCS1-v1_5 vectors against jwtgate's RSA verifier.
//!
//! Every case of the nine `rsa_signature_{2048,3072,4096}_sha{256,384,512}_test.json`
//! files in `../shared/vectors` (unmodified Wycheproof copies, see the README
//! there) goes through the public key loaders (`VerifyingKey::from_jwk`, and
//! `from_pem` as a cross-check) and `VerifyingKey::verify_signature` with
//! RS256/RS384/RS512. That call is the cryptographic check behind every token
//! jwtgate accepts, so a forged padding, wrong hash or malleable signature that
//! verifies here is an authentication bypass. A missing folder or file fails
//! the test loudly; nothing is ever skipped.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use jwtgate::algorithms::Algorithm;
use jwtgate::jwk::VerifyingKey;
use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors");
const ALGS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512];

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
    assert_eq!(
        group["type"], "RsassaPkcs1Verify",
        "{file}: unexpected group type"
    );
    let alg = match group["sha"].as_str() {
        Some("SHA-256") => Algorithm::RS256,
        Some("SHA-384") => Algorithm::RS384,
        Some("SHA-512") => Algorithm::RS512,
        other => panic!("{file}: unexpected sha {other:?}"),
    };
    let jwk = &group["keyJwk"];
    let key = VerifyingKey::from_jwk(jwk);
    // The same key as PEM; a PEM key is pinned to RS256 (see src/jwk.rs).
    let pem = VerifyingKey::from_pem(group["publicKeyPem"].as_str().unwrap_or_default());
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
        if verify(pem, alg, &msg, &sig) != Ok(verified && alg == Algorithm::RS256) {
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
            for wrong in ALGS.into_iter().filter(|&a| a != alg) {
                if verify(open, wrong, &msg, &sig) != Ok(false)
                    || verify(key, wrong, &msg, &sig) != Ok(false)
                {
                    failures.push(format!("{case}: also verifies as {}", wrong.name()));
                }
            }
        }
    }
}

#[test]
fn rsassa_pkcs1_v1_5_vectors() {
    let mut failures = Vec::new();
    let mut total = Tally::default();
    for bits in [2048, 3072, 4096] {
        for sha in [256, 384, 512] {
            let file = format!("rsa_signature_{bits}_sha{sha}_test.json");
            let doc = load(&file);
            let mut t = Tally::default();
            for group in doc["testGroups"].as_array().expect("testGroups array") {
                run_group(&file, group, &mut t, &mut failures);
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
