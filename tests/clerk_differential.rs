//! Differential test against Clerk's reference verifier: `verifyToken` of
//! `@clerk/backend` (the exact version pinned in `tests/clerk/package.json`),
//! run by Node.
//!
//! Thousands of tokens are generated deterministically (fixed tables, plus
//! combinations drawn by a seeded PRNG): valid ones, and mutations of every
//! part: header fields, each claim's presence, type and value, clock edges,
//! `azp`/`iss`, the signature, the base64url and the JSON. They are signed
//! with an RSA-2048 key made at test time. Every token is decided under
//! several configurations by jwtgate, in process (`Verifier::verify_at`
//! with the PEM key), and by Clerk, in one Node process for the whole batch
//! (`tests/clerk/verify.mjs`, with `Date.now` pinned to the same instant).
//!
//! The accept/reject decisions must be equal, except where jwtgate is
//! stricter on purpose (plus one known jwtgate bug, listed the same way).
//! Those exceptions are [`Strict`]; [`classify`] assigns them from how a
//! token was made, never from the outcome, and a difference counts as
//! explained only if jwtgate's reason is the one its category predicts. The
//! test fails on any other difference, and also when an exception never
//! showed up as a difference on its own, so that the list stays honest.
//!
//! Needs Node >= 20 and `npm ci --prefix tests/clerk`; fails loudly without.
//! `CLERK_DIFF_SHOW=<text>` prints both decisions for every token whose
//! label contains `<text>` (e.g. `CLERK_DIFF_SHOW="claim exp="`).
//!
//! Layout: setups; token recipes and `build`; generation (`generate`); the
//! exception list (`Strict`, `classify`); the Node bridge (`clerk_decide`);
//! the comparison (`clerk_and_jwtgate_agree`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{repo_path, Key, TempDir, AZP, ISSUER};
use jwtgate::keys::jwk::VerifyingKey;
use jwtgate::keys::store::KeyStore;
use jwtgate::token::algorithms::AlgorithmSet;
use jwtgate::token::claims::Validation;
use jwtgate::verify::{Policy, Verifier};
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::PKey;
use openssl::rsa::Padding;
use openssl::sign::Signer;
use serde_json::{json, Value};

/// The fixed clock: 2026-01-01T00:00:00Z, in seconds.
const NOW_S: i64 = 1_767_225_600;
/// jwtgate's default `verify.max_token_bytes`.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Seed of the combinations; change it to explore, keep it fixed to commit.
const SEED: u64 = 0x6a77_7467_6174_6521;
/// How many random combinations of edits are drawn.
const COMBINATIONS: usize = 1600;

// ---------------------------------------------------------------------------
// Setups: the configurations every token is decided under.
// ---------------------------------------------------------------------------

struct Setup {
    name: &'static str,
    validation: Validation,
    now_ms: i64,
}

fn setups() -> Vec<Setup> {
    let v = |issuer: Option<&str>, parties: &[&str], leeway_ms| Validation {
        issuer: issuer.map(str::to_string),
        authorized_parties: parties.iter().map(|p| p.to_string()).collect(),
        audience: vec![],
        leeway_ms,
        allow_pending: false,
    };
    vec![
        Setup {
            name: "open",
            validation: v(None, &[], 5000),
            now_ms: NOW_S * 1000,
        },
        Setup {
            name: "issuer+parties",
            validation: v(Some(ISSUER), &[AZP], 5000),
            now_ms: NOW_S * 1000 + 500,
        },
        Setup {
            name: "issuer",
            validation: v(Some(ISSUER), &[], 5000),
            now_ms: NOW_S * 1000 + 999,
        },
        Setup {
            name: "parties,no-skew",
            validation: v(None, &[AZP, "http://localhost:3000"], 0),
            now_ms: NOW_S * 1000 + 1,
        },
    ]
}

/// The options Clerk's `verifyToken` gets for a setup (`jwtKey` is added by
/// the Node script).
fn clerk_options(setup: &Setup) -> Value {
    let v = &setup.validation;
    let mut options = json!({
        "authorizedParties": v.authorized_parties,
        "clockSkewInMs": v.leeway_ms,
    });
    if let Some(issuer) = &v.issuer {
        options["issuer"] = json!(issuer);
    }
    options
}

// ---------------------------------------------------------------------------
// Token recipes: how a token is made, kept so that `classify` can read it.
// ---------------------------------------------------------------------------

/// A member whose raw value is not I-JSON (RFC 7493): fine for JavaScript,
/// which substitutes or approximates, but not a value jwtgate will read.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Quirk {
    /// A `\ud800` escape with no low surrogate.
    LoneSurrogate,
    /// A number beyond f64 (`1e999`).
    NumberOverflow,
}

/// One member of a JSON object as written: the key and the value as raw
/// JSON text, so that duplicates, escapes and numbers like `1e999` can be
/// expressed exactly.
#[derive(Clone, Debug)]
struct Member {
    key: String,
    value: String,
    quirk: Option<Quirk>,
}

impl Member {
    /// The key as JavaScript reads it (escapes decoded).
    fn name(&self) -> String {
        serde_json::from_str::<String>(&self.key).unwrap_or_else(|_| self.key.clone())
    }

    /// The value as the classifier reads it, when it is plain JSON.
    fn json(&self) -> Option<J> {
        match self.quirk {
            Some(_) => None,
            None => {
                let mut de = serde_json::Deserializer::from_str(&self.value);
                serde::de::DeserializeSeed::deserialize(Depth(1), &mut de).ok()
            }
        }
    }
}

/// A JSON object written member by member.
#[derive(Clone, Debug, Default)]
struct Obj {
    members: Vec<Member>,
    /// Written with newlines and indentation instead of compactly.
    spaced: bool,
}

impl Obj {
    fn of(pairs: &[(&str, String)]) -> Obj {
        Obj {
            members: pairs
                .iter()
                .map(|(k, v)| Member {
                    key: js(k),
                    value: v.clone(),
                    quirk: None,
                })
                .collect(),
            spaced: false,
        }
    }

    /// Sets `name` to the raw `value` (one member, where the first was),
    /// or removes it.
    fn set(&mut self, name: &str, value: Option<&str>, quirk: Option<Quirk>) {
        let at = self.members.iter().position(|m| m.name() == name);
        self.members.retain(|m| m.name() != name);
        if let Some(value) = value {
            let member = Member {
                key: js(name),
                value: value.to_string(),
                quirk,
            };
            let at = at.unwrap_or(self.members.len()).min(self.members.len());
            self.members.insert(at, member);
        }
    }

    /// The member JavaScript sees for `name`: the last one.
    fn last(&self, name: &str) -> Option<&Member> {
        self.members.iter().rev().find(|m| m.name() == name)
    }

    fn count(&self, name: &str) -> usize {
        self.members.iter().filter(|m| m.name() == name).count()
    }

    fn text(&self) -> String {
        let (open, sep, close) = if self.spaced {
            ("{\n  ", ",\n\t", "\r\n}\n")
        } else {
            ("{", ",", "}")
        };
        let body: Vec<String> = self
            .members
            .iter()
            .map(|m| {
                if self.spaced {
                    format!("{} : {}", m.key, m.value)
                } else {
                    format!("{}:{}", m.key, m.value)
                }
            })
            .collect();
        format!("{open}{}{close}", body.join(sep))
    }
}

/// What a header or payload that is not written as an [`Obj`] holds.
#[derive(Clone, Copy, Debug, PartialEq)]
enum TextKind {
    /// Not JSON, or JSON that is not an object: both refuse it.
    NotAnObject,
    /// A plain object written as raw bytes (odd but valid JSON).
    Object,
    /// A UTF-8 byte order mark, then an object.
    BomThenObject,
    /// Invalid UTF-8 inside the value of a member jwtgate ignores.
    InvalidUtf8Ignored,
    /// Invalid UTF-8 in a member name, or in a value jwtgate reads.
    InvalidUtf8Read,
}

#[derive(Clone, Debug)]
enum Doc {
    Obj(Obj),
    Text(Vec<u8>, TextKind),
}

impl Doc {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Doc::Obj(o) => o.text().into_bytes(),
            Doc::Text(bytes, _) => bytes.clone(),
        }
    }

    fn obj(&self) -> Option<&Obj> {
        match self {
            Doc::Obj(o) => Some(o),
            Doc::Text(..) => None,
        }
    }

    fn obj_mut(&mut self) -> Option<&mut Obj> {
        match self {
            Doc::Obj(o) => Some(o),
            Doc::Text(..) => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Seg {
    Header,
    Payload,
    Signature,
}

/// A change to the base64url text of the token. Header and payload changes
/// are made before signing, so the signature covers exactly what is sent.
#[derive(Clone, Debug)]
enum Enc {
    /// `n` `=` characters appended to a segment.
    Pad(Seg, usize),
    /// Header `=` padding appended after signing (the signature no longer
    /// matches what is sent).
    PadAfterSigning(usize),
    /// The standard alphabet: `+` and `/` instead of `-` and `_`.
    StdAlphabet(Seg),
    /// A character inserted at the start, middle or end (0, 1, 2) of a segment.
    Insert(Seg, u8, char),
    /// Non-zero unused bits in the last character (non-canonical base64).
    TrailingBits(Seg),
    /// One more character: a length of 1 mod 4.
    ExtraChar(Seg),
    /// Something around the whole token.
    Around(&'static str, &'static str),
    /// The segment structure.
    Shape(Shape),
}

#[derive(Clone, Copy, Debug)]
enum Shape {
    NoSignature,
    NoSignatureKeepDot,
    ExtraEmptySegment,
    ExtraSegment,
    FiveSegments,
    OnlyHeader,
    Empty,
    Dots,
    SwapHeaderAndPayload,
}

/// Hand-built PKCS#1 v1.5 encoded messages, signed with the raw RSA operation.
#[derive(Clone, Copy, Debug)]
enum Em {
    /// The correct encoding (a check of this machinery: must verify).
    Correct,
    /// DigestInfo without the NULL algorithm parameters.
    NoNullParams,
    /// A SHA-1 DigestInfo over SHA-1 of the input, under an RS256 header.
    Sha1DigestInfo,
    /// The DigestInfo SEQUENCE length in long form.
    LongFormLength,
    /// Four bytes of garbage after the digest (padding shortened).
    GarbageAfterDigest,
    /// A zero byte inside the 0xFF padding.
    ZeroInPadding,
    /// Block type 2 (encryption padding).
    BlockType2,
    /// Padding bytes that are not 0xFF.
    PaddingNotFf,
    /// A first byte of 0x01 instead of 0x00.
    LeadingOne,
    /// The digest of the header alone.
    DigestOfHeaderOnly,
}

#[derive(Clone, Debug)]
enum Sig {
    /// RSASSA-PKCS1-v1_5 with the hash the header's `alg` names
    /// (SHA-256 when it names no RS* algorithm).
    Good,
    /// With this hash, whatever the header says.
    Hash(&'static str),
    /// The good signature with bit `bit` of byte `byte` flipped (a negative
    /// byte counts from the end).
    FlipBit(i32, u8),
    /// The first `n` bytes of the good signature.
    Truncate(usize),
    DropFirstByte,
    PrependZero,
    AppendZero,
    Empty,
    /// Signed with another RSA-2048 key.
    OtherKey,
    /// HMAC-SHA256 keyed with the PEM text of the public key.
    HmacWithPem,
    Em(Em),
    /// 256 zero bytes.
    Zeros,
    /// 256 0xFF bytes (above the modulus).
    Ones,
    /// The modulus itself.
    Modulus,
    /// The integer 1.
    One,
}

#[derive(Clone, Debug)]
struct Recipe {
    header: Doc,
    payload: Doc,
    encodings: Vec<Enc>,
    signature: Sig,
}

/// One generated token: a name for humans, how it was made, the token.
struct Case {
    label: String,
    recipe: Recipe,
    token: String,
}

/// The keys tokens are signed with.
struct Keys {
    main: Key,
    other: Key,
    pem: String,
}

/// A JSON string literal.
fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Applies an encoding change to one segment's text.
fn encode_edit(text: &mut String, enc: &Enc) {
    match enc {
        Enc::Pad(_, n) => text.push_str(&"=".repeat(*n)),
        Enc::StdAlphabet(_) => *text = text.replace('-', "+").replace('_', "/"),
        Enc::Insert(_, at, c) => {
            let i = match at {
                0 => 0,
                1 => text.len() / 2,
                _ => text.len(),
            };
            text.insert(i, *c);
        }
        Enc::TrailingBits(_) => {
            // The unused low bits of the last character: 4 when len % 4 == 2,
            // 2 when len % 4 == 3. Setting the lowest makes them non-zero.
            if text.len() % 4 >= 2 {
                let last = text.pop().unwrap();
                let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                let v = alphabet.iter().position(|&b| b as char == last).unwrap();
                text.push(alphabet[v | 1] as char);
            }
        }
        Enc::ExtraChar(_) => {
            if text.len().is_multiple_of(4) {
                text.push('A');
            } else {
                // Make the length 1 mod 4.
                while text.len() % 4 != 1 {
                    text.push('A');
                }
            }
        }
        Enc::PadAfterSigning(_) | Enc::Around(..) | Enc::Shape(_) => {}
    }
}

fn enc_segment(enc: &Enc) -> Option<Seg> {
    match enc {
        Enc::Pad(s, _)
        | Enc::StdAlphabet(s)
        | Enc::Insert(s, _, _)
        | Enc::TrailingBits(s)
        | Enc::ExtraChar(s) => Some(*s),
        Enc::PadAfterSigning(_) => Some(Seg::Header),
        Enc::Around(..) | Enc::Shape(_) => None,
    }
}

/// The `alg` the header names (what the good signature follows).
fn header_alg(header: &Doc) -> Option<String> {
    let member = header.obj()?.last("alg")?;
    serde_json::from_str::<String>(&member.value).ok()
}

fn digest(name: &str) -> MessageDigest {
    match name {
        "sha1" => MessageDigest::sha1(),
        "sha384" => MessageDigest::sha384(),
        "sha512" => MessageDigest::sha512(),
        _ => MessageDigest::sha256(),
    }
}

fn rsa_sign(key: &Key, md: MessageDigest, input: &[u8]) -> Vec<u8> {
    let mut signer = Signer::new(md, &key.private).unwrap();
    signer.sign_oneshot_to_vec(input).unwrap()
}

/// The raw RSA private operation over a hand-built encoded message.
fn em_sign(key: &Key, em: Em, input: &str) -> Vec<u8> {
    const SHA256_DI: [u8; 19] = [
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    const SHA256_DI_NO_NULL: [u8; 17] = [
        0x30, 0x2f, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x04, 0x20,
    ];
    const SHA256_DI_LONG: [u8; 20] = [
        0x30, 0x81, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
        0x01, 0x05, 0x00, 0x04, 0x20,
    ];
    const SHA1_DI: [u8; 15] = [
        0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
    ];
    let sha256 = |data: &[u8]| hash(MessageDigest::sha256(), data).unwrap().to_vec();
    let h256 = sha256(input.as_bytes());
    let t: Vec<u8> = match em {
        Em::NoNullParams => [&SHA256_DI_NO_NULL[..], &h256].concat(),
        Em::Sha1DigestInfo => {
            let h1 = hash(MessageDigest::sha1(), input.as_bytes()).unwrap();
            [&SHA1_DI[..], &h1].concat()
        }
        Em::LongFormLength => [&SHA256_DI_LONG[..], &h256].concat(),
        Em::DigestOfHeaderOnly => {
            let header = input.split('.').next().unwrap();
            [&SHA256_DI[..], &sha256(header.as_bytes())].concat()
        }
        _ => [&SHA256_DI[..], &h256].concat(),
    };
    let k = 256;
    let mut block = vec![0x00, 0x01];
    let garbage = matches!(em, Em::GarbageAfterDigest);
    let ps_len = k - 3 - t.len() - if garbage { 4 } else { 0 };
    block.extend(std::iter::repeat_n(0xff, ps_len));
    block.push(0x00);
    block.extend(&t);
    if garbage {
        block.extend([0xde, 0xad, 0xbe, 0xef]);
    }
    match em {
        Em::ZeroInPadding => block[50] = 0x00,
        Em::BlockType2 => block[1] = 0x02,
        Em::PaddingNotFf => block[2..2 + ps_len].fill(0x5a),
        Em::LeadingOne => block[0] = 0x01,
        _ => {}
    }
    assert_eq!(block.len(), k);
    let rsa = key.private.rsa().unwrap();
    let mut out = vec![0; k];
    let n = rsa
        .private_encrypt(&block, &mut out, Padding::NONE)
        .unwrap();
    out.truncate(n);
    out
}

fn signature(recipe: &Recipe, input: &str, keys: &Keys) -> Vec<u8> {
    let good = || {
        let md = match header_alg(&recipe.header).as_deref() {
            Some("RS384") => MessageDigest::sha384(),
            Some("RS512") => MessageDigest::sha512(),
            _ => MessageDigest::sha256(),
        };
        rsa_sign(&keys.main, md, input.as_bytes())
    };
    match &recipe.signature {
        Sig::Good => good(),
        Sig::Hash(name) => rsa_sign(&keys.main, digest(name), input.as_bytes()),
        Sig::FlipBit(byte, bit) => {
            let mut s = good();
            let i = if *byte < 0 {
                s.len() - byte.unsigned_abs() as usize
            } else {
                *byte as usize
            };
            s[i] ^= 1 << bit;
            s
        }
        Sig::Truncate(n) => good()[..*n].to_vec(),
        Sig::DropFirstByte => good()[1..].to_vec(),
        Sig::PrependZero => [vec![0], good()].concat(),
        Sig::AppendZero => [good(), vec![0]].concat(),
        Sig::Empty => vec![],
        Sig::OtherKey => rsa_sign(&keys.other, MessageDigest::sha256(), input.as_bytes()),
        Sig::HmacWithPem => {
            let pkey = PKey::hmac(keys.pem.as_bytes()).unwrap();
            let mut signer = Signer::new(MessageDigest::sha256(), &pkey).unwrap();
            signer.sign_oneshot_to_vec(input.as_bytes()).unwrap()
        }
        Sig::Em(em) => em_sign(&keys.main, *em, input),
        Sig::Zeros => vec![0; 256],
        Sig::Ones => vec![0xff; 256],
        Sig::Modulus => keys.main.private.rsa().unwrap().n().to_vec(),
        Sig::One => {
            let mut v = vec![0; 256];
            v[255] = 1;
            v
        }
    }
}

/// Makes the token a recipe describes.
fn build(recipe: &Recipe, keys: &Keys) -> String {
    // Non-canonical trailing bits need a length that leaves unused bits:
    // a trailing JSON space makes one when the length is a multiple of 3.
    let bytes = |doc: &Doc, seg: Seg| {
        let mut bytes = doc.bytes();
        let trailing = |e: &Enc| matches!(e, Enc::TrailingBits(s) if *s == seg);
        if bytes.len().is_multiple_of(3) && recipe.encodings.iter().any(trailing) {
            bytes.push(b' ');
        }
        bytes
    };
    let mut h = URL_SAFE_NO_PAD.encode(bytes(&recipe.header, Seg::Header));
    let mut p = URL_SAFE_NO_PAD.encode(bytes(&recipe.payload, Seg::Payload));
    // Header and payload changes come before signing ...
    for enc in &recipe.encodings {
        match (enc, enc_segment(enc)) {
            (Enc::PadAfterSigning(_), _) => {}
            (_, Some(Seg::Header)) => encode_edit(&mut h, enc),
            (_, Some(Seg::Payload)) => encode_edit(&mut p, enc),
            _ => {}
        }
    }
    let input = format!("{h}.{p}");
    let mut s = URL_SAFE_NO_PAD.encode(signature(recipe, &input, keys));
    // ... the signature's and the token's after.
    let mut around = ("", "");
    let mut shape = None;
    for enc in &recipe.encodings {
        match (enc, enc_segment(enc)) {
            (Enc::PadAfterSigning(n), _) => h.push_str(&"=".repeat(*n)),
            (Enc::Around(before, after), _) => around = (before, after),
            (Enc::Shape(sh), _) => shape = Some(*sh),
            (_, Some(Seg::Signature)) => encode_edit(&mut s, enc),
            _ => {}
        }
    }
    let token = match shape {
        None => format!("{h}.{p}.{s}"),
        Some(Shape::NoSignature) => format!("{h}.{p}"),
        Some(Shape::NoSignatureKeepDot) => format!("{h}.{p}."),
        Some(Shape::ExtraEmptySegment) => format!("{h}.{p}.{s}."),
        Some(Shape::ExtraSegment) => format!("{h}.{p}.{s}.{s}"),
        Some(Shape::FiveSegments) => format!("{h}.{p}.{s}.{h}.{p}"),
        Some(Shape::OnlyHeader) => h,
        Some(Shape::Empty) => String::new(),
        Some(Shape::Dots) => "..".to_string(),
        Some(Shape::SwapHeaderAndPayload) => format!("{p}.{h}.{s}"),
    };
    format!("{}{token}{}", around.0, around.1)
}

// ---------------------------------------------------------------------------
// Generation: bases, the table of single edits, and seeded combinations.
// ---------------------------------------------------------------------------

/// One change to a recipe.
#[derive(Clone, Debug)]
enum Edit {
    /// Sets a header member to raw JSON, or removes it.
    Header(&'static str, Option<String>),
    /// Sets a claim to raw JSON, or removes it.
    Claim(&'static str, Option<String>),
    /// Sets a member to a raw value that is not I-JSON.
    QuirkyHeader(&'static str, String, Quirk),
    QuirkyClaim(&'static str, String, Quirk),
    /// Adds a second member (raw key, raw value) first (`true`, so that
    /// JavaScript sees the original, the last) or last.
    DupHeader(String, String, bool),
    DupClaim(String, String, bool),
    HeaderDoc(Doc),
    PayloadDoc(Doc),
    /// Writes both JSON objects with newlines, tabs and spaces.
    Spaced,
    /// Reverses the member order of both objects.
    Reorder,
    Encode(Enc),
    Sign(Sig),
}

impl Edit {
    fn apply(&self, r: &mut Recipe) {
        let dup = |obj: Option<&mut Obj>, key: &str, value: &str, first: bool| {
            if let Some(obj) = obj {
                let m = Member {
                    key: key.to_string(),
                    value: value.to_string(),
                    quirk: None,
                };
                if first {
                    obj.members.insert(0, m);
                } else {
                    obj.members.push(m);
                }
            }
        };
        match self {
            Edit::Header(name, v) => {
                if let Some(o) = r.header.obj_mut() {
                    o.set(name, v.as_deref(), None)
                }
            }
            Edit::Claim(name, v) => {
                if let Some(o) = r.payload.obj_mut() {
                    o.set(name, v.as_deref(), None)
                }
            }
            Edit::QuirkyHeader(name, v, q) => {
                if let Some(o) = r.header.obj_mut() {
                    o.set(name, Some(v), Some(*q))
                }
            }
            Edit::QuirkyClaim(name, v, q) => {
                if let Some(o) = r.payload.obj_mut() {
                    o.set(name, Some(v), Some(*q))
                }
            }
            Edit::DupHeader(k, v, first) => dup(r.header.obj_mut(), k, v, *first),
            Edit::DupClaim(k, v, first) => dup(r.payload.obj_mut(), k, v, *first),
            Edit::HeaderDoc(d) => r.header = d.clone(),
            Edit::PayloadDoc(d) => r.payload = d.clone(),
            Edit::Spaced => {
                for doc in [&mut r.header, &mut r.payload] {
                    if let Some(o) = doc.obj_mut() {
                        o.spaced = true;
                    }
                }
            }
            Edit::Reorder => {
                for doc in [&mut r.header, &mut r.payload] {
                    if let Some(o) = doc.obj_mut() {
                        o.members.reverse();
                    }
                }
            }
            Edit::Encode(e) => {
                // Make sure the text has characters that differ between the
                // alphabets: nine '?' always encode to a '_' somewhere.
                let doc = match e {
                    Enc::StdAlphabet(Seg::Header) => r.header.obj_mut(),
                    Enc::StdAlphabet(Seg::Payload) => r.payload.obj_mut(),
                    _ => None,
                };
                if let Some(o) = doc {
                    o.set("x", Some(&js("?????????")), None);
                }
                r.encodings.push(e.clone())
            }
            Edit::Sign(s) => r.signature = s.clone(),
        }
    }
}

fn session_header(with_cat: bool) -> Obj {
    let mut pairs = vec![
        ("alg", js("RS256")),
        ("kid", js("ins_2jwtgateDifferential")),
        ("typ", js("JWT")),
    ];
    if with_cat {
        pairs.push(("cat", js("cl_B7d4PD111AAA")));
    }
    Obj::of(&pairs)
}

/// The tokens every edit starts from: a Clerk v2 session token with an
/// active organization, a v1 token with top-level org claims, and the
/// least a token can carry.
fn bases(s: i64) -> Vec<(&'static str, Recipe)> {
    let recipe = |header: Obj, claims: Obj| Recipe {
        header: Doc::Obj(header),
        payload: Doc::Obj(claims),
        encodings: vec![],
        signature: Sig::Good,
    };
    let v2 = Obj::of(&[
        ("azp", js(AZP)),
        ("exp", (s + 60).to_string()),
        ("fea", js("o:dashboard,u:billing,o:teams")),
        ("fva", "[0,-1]".into()),
        ("iat", (s - 10).to_string()),
        ("iss", js(ISSUER)),
        ("jti", js("4b8c0e7f1a2d3e5f6a7b")),
        ("nbf", (s - 10).to_string()),
        (
            "o",
            r#"{"fpm":"3,2","id":"org_2acme","per":"manage,read","rol":"admin","slg":"acme"}"#
                .into(),
        ),
        ("pla", js("o:pro")),
        ("sid", js("sess_2abcdef")),
        ("sts", js("active")),
        ("sub", js("user_2abcdef")),
        ("v", "2".into()),
    ]);
    let v1 = Obj::of(&[
        ("azp", js(AZP)),
        ("exp", (s + 60).to_string()),
        ("iat", (s - 10).to_string()),
        ("iss", js(ISSUER)),
        ("nbf", (s - 10).to_string()),
        ("org_id", js("org_2acme")),
        (
            "org_permissions",
            r#"["org:dashboard:manage","org:teams:read"]"#.into(),
        ),
        ("org_role", js("org:admin")),
        ("org_slug", js("acme")),
        ("sid", js("sess_2v1")),
        ("sub", js("user_2v1")),
    ]);
    let minimal = Obj::of(&[("sub", js("user_min")), ("exp", (s + 60).to_string())]);
    vec![
        ("v2", recipe(session_header(true), v2)),
        ("v1", recipe(session_header(false), v1)),
        ("minimal", recipe(Obj::of(&[("alg", js("RS256"))]), minimal)),
    ]
}

/// Raw JSON values for a time claim: around now with every setup's leeway,
/// fractions, far past and future, beyond a JS `Date`, beyond f64, other
/// spellings, more digits than f64 holds, and wrong types.
fn time_values(s: i64, past: bool) -> Vec<String> {
    let mut v = Vec::new();
    let range = if past { -8..=3 } else { -3..=8 };
    for off in range {
        v.push((s + off).to_string());
        for frac in [".001", ".5", ".999"] {
            v.push(format!("{}{frac}", s + off));
        }
    }
    #[rustfmt::skip]
    let literals = [
        "0", "-0", "1", "-1", "0.5", "-0.5",
        // Beyond a JS Date (±8.64e12 s), and beyond f64.
        "1e20", "-1e20", "1e999", "-1e999", "8640000000000", "8640000000000.5", "8640000000001",
        "-8640000000000", "-8640000000001", "1.7976931348623157e308", "18446744073709551615",
        "9223372036854775807", "-9223372036854775808", "1e-400", "4.9e-324",
        // Not numbers.
        "null", "true", "[]", "{}",
    ];
    v.extend(literals.map(String::from));
    let far = if past { s + 60 } else { s - 10 };
    v.push(format!("{far}e0"));
    v.push(format!("{far}.000"));
    v.push(format!("{far}0e-1"));
    v.push(format!("{}E1", far / 10));
    v.push(js(&far.to_string()));
    v.push(format!("[{far}]"));
    // More significant digits than an f64 holds, just below a whole second,
    // at the seconds where the setups' boundaries are.
    for off in [-6, -5, -4, 0, 1, 4, 5, 6] {
        v.push(format!("{}.99999984", s + off - 1));
        v.push(format!("{}99999984e-8", s + off - 1));
        v.push(format!("{}.00000000000000000001", s + off));
    }
    v
}

/// Stands for "no such member" in the value lists below.
const ABSENT: &str = "<absent>";

/// Raw JSON texts from literals.
fn raw(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

/// One edit per value: `set("alg", Some(raw))` (or `None` for [`ABSENT`]).
fn each(
    t: &mut Vec<(String, Edit)>,
    part: &str,
    name: &'static str,
    values: Vec<String>,
    set: fn(&'static str, Option<String>) -> Edit,
) {
    for v in values {
        let shown: String = v.chars().take(40).collect();
        let label = match v.len() {
            0..=40 => format!("{part} {name}={v}"),
            n => format!("{part} {name}={shown}... ({n} bytes)"),
        };
        t.push((label, set(name, (v != ABSENT).then_some(v))));
    }
}

/// Every single edit, with a label.
fn edit_table(s: i64) -> Vec<(String, Edit)> {
    let mut t: Vec<(String, Edit)> = Vec::new();

    // Header fields.
    #[rustfmt::skip]
    let alg = raw(&[
        ABSENT, r#""none""#, r#""None""#, r#""HS256""#, r#""HS384""#, r#""HS512""#,
        r#""RS384""#, r#""RS512""#, r#""ES256""#, r#""PS256""#, r#""EdDSA""#, r#""rs256""#,
        r#""RS256 ""#, r#""""#, "null", "256", r#"["RS256"]"#, r#"{"alg":"RS256"}"#,
    ]);
    each(&mut t, "header", "alg", alg, Edit::Header);
    #[rustfmt::skip]
    let typ = raw(&[
        ABSENT, r#""JWT""#, r#""jwt""#, r#""Jwt""#, r#""JWS""#, r#""at+jwt""#,
        r#""application/at+jwt""#, r#""application/jwt""#, r#""JWT ""#, r#""""#, "null", "1",
        "true", r#"["JWT"]"#, r#"{"typ":"JWT"}"#,
    ]);
    each(&mut t, "header", "typ", typ, Edit::Header);
    let mut kid = raw(&[ABSENT, "null", "7", "1.5", "true", "[]", "{}"]);
    kid.extend([
        js("ins_other"),
        js(""),
        js(&"k".repeat(256)),
        js(&"k".repeat(257)),
        js(&"k".repeat(5000)),
        js(&"\u{3ba}".repeat(128)), // 256 bytes
        js(&"\u{3ba}".repeat(129)), // 258 bytes, 129 characters
        js("../../etc/passwd"),
        js("ins\0x"),
        js("ins\r\nX-Injected: 1"),
    ]);
    each(&mut t, "header", "kid", kid, Edit::Header);
    #[rustfmt::skip]
    let cat = raw(&[
        ABSENT, r#""cl_B7d4PD111AAA""#, r#""cl_I7d4PD111III""#, r#""cl_B7d4PD222AAA""#,
        r#""cl_B7d4PD333AAA""#, r#""CL_B7D4PD111AAA""#, r#""""#, r#""unknown""#, "null", "1",
        r#"["cl_B7d4PD111AAA"]"#,
    ]);
    each(&mut t, "header", "cat", cat, Edit::Header);
    let crit = raw(&[
        r#"["exp"]"#,
        "[]",
        r#"["b64"]"#,
        r#""exp""#,
        "null",
        r#"["cat"]"#,
    ]);
    each(&mut t, "header", "crit", crit, Edit::Header);
    // Members jwtgate never reads (the key-carrying ones included).
    let extras = [
        ("jku", js("https://evil.example/jwks.json")),
        ("x5u", js("https://evil.example/cert.pem")),
        ("jwk", r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#.into()),
        ("x5c", r#"["MIIB"]"#.into()),
        ("b64", "false".into()),
        ("zip", js("DEF")),
        ("cty", js("JWT")),
        ("x", r#"{"a":[1,2,{"b":null}]}"#.into()),
        ("x", r#""a\ud800""#.into()),
        ("x", "1e999".into()),
    ];
    for (k, v) in extras {
        t.push((format!("header +{k}={v}"), Edit::DupHeader(js(k), v, false)));
    }
    t.push((
        "header kid lone surrogate".into(),
        Edit::QuirkyHeader("kid", r#""ins\ud800""#.into(), Quirk::LoneSurrogate),
    ));
    // Repeated members. `true` puts the repeat first, so that JavaScript
    // (the last one wins) sees the original.
    let repeats = [
        ("alg", r#""RS256""#, false),
        ("alg", r#""HS256""#, true),
        ("alg", r#""HS256""#, false),
        ("alg", r#""none""#, true),
        ("typ", r#""jwt""#, true),
        ("typ", r#""JWT""#, false),
        ("kid", r#""ins_a""#, false),
        ("kid", "7", true),
        ("cat", r#""cl_B7d4PD333AAA""#, true),
        ("cat", r#""cl_B7d4PD333AAA""#, false),
        ("crit", r#"["exp"]"#, false),
        ("jku", r#""https://a""#, false),
    ];
    for (k, v, first) in repeats {
        let at = if first { "first" } else { "last" };
        t.push((
            format!("header repeated {k}={v} {at}"),
            Edit::DupHeader(js(k), v.into(), first),
        ));
    }
    t.push((
        r"header repeated alg spelled \u0061lg".into(),
        Edit::DupHeader(r#""\u0061lg""#.into(), js("RS256"), false),
    ));

    // Claims: presence, type and value.
    let mut sub = raw(&[ABSENT, "null", "1", "true", "[]", r#"["user_1"]"#, "{}"]);
    sub.extend([
        js(""),
        js("user_other"),
        js(&"u".repeat(1024)),
        js(&"u".repeat(1025)),
        js(" user"),
        js("user "),
        js("user\n"),
        js("user\r\nX-Admin: 1"),
        js("user\0"),
        js("user\u{7f}"),
        js("user\u{85}"),
        js("us\u{a0}er"),
        js("\u{a0}user"),
        js("user\u{2028}x"),
        js("\u{3000}"),
        js("mch_machine"),
        js("\u{fc}ser_\u{1f600}"),
        r#""\u0075ser_escaped""#.into(),
    ]);
    each(&mut t, "claim", "sub", sub, Edit::Claim);
    t.push((
        "claim sub lone surrogate".into(),
        Edit::QuirkyClaim("sub", r#""user\ud800""#.into(), Quirk::LoneSurrogate),
    ));
    let mut sid = raw(&[ABSENT, "null", "5", "true", r#"["sess_1"]"#, "{}"]);
    sid.extend([js(""), js("sess\n"), js(&"s".repeat(1025)), js(" sess")]);
    sid.push(format!("{}1{}", "[".repeat(3000), "]".repeat(3000)));
    each(&mut t, "claim", "sid", sid, Edit::Claim);
    for (name, past) in [("exp", true), ("nbf", false), ("iat", false)] {
        let (overflowing, plain): (Vec<String>, Vec<String>) = time_values(s, past)
            .into_iter()
            .partition(|v| v.ends_with("1e999"));
        each(&mut t, "claim", name, plain, Edit::Claim);
        each(&mut t, "claim", name, vec![ABSENT.into()], Edit::Claim);
        for v in overflowing {
            let label = format!("claim {name}={v}");
            t.push((label, Edit::QuirkyClaim(name, v, Quirk::NumberOverflow)));
        }
    }
    let mut iss = raw(&[ABSENT, "null", "1"]);
    iss.extend([
        js(""),
        format!("[{}]", js(ISSUER)),
        js(&format!("{ISSUER}/")),
        js(&ISSUER.to_uppercase()),
        js(&format!("{ISSUER} ")),
        js(&ISSUER.replace("https", "http")),
        js(&format!("{ISSUER}.evil")),
        js("https://clerk.attacker.com"),
        format!("{{\"iss\":{}}}", js(ISSUER)),
        js(&format!("{ISSUER}\n")),
    ]);
    each(&mut t, "claim", "iss", iss, Edit::Claim);
    let mut azp = raw(&[ABSENT, "null", "0", "false", "true"]);
    azp.extend([
        js(""),
        format!("[{}]", js(AZP)),
        js(&format!("{AZP}/")),
        js(&AZP.to_uppercase()),
        js("http://localhost:3000"),
        js("https://app.example.com:443"),
        js("app.example.com"),
        format!("{{\"azp\":{}}}", js(AZP)),
        js(&format!("{AZP}\r\n")),
    ]);
    each(&mut t, "claim", "azp", azp, Edit::Claim);
    let aud = raw(&[
        r#""https://api.example.com""#,
        r#"["a","b"]"#,
        "5",
        "null",
        r#""""#,
    ]);
    each(&mut t, "claim", "aud", aud, Edit::Claim);
    #[rustfmt::skip]
    let sts = raw(&[
        ABSENT, r#""active""#, r#""pending""#, r#""Pending""#, r#""pending ""#, "null", "1",
        r#"["pending"]"#, r#""""#,
    ]);
    each(&mut t, "claim", "sts", sts, Edit::Claim);
    let v = raw(&[ABSENT, "1", "2", "2.0", r#""2""#, "null", "3", "-1", "[2]"]);
    each(&mut t, "claim", "v", v, Edit::Claim);
    t.push((
        "claim v=1e999".into(),
        Edit::QuirkyClaim("v", "1e999".into(), Quirk::NumberOverflow),
    ));
    #[rustfmt::skip]
    let mut o = raw(&[
        ABSENT, "null", "{}", "[]", r#""org_2acme""#, "5",
        r#"{"id":5}"#, r#"{"id":null,"slg":"acme"}"#, r#"{"id":"org\n1"}"#, r#"{"id":" org"}"#,
        r#"{"slg":1}"#, r#"{"slg":["a"]}"#,
        r#"{"rol":"admin"}"#, r#"{"rol":""}"#, r#"{"rol":" admin"}"#, r#"{"rol":"admin "}"#,
        r#"{"rol":["admin"]}"#, r#"{"rol":"ad\u0000min"}"#,
        r#"{"id":"org_1","per":1,"fpm":"1"}"#, r#"{"id":"org_1","per":"read","fpm":[1]}"#,
        r#"{"id":"org_1","per":"read\n","fpm":"1"}"#,
        r#"{"id":"org_1","per":"read,write","fpm":"x,99999999999999999999999999999999999999"}"#,
        r#"{"id":"org_1","id":"org_2"}"#,
    ]);
    o.extend([
        format!(r#"{{"id":"org_1","slg":"{}"}}"#, "x".repeat(1025)),
        format!(
            r#"{{"id":"{}","slg":"{}","rol":"{}"}}"#,
            "i".repeat(1000),
            "s".repeat(1000),
            "r".repeat(1000)
        ),
        format!(
            r#"{{"id":"org_1","x":{}1{}}}"#,
            "[".repeat(3000),
            "]".repeat(3000)
        ),
    ]);
    each(&mut t, "claim", "o", o, Edit::Claim);
    t.push((
        "claim o.id lone surrogate".into(),
        Edit::QuirkyClaim("o", r#"{"id":"org\udc00"}"#.into(), Quirk::LoneSurrogate),
    ));
    #[rustfmt::skip]
    let fea = raw(&[
        ABSENT, "null", r#""""#, "5", r#"["o:a"]"#, r#""nocolon""#, r#""o:a\n""#, r#""u:only""#,
    ]);
    each(&mut t, "claim", "fea", fea, Edit::Claim);
    let org_id = raw(&[
        ABSENT,
        "null",
        r#""org_9""#,
        "5",
        r#""org\t9""#,
        r#"["org"]"#,
    ]);
    each(&mut t, "claim", "org_id", org_id, Edit::Claim);
    let org_slug = raw(&[ABSENT, r#""s""#, "true", r#""s\r""#, r#"" s""#]);
    each(&mut t, "claim", "org_slug", org_slug, Edit::Claim);
    let org_role = raw(&[ABSENT, r#""org:member""#, "1", r#""""#, r#""org:\u0000""#]);
    each(&mut t, "claim", "org_role", org_role, Edit::Claim);
    #[rustfmt::skip]
    let org_permissions = raw(&[
        ABSENT, "null", "[]", r#"["org:a:read"]"#, r#""org:a:read""#, "[1]",
        r#"["org:a:read",null]"#, "{}", r#"["org:a:read\n"]"#,
    ]);
    each(
        &mut t,
        "claim",
        "org_permissions",
        org_permissions,
        Edit::Claim,
    );
    #[rustfmt::skip]
    let act = raw(&[
        ABSENT, "null", "{}", r#"{"sub":"user_admin"}"#, r#""user_admin""#, "5", "[]",
        r#"{"sub":5}"#, r#"{"sub":"x\r\n"}"#, r#"{"sub":null,"iss":"https://dashboard.clerk.com"}"#,
    ]);
    each(&mut t, "claim", "act", act, Edit::Claim);
    // Claims jwtgate ignores: anything goes, for both.
    let ignored = [
        ("jti", "5".to_string()),
        ("fva", js("x")),
        ("pla", "{}".into()),
        ("custom", "1e999".into()),
        ("custom", r#""a\ud800""#.into()),
        (
            "custom",
            format!("{}1{}", "[".repeat(3000), "]".repeat(3000)),
        ),
        ("custom", js(&"c".repeat(9000))),
        ("custom", js(&"c".repeat(13000))),
        ("__proto__", r#"{"sub":1,"exp":1}"#.into()),
        ("constructor", "1".into()),
        (
            "metadata",
            r#"{"role":"admin","n":[1,2.5,-3e10,null,true]}"#.into(),
        ),
    ];
    for (k, v) in ignored {
        let shown: String = v.chars().take(20).collect();
        t.push((
            format!("claim +{k}={shown} ({} bytes)", v.len()),
            Edit::DupClaim(js(k), v, false),
        ));
    }
    // Repeated claims (`true`: the repeat first, JavaScript sees the original).
    let repeats = [
        ("sub", js("user_2abcdef"), false),
        ("sub", js(""), true),
        ("sub", "1".into(), false),
        ("exp", (s - 3600).to_string(), true),
        ("exp", (s - 3600).to_string(), false),
        ("nbf", (s + 3600).to_string(), true),
        ("iat", (s + 3600).to_string(), true),
        ("iss", js("https://evil"), true),
        ("azp", js("https://evil"), true),
        ("sts", js("pending"), true),
        ("sid", "5".into(), true),
        ("v", "1".into(), true),
        ("o", "5".into(), true),
        ("act", r#"{"sub":"user_x"}"#.into(), false),
        ("org_id", js("org_x"), true),
        ("jti", js("j2"), false),
        ("custom", "1".into(), false),
    ];
    for (k, v, first) in repeats {
        let at = if first { "first" } else { "last" };
        t.push((
            format!("claim repeated {k}={v} {at}"),
            Edit::DupClaim(js(k), v, first),
        ));
    }
    t.push((
        r"claim repeated sub spelled \u0073ub".into(),
        Edit::DupClaim(r#""\u0073ub""#.into(), js("user_2abcdef"), true),
    ));
    t.push(("JSON spaced".into(), Edit::Spaced));
    t.push(("JSON reordered".into(), Edit::Reorder));

    // Whole header / payload texts.
    for (part, name, text, kind) in doc_texts(s) {
        let doc = Doc::Text(text, kind);
        let edit = match part {
            Seg::Header => Edit::HeaderDoc(doc),
            _ => Edit::PayloadDoc(doc),
        };
        t.push((format!("{part:?} text {name}"), edit));
    }

    // Encoding.
    for seg in [Seg::Header, Seg::Payload, Seg::Signature] {
        let mut encs: Vec<Enc> = (1..=4).map(|n| Enc::Pad(seg, n)).collect();
        encs.extend([
            Enc::StdAlphabet(seg),
            Enc::TrailingBits(seg),
            Enc::ExtraChar(seg),
        ]);
        for (at, c) in [
            (0, ' '),
            (1, ' '),
            (2, '\n'),
            (1, '\t'),
            (2, '\r'),
            (1, '!'),
            (1, '\u{e9}'),
            (1, '*'),
        ] {
            encs.push(Enc::Insert(seg, at, c));
        }
        for enc in encs {
            t.push((format!("encode {enc:?}"), Edit::Encode(enc)));
        }
    }
    let mut encs = vec![Enc::PadAfterSigning(2)];
    for (before, after) in [
        ("", "\n"),
        (" ", ""),
        ("", " "),
        ("\t", ""),
        ("Bearer ", ""),
        ("\"", "\""),
    ] {
        encs.push(Enc::Around(before, after));
    }
    for shape in [
        Shape::NoSignature,
        Shape::NoSignatureKeepDot,
        Shape::ExtraEmptySegment,
        Shape::ExtraSegment,
        Shape::FiveSegments,
        Shape::OnlyHeader,
        Shape::Empty,
        Shape::Dots,
        Shape::SwapHeaderAndPayload,
    ] {
        encs.push(Enc::Shape(shape));
    }
    for enc in encs {
        t.push((format!("encode {enc:?}"), Edit::Encode(enc)));
    }

    // Signature.
    let mut sigs = vec![
        Sig::Hash("sha1"),
        Sig::Hash("sha256"),
        Sig::Hash("sha384"),
        Sig::Hash("sha512"),
        Sig::FlipBit(0, 0),
        Sig::FlipBit(0, 7),
        Sig::FlipBit(128, 3),
        Sig::FlipBit(-1, 0),
        Sig::FlipBit(-1, 7),
        Sig::Truncate(255),
        Sig::Truncate(128),
        Sig::Truncate(1),
        Sig::DropFirstByte,
        Sig::PrependZero,
        Sig::AppendZero,
        Sig::Empty,
        Sig::OtherKey,
        Sig::HmacWithPem,
        Sig::Zeros,
        Sig::Ones,
        Sig::Modulus,
        Sig::One,
    ];
    sigs.extend(
        [
            Em::Correct,
            Em::NoNullParams,
            Em::Sha1DigestInfo,
            Em::LongFormLength,
            Em::GarbageAfterDigest,
            Em::ZeroInPadding,
            Em::BlockType2,
            Em::PaddingNotFf,
            Em::LeadingOne,
            Em::DigestOfHeaderOnly,
        ]
        .map(Sig::Em),
    );
    for sig in sigs {
        t.push((format!("signature {sig:?}"), Edit::Sign(sig)));
    }
    t
}

/// Headers and payloads written as raw bytes: (part, name, bytes, kind).
fn doc_texts(s: i64) -> Vec<(Seg, String, Vec<u8>, TextKind)> {
    use TextKind::*;
    let (exp, nbf) = (s + 60, s - 10);
    let claims = format!(
        r#"{{"sub":"user_text","sid":"sess_text","iss":"{ISSUER}","azp":"{AZP}",{}}}"#,
        format_args!(r#""exp":{exp},"nbf":{nbf},"iat":{nbf}"#)
    );
    let header = r#"{"alg":"RS256","typ":"JWT","kid":"ins_text"}"#.to_string();
    // `json` with `bytes` inserted right after the first `at`.
    let with = |json: &str, at: &str, bytes: &[u8]| -> Vec<u8> {
        let i = json.find(at).unwrap() + at.len();
        [&json.as_bytes()[..i], bytes, &json.as_bytes()[i..]].concat()
    };
    let bom = [0xef, 0xbb, 0xbf];
    let mut v = Vec::new();
    for (part, json) in [(Seg::Header, &header), (Seg::Payload, &claims)] {
        #[rustfmt::skip]
        let broken = [
            "null", "[]", "[1,2]", "\"str\"", "1", "true", "", "{", "{}x", "{\"a\":1,}",
            "{'a':1}", "NaN", "{\"a\":NaN}", "{\"a\":01}", "{\"a\":+1}", "{\"a\":.5}", "{\"a\":1.}",
        ];
        for b in broken {
            v.push((part, format!("{b:?}"), b.as_bytes().to_vec(), NotAnObject));
        }
        let texts: [(&str, Vec<u8>, TextKind); 14] = [
            ("plain", json.as_bytes().to_vec(), Object),
            ("leading spaces", format!(" \t\r\n{json}").into(), Object),
            ("trailing spaces", format!("{json} \n").into(), Object),
            (
                "leading form feed",
                format!("\x0c{json}").into(),
                NotAnObject,
            ),
            ("leading NUL", format!("\0{json}").into(), NotAnObject),
            ("trailing garbage", format!("{json}x").into(), NotAnObject),
            ("two objects", format!("{json}{json}").into(), NotAnObject),
            ("comment", format!("/*c*/{json}").into(), NotAnObject),
            ("BOM", [&bom, json.as_bytes()].concat(), BomThenObject),
            (
                "double BOM",
                [&bom, &bom, json.as_bytes()].concat(),
                NotAnObject,
            ),
            (
                "UTF-16",
                json.encode_utf16().flat_map(u16::to_le_bytes).collect(),
                NotAnObject,
            ),
            (
                "invalid UTF-8 in an ignored value",
                with(json, "{", b"\"x\":\"\xff\xfe\","),
                InvalidUtf8Ignored,
            ),
            (
                "overlong UTF-8 in an ignored value",
                with(json, "{", b"\"x\":\"\xc0\xaf\","),
                InvalidUtf8Ignored,
            ),
            (
                "invalid UTF-8 in a key",
                with(json, "{", b"\"x\xff\":1,"),
                InvalidUtf8Read,
            ),
        ];
        for (name, bytes, kind) in texts {
            v.push((part, name.to_string(), bytes, kind));
        }
    }
    let read = [
        (Seg::Payload, "sub", with(&claims, "\"user_text", b"\xff")),
        (Seg::Payload, "iss", with(&claims, ISSUER, b"\xc3")),
        (
            Seg::Payload,
            "sid",
            with(&claims, "\"sess_text", b"\xed\xa0\x80"),
        ),
        (Seg::Header, "kid", with(&header, "\"ins_text", b"\xff")),
    ];
    for (part, name, bytes) in read {
        v.push((
            part,
            format!("invalid UTF-8 in {name}"),
            bytes,
            InvalidUtf8Read,
        ));
    }
    let tab = with(&header, "\"RS256", b"\t");
    v.push((Seg::Header, "raw tab in alg".into(), tab, NotAnObject));
    v
}

/// A small seeded PRNG (SplitMix64), so the combinations are the same on
/// every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Edits with values drawn at random: times near every boundary (with
/// milliseconds), valid-looking identities, random bit flips.
fn random_edit(rng: &mut Rng, s: i64) -> (String, Edit) {
    match rng.below(6) {
        0 | 1 => {
            let name = ["exp", "nbf", "iat"][rng.below(3)];
            let secs = s - 9 + rng.below(19) as i64;
            let value = match rng.below(3) {
                0 => secs.to_string(),
                1 => format!("{secs}.{:03}", rng.below(1000)),
                _ => format!("{secs}.{:06}", rng.below(1_000_000)),
            };
            (
                format!("claim {name}={value}"),
                Edit::Claim(name, Some(value)),
            )
        }
        2 => {
            let sub = format!("user_{:x}", rng.next());
            (
                format!("claim sub={sub}"),
                Edit::Claim("sub", Some(js(&sub))),
            )
        }
        3 => {
            let exp = s + 1 + rng.below(86_400) as i64;
            (
                format!("claim exp={exp}"),
                Edit::Claim("exp", Some(exp.to_string())),
            )
        }
        4 => {
            let byte = rng.below(256) as i32;
            let bit = rng.below(8) as u8;
            (
                format!("signature flip byte {byte} bit {bit}"),
                Edit::Sign(Sig::FlipBit(byte, bit)),
            )
        }
        _ => {
            let id = format!("org_{:x}", rng.next() % 0xffff);
            let o = format!(
                r#"{{"id":"{id}","slg":"s{}","rol":"member","per":"read","fpm":"1"}}"#,
                rng.below(100)
            );
            (format!("claim o={o}"), Edit::Claim("o", Some(o)))
        }
    }
}

/// All cases: every base with no edit and with each single edit, then
/// seeded combinations of one to three edits.
fn generate(keys: &Keys) -> Vec<Case> {
    let table = edit_table(NOW_S);
    let bases = bases(NOW_S);
    let mut cases = Vec::new();
    let mut push = |label: String, recipe: Recipe| {
        let token = build(&recipe, keys);
        cases.push(Case {
            label,
            recipe,
            token,
        });
    };
    for (base_name, base) in &bases {
        push(format!("{base_name}: valid"), base.clone());
        for (label, edit) in &table {
            let mut r = base.clone();
            edit.apply(&mut r);
            push(format!("{base_name}: {label}"), r);
        }
    }
    // A good signature that starts with a zero byte, sent whole and without
    // that byte: a verifier that left-pads short signatures would accept both.
    let (_, v2) = &bases[0];
    let mut r = v2.clone();
    for nonce in 0.. {
        let jti = format!("leading-zero-{nonce}");
        Edit::Claim("jti", Some(js(&jti))).apply(&mut r);
        let token = build(&r, keys);
        let sig = URL_SAFE_NO_PAD
            .decode(token.rsplit('.').next().unwrap())
            .unwrap();
        if sig[0] == 0 {
            push(
                format!("v2: signature starting with 0x00, jti={jti}"),
                r.clone(),
            );
            Edit::Sign(Sig::DropFirstByte).apply(&mut r);
            push(
                format!("v2: signature starting with 0x00, jti={jti}, that byte dropped"),
                r,
            );
            break;
        }
    }
    let mut rng = Rng(SEED);
    for _ in 0..COMBINATIONS {
        let (base_name, base) = &bases[rng.below(2)];
        let mut r = base.clone();
        let mut labels = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let (label, edit) = if rng.below(3) == 0 {
                random_edit(&mut rng, NOW_S)
            } else {
                table[rng.below(table.len())].clone()
            };
            edit.apply(&mut r);
            labels.push(label);
        }
        push(format!("{base_name}: {}", labels.join(" + ")), r);
    }
    cases
}

// ---------------------------------------------------------------------------
// The exception list: where jwtgate is stricter than Clerk's verifyToken on
// purpose, decided from the recipe alone.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Strict {
    Padding,
    Crit,
    NonSessionCategory,
    BadKid,
    DuplicateMember,
    TimeBeyondJsDate,
    EmptySub,
    WrongTypeClaim,
    UnsafeClaimValue,
    Pending,
    NotIJson,
    ByteOrderMark,
    TooLarge,
}

impl Strict {
    const ALL: [Strict; 13] = [
        Strict::Padding,
        Strict::Crit,
        Strict::NonSessionCategory,
        Strict::BadKid,
        Strict::DuplicateMember,
        Strict::TimeBeyondJsDate,
        Strict::EmptySub,
        Strict::WrongTypeClaim,
        Strict::UnsafeClaimValue,
        Strict::Pending,
        Strict::NotIJson,
        Strict::ByteOrderMark,
        Strict::TooLarge,
    ];

    /// Why the difference is there, and why it is right (or, for the one
    /// bug, what to do).
    fn reason(self) -> &'static str {
        match self {
            Strict::Padding => {
                "`=` padding in a segment: RFC 7515 base64url has none; Clerk's decoder is loose"
            }
            Strict::Crit => {
                "a `crit` header: jwtgate implements no JWS extension, so RFC 7515 §4.1.11 says \
                 refuse; Clerk ignores crit"
            }
            Strict::NonSessionCategory => {
                "`cat` neither absent nor a session category (template, unknown, non-string): \
                 authenticateRequest refuses these (token-type-mismatch); verifyToken only M2M"
            }
            Strict::BadKid => {
                "`kid` not a string or over 256 bytes: a bounded lookup key; Clerk ignores kid \
                 with a PEM key"
            }
            Strict::DuplicateMember => {
                "a header field or claim jwtgate reads appears twice (or a key inside one): JS \
                 takes the last, other parsers the first"
            }
            Strict::TimeBeyondJsDate => {
                "exp/nbf/iat beyond ±8.64e12 s (1e20, 1e999, u64 max): a JS Date becomes \
                 Invalid Date and Clerk silently skips the check"
            }
            Strict::EmptySub => "`sub` is the empty string: it names nobody",
            Strict::WrongTypeClaim => {
                "sid, org (v1 org_*, v2 o/fea) or act claims of the wrong JSON type: jwtgate \
                 maps them to headers"
            }
            Strict::UnsafeClaimValue => {
                "a claim that becomes a header has a control character, edge whitespace or over \
                 1 KiB (or the block is over 3 KiB)"
            }
            Strict::Pending => {
                "`sts: \"pending\"`: verifyToken accepts it, but authenticateRequest's toAuth() \
                 treats it as signed out"
            }
            Strict::NotIJson => {
                "a member jwtgate reads (or any member name) is not I-JSON, RFC 7493: invalid \
                 UTF-8, a lone surrogate escape, a number beyond f64; JS makes U+FFFD or Infinity"
            }
            Strict::ByteOrderMark => {
                "a UTF-8 byte order mark before the JSON: RFC 8259 §8.1 forbids sending one; \
                 TextDecoder silently drops it"
            }
            Strict::TooLarge => "over verify.max_token_bytes (16 KiB): refused unparsed",
        }
    }

    /// The jwtgate refusals this category explains: a token of the category
    /// that jwtgate refuses for any other reason while Clerk accepts it is
    /// still a difference.
    fn explains(self, jwtgate_reason: &str) -> bool {
        let reasons: &[&str] = match self {
            Strict::Padding
            | Strict::DuplicateMember
            | Strict::NotIJson
            | Strict::ByteOrderMark => &["token-invalid"],
            Strict::Crit => &["token-unsupported-crit"],
            Strict::NonSessionCategory => &["token-type-mismatch"],
            Strict::BadKid => &["token-invalid-kid"],
            // 1e999 is not even a number to jwtgate's parser.
            Strict::TimeBeyondJsDate => &[
                "token-invalid-exp",
                "token-invalid-nbf",
                "token-invalid-iat",
                "token-invalid",
            ],
            Strict::EmptySub => &["token-invalid-sub"],
            Strict::WrongTypeClaim => &["token-invalid-claim"],
            Strict::UnsafeClaimValue => &["token-unsafe-claim-value"],
            Strict::Pending => &["session-pending"],
            Strict::TooLarge => &["token-too-large"],
        };
        reasons.contains(&jwtgate_reason)
    }
}

/// Header fields jwtgate reads (`header.rs`).
const READ_HEADER: [&str; 5] = ["alg", "kid", "typ", "crit", "cat"];
/// Claims jwtgate reads (`claims.rs`).
const READ_CLAIMS: [&str; 19] = jwtgate::token::claims::CLAIM_NAMES;
const SESSION_CATEGORIES: [&str; 2] = ["cl_B7d4PD111AAA", "cl_I7d4PD111III"];
/// The JavaScript `Date` range, in seconds.
const JS_DATE_MAX_SECS: f64 = 8.64e12;

/// The exception categories a token falls in, from how it was made.
fn classify(case: &Case) -> BTreeSet<Strict> {
    let mut out = BTreeSet::new();
    let r = &case.recipe;
    if case.token.len() > MAX_TOKEN_BYTES {
        out.insert(Strict::TooLarge);
    }
    if r.encodings.iter().any(|e| matches!(e, Enc::Pad(..))) {
        out.insert(Strict::Padding);
    }
    for (doc, read) in [
        (&r.header, &READ_HEADER[..]),
        (&r.payload, &READ_CLAIMS[..]),
    ] {
        match doc {
            Doc::Text(_, TextKind::BomThenObject) => {
                out.insert(Strict::ByteOrderMark);
            }
            Doc::Text(_, TextKind::InvalidUtf8Read) => {
                out.insert(Strict::NotIJson);
            }
            Doc::Text(..) => {}
            Doc::Obj(o) => {
                for name in read {
                    let named = || o.members.iter().filter(|m| m.name() == *name);
                    let repeats_inside =
                        named().any(|m| m.json().is_some_and(|j| j.repeats_a_key()));
                    if named().count() > 1 || repeats_inside {
                        out.insert(Strict::DuplicateMember);
                    }
                    if named().any(|m| m.quirk.is_some()) {
                        out.insert(Strict::NotIJson);
                    }
                }
            }
        }
    }
    if let Some(h) = r.header.obj() {
        if h.count("crit") > 0 {
            out.insert(Strict::Crit);
        }
        if let Some(cat) = h.last("cat") {
            let session =
                matches!(cat.json(), Some(J::Str(c)) if SESSION_CATEGORIES.contains(&c.as_str()));
            if !session {
                out.insert(Strict::NonSessionCategory);
            }
        }
        for kid in h.members.iter().filter(|m| m.name() == "kid") {
            match kid.json() {
                Some(J::Str(k)) if k.len() <= 256 => {}
                _ => {
                    out.insert(Strict::BadKid);
                }
            }
        }
    }
    if let Some(c) = r.payload.obj() {
        for name in ["exp", "nbf", "iat"] {
            for m in c.members.iter().filter(|m| m.name() == name) {
                let text = m.value.trim();
                if let Ok(secs) = text.parse::<f64>() {
                    if secs.abs() > JS_DATE_MAX_SECS {
                        out.insert(Strict::TimeBeyondJsDate);
                    }
                }
            }
        }
        if c.last("sub").and_then(|m| m.json()) == Some(J::Str(String::new())) {
            out.insert(Strict::EmptySub);
        }
        if c.last("sts").and_then(|m| m.json()) == Some(J::Str("pending".into())) {
            out.insert(Strict::Pending);
        }
        identity_strictness(c, &mut out);
    }
    out
}

/// How jwtgate turns claims into headers (`identity.rs`, as documented):
/// strings or null only, and values safe in a header.
fn identity_strictness(c: &Obj, out: &mut BTreeSet<Strict>) {
    let get = |name: &str| c.last(name).and_then(Member::json);
    let mut rendered: Vec<String> = Vec::new();
    let mut wrong_type = false;
    let mut header = |v: Option<&J>, prefix: &str| match v {
        None | Some(J::Null) => {}
        Some(J::Str(s)) => rendered.push(format!("{prefix}{s}")),
        Some(_) => wrong_type = true,
    };
    if let Some(sub @ J::Str(_)) = get("sub") {
        header(Some(&sub), "");
    }
    header(get("sid").as_ref(), "");
    match get("act") {
        None | Some(J::Null) => {}
        Some(act @ J::Obj(_)) => header(act.get("sub"), ""),
        Some(_) => header(Some(&J::Other), ""),
    }
    if get("v") == Some(J::Num(2.0)) {
        match get("o") {
            None | Some(J::Null) => {}
            Some(o @ J::Obj(_)) => {
                header(o.get("id"), "");
                header(o.get("slg"), "");
                match o.get("rol") {
                    Some(J::Str(r)) if r.is_empty() => {}
                    rol => header(rol, "org:"),
                }
                // Not headers themselves, but read as strings; their text
                // ends up in X-Org-Permissions.
                header(o.get("per"), "");
                header(o.get("fpm"), "");
                header(get("fea").as_ref(), "");
            }
            Some(_) => header(Some(&J::Other), ""),
        }
    } else {
        for name in ["org_id", "org_slug", "org_role"] {
            header(get(name).as_ref(), "");
        }
        match get("org_permissions") {
            None | Some(J::Null) => {}
            Some(J::Arr(items)) if items.iter().all(|i| matches!(i, J::Str(_))) => {
                let joined: Vec<String> = items
                    .iter()
                    .filter_map(|i| match i {
                        J::Str(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                header(Some(&J::Str(joined.join(","))), "");
            }
            Some(_) => header(Some(&J::Other), ""),
        }
    }
    if wrong_type {
        out.insert(Strict::WrongTypeClaim);
    }
    let unsafe_value =
        |s: &String| s.len() > 1024 || s.chars().any(char::is_control) || s.trim() != s.as_str();
    let block: usize = rendered.iter().map(|s| s.len() + 20).sum();
    if rendered.iter().any(unsafe_value) || block > 3072 {
        out.insert(Strict::UnsafeClaimValue);
    }
}

/// A JSON value read one level deep (deeper content skipped, so any nesting
/// reads without recursion), keeping repeated keys: how the classifier
/// looks at a member the generator wrote.
#[derive(Clone, Debug, PartialEq)]
enum J {
    Null,
    Num(f64),
    Str(String),
    /// A boolean, or an array or object nested deeper than one level.
    Other,
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn get(&self, key: &str) -> Option<&J> {
        match self {
            J::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn repeats_a_key(&self) -> bool {
        let J::Obj(members) = self else {
            return false;
        };
        let keys: BTreeSet<&String> = members.iter().map(|(k, _)| k).collect();
        keys.len() < members.len()
    }
}

/// Reads a [`J`] that may still open this many levels.
struct Depth(u8);

impl<'de> serde::de::DeserializeSeed<'de> for Depth {
    type Value = J;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<J, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Depth {
    type Value = J;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_unit<E>(self) -> Result<J, E> {
        Ok(J::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<J, E> {
        Ok(J::Other)
    }
    fn visit_i64<E>(self, v: i64) -> Result<J, E> {
        Ok(J::Num(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<J, E> {
        Ok(J::Num(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<J, E> {
        Ok(J::Num(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<J, E> {
        Ok(J::Str(v.to_string()))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<J, A::Error> {
        let mut items = Vec::new();
        if self.0 == 0 {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            return Ok(J::Other);
        }
        while let Some(item) = seq.next_element_seed(Depth(self.0 - 1))? {
            items.push(item);
        }
        Ok(J::Arr(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<J, A::Error> {
        let mut members = Vec::new();
        if self.0 == 0 {
            while map
                .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                .is_some()
            {}
            return Ok(J::Other);
        }
        while let Some(key) = map.next_key::<String>()? {
            members.push((key, map.next_value_seed(Depth(self.0 - 1))?));
        }
        Ok(J::Obj(members))
    }
}

// ---------------------------------------------------------------------------
// The Node bridge: Clerk's decision for every (token, setup).
// ---------------------------------------------------------------------------

#[derive(Debug, serde::Deserialize)]
struct ClerkDecision {
    ok: bool,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Runs `tests/clerk/verify.mjs` once over all queries; returns the version
/// line and one decision per query, in order. Fails loudly, naming the
/// command to run, when Node or the pinned package is missing.
fn clerk_decide(pem: &str, queries: &[(&str, &Setup)]) -> (String, Vec<ClerkDecision>) {
    const FIX: &str = "run `npm ci --prefix tests/clerk`";
    let dir = repo_path("tests/clerk");
    let node = Command::new("node").arg("--version").output();
    match node {
        Ok(out) if out.status.success() => {}
        _ => panic!(
            "`node` is not installed or does not run: install Node.js >= 20 and npm, then {FIX}"
        ),
    }
    let pinned = read_json(&dir.join("package.json"))["dependencies"]["@clerk/backend"]
        .as_str()
        .expect("tests/clerk/package.json pins @clerk/backend")
        .to_string();
    let installed_file = dir.join("node_modules/@clerk/backend/package.json");
    assert!(
        installed_file.is_file(),
        "tests/clerk/node_modules is missing @clerk/backend: {FIX}"
    );
    let installed = read_json(&installed_file)["version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        installed, pinned,
        "tests/clerk/node_modules has @clerk/backend {installed}, the lock pins {pinned}: {FIX}"
    );

    let tmp = TempDir::new("clerk-differential");
    let input = tmp.path("queries.jsonl");
    let mut text = json!({ "jwtKey": pem }).to_string();
    for (token, setup) in queries {
        text.push('\n');
        let line = json!({"token": token, "nowMs": setup.now_ms, "options": clerk_options(setup)});
        text.push_str(&line.to_string());
    }
    text.push('\n');
    std::fs::write(&input, text).unwrap();
    let out = Command::new("node")
        .arg(dir.join("verify.mjs"))
        .arg(&input)
        .output()
        .expect("run node tests/clerk/verify.mjs");
    assert!(
        out.status.success(),
        "node tests/clerk/verify.mjs failed ({}): {}\nIf a module is missing: {FIX}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    let versions = lines.next().unwrap_or_default().to_string();
    let decisions: Vec<ClerkDecision> = lines
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line from node: {e}: {l}")))
        .collect();
    assert_eq!(
        decisions.len(),
        queries.len(),
        "one answer per token from node"
    );
    (versions, decisions)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

// ---------------------------------------------------------------------------
// The comparison.
// ---------------------------------------------------------------------------

/// How one decision compares.
enum Verdict {
    Agree,
    /// jwtgate refuses, Clerk accepts, and these categories explain it.
    Stricter(Vec<Strict>),
    /// Anything else: the test fails.
    Differ,
}

fn judge(
    categories: &BTreeSet<Strict>,
    jwtgate: Result<(), &str>,
    clerk: &ClerkDecision,
) -> Verdict {
    let pick = |keep: &dyn Fn(Strict) -> bool| -> Vec<Strict> {
        categories.iter().copied().filter(|c| keep(*c)).collect()
    };
    match (jwtgate, clerk.ok) {
        (Ok(()), true) | (Err(_), false) => Verdict::Agree,
        (Err(reason), true) => match pick(&|c| c.explains(reason)) {
            explaining if explaining.is_empty() => Verdict::Differ,
            explaining => Verdict::Stricter(explaining),
        },
        // jwtgate never accepts what Clerk refuses: no category excuses it.
        (Ok(()), false) => Verdict::Differ,
    }
}

fn verifier(pem: &str, validation: Validation) -> Verifier {
    let keys = KeyStore::new(64, Duration::from_secs(10), Duration::from_millis(100));
    keys.install_pem(VerifyingKey::from_pem(pem).unwrap());
    let policy = Policy {
        algorithms: AlgorithmSet::CLERK,
        validation,
        max_token_bytes: MAX_TOKEN_BYTES,
    };
    Verifier::new(Arc::new(keys), policy)
}

fn print_summary(
    (both_accept, both_refuse): (usize, usize),
    tallies: &BTreeMap<Strict, Tally>,
    reason_pairs: &BTreeMap<(String, String), usize>,
) {
    eprintln!(
        "  agree: {} (both accept {both_accept}, both refuse {both_refuse})",
        both_accept + both_refuse
    );
    eprintln!(
        "  exceptions: decisions in the category / jwtgate refuses, Clerk accepts / \
         the same with no other category"
    );
    for (c, t) in tallies {
        eprintln!(
            "    {:<18} {:>5} {:>5} {:>5}  {}",
            format!("{c:?}"),
            t.seen,
            t.stricter,
            t.stricter_alone,
            c.reason()
        );
    }
    let mut pairs: Vec<_> = reason_pairs.iter().collect();
    pairs.sort_by(|a, b| b.1.cmp(a.1));
    eprintln!(
        "  both refuse: {} pairs of reasons (jwtgate / clerk), the commonest:",
        pairs.len()
    );
    for ((ours, theirs), n) in pairs.iter().take(12) {
        eprintln!("    {n:>5}  {ours} / {theirs}");
    }
}

#[derive(Default)]
struct Tally {
    /// Decisions in this category.
    seen: usize,
    /// jwtgate refused, Clerk accepted.
    stricter: usize,
    /// ... with this the only category of the token.
    stricter_alone: usize,
}

#[test]
fn clerk_and_jwtgate_agree() {
    let started = Instant::now();
    let main = Key::rsa("ins_2jwtgateDifferential", 2048);
    let keys = Keys {
        pem: main.public_pem(),
        main,
        other: Key::rsa("ins_other", 2048),
    };
    let cases = generate(&keys);
    let generated = started.elapsed();
    let setups = setups();
    let verifiers: Vec<Verifier> = setups
        .iter()
        .map(|s| verifier(&keys.pem, s.validation.clone()))
        .collect();

    let queries: Vec<(&str, &Setup)> = cases
        .iter()
        .flat_map(|c| setups.iter().map(move |s| (c.token.as_str(), s)))
        .collect();
    let t = Instant::now();
    let (versions, clerk) = clerk_decide(&keys.pem, &queries);
    let clerk_time = t.elapsed();

    let t = Instant::now();
    let mut tallies: BTreeMap<Strict, Tally> =
        Strict::ALL.iter().map(|s| (*s, Tally::default())).collect();
    let mut agree = (0usize, 0usize);
    let mut differences = Vec::new();
    let mut reason_pairs: BTreeMap<(String, String), usize> = BTreeMap::new();
    let show = std::env::var("CLERK_DIFF_SHOW").ok();
    let mut i = 0;
    for case in &cases {
        let categories = classify(case);
        for (setup, verifier) in setups.iter().zip(&verifiers) {
            let ours = verifier.verify_at(&case.token, setup.now_ms);
            let theirs = &clerk[i];
            i += 1;
            for c in &categories {
                tallies.get_mut(c).unwrap().seen += 1;
            }
            let ours_reason = ours.as_ref().err().map(|e| e.reason());
            if show.as_deref().is_some_and(|s| case.label.contains(s)) {
                eprintln!(
                    "  show: {} [{}]: jwtgate {:?}, clerk {:?} {:?}",
                    case.label, setup.name, ours_reason, theirs.ok, theirs.reason
                );
            }
            if case.label == "v2: valid" {
                assert!(
                    ours.is_ok() && theirs.ok,
                    "the valid v2 token must pass both under {}: jwtgate {ours_reason:?}, \
                     clerk {:?}",
                    setup.name,
                    theirs.message
                );
            }
            match judge(&categories, ours_reason.map_or(Ok(()), Err), theirs) {
                Verdict::Agree if theirs.ok => agree.0 += 1,
                Verdict::Agree => {
                    agree.1 += 1;
                    let pair = (
                        ours_reason.unwrap_or_default().to_string(),
                        theirs.reason.clone().unwrap_or_default(),
                    );
                    *reason_pairs.entry(pair).or_default() += 1;
                }
                Verdict::Stricter(explaining) => {
                    for c in &explaining {
                        let tally = tallies.get_mut(c).unwrap();
                        tally.stricter += 1;
                        if categories.len() == 1 {
                            tally.stricter_alone += 1;
                        }
                    }
                }
                Verdict::Differ => differences.push(format!(
                    "{}  [{}]\n    jwtgate: {}  clerk: {}  categories: {:?}\n    token: {}",
                    case.label,
                    setup.name,
                    ours_reason.unwrap_or("ACCEPTS"),
                    if theirs.ok {
                        "accepts".to_string()
                    } else {
                        format!(
                            "{} ({})",
                            theirs.reason.as_deref().unwrap_or_default(),
                            theirs.message.as_deref().unwrap_or_default()
                        )
                    },
                    categories,
                    case.token.chars().take(160).collect::<String>()
                )),
            }
        }
    }
    let compare_time = t.elapsed();

    eprintln!(
        "clerk differential: {versions}\n  {} tokens x {} setups = {} decisions; \
         generate+sign {:.1?}, clerk (node) {:.1?}, jwtgate+compare {:.1?}, total {:.1?}",
        cases.len(),
        setups.len(),
        queries.len(),
        generated,
        clerk_time,
        compare_time,
        started.elapsed()
    );
    print_summary(agree, &tallies, &reason_pairs);

    let never: Vec<String> = tallies
        .iter()
        .filter(|(_, t)| t.stricter_alone == 0)
        .map(|(c, _)| format!("{c:?}"))
        .collect();
    assert!(
        differences.is_empty(),
        "{} decisions differ outside the listed exceptions:\n{}",
        differences.len(),
        differences
            .iter()
            .take(60)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        never.is_empty(),
        "these exception categories never made a difference on their own; remove them or \
         add a token that shows them: {never:?}"
    );
}
