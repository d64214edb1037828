//! The signature algorithms jwtgate accepts, and which keys may use them.
//!
//! RSA keys verify RS256/384/512 (PKCS#1 v1.5) and PS256/384/512 (PSS,
//! salt = hash length, RFC 7518 §3.5); EC P-256, P-384 and P-521 keys verify
//! ES256, ES384 and ES512 respectively; Ed25519 keys verify EdDSA. In Clerk
//! mode only RS256/384/512 are allowed, as in Clerk's SDKs. `none`, `HS*`
//! (a shared secret has no place at an auth gateway) and unknown names are
//! refused before any key is looked up.

use openssl::hash::MessageDigest;

/// An accepted JWS `alg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

/// The key family an algorithm needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Rsa,
    /// ECDSA on one curve, named by its JOSE name (`P-256`, ...).
    Ec(&'static str),
    Ed25519,
}

impl Algorithm {
    pub const ALL: [Algorithm; 10] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::EdDSA,
    ];

    /// Parses a JWS `alg` name; exact and case-sensitive, as RFC 7518 names are.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    pub fn family(self) -> Family {
        match self {
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => Family::Rsa,
            Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512 => Family::Rsa,
            Algorithm::ES256 => Family::Ec("P-256"),
            Algorithm::ES384 => Family::Ec("P-384"),
            Algorithm::ES512 => Family::Ec("P-521"),
            Algorithm::EdDSA => Family::Ed25519,
        }
    }

    /// True for the PSS variants of RSA.
    pub fn is_pss(self) -> bool {
        matches!(self, Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512)
    }

    /// The hash signed over (`None` for EdDSA, which hashes internally).
    pub fn digest(self) -> Option<MessageDigest> {
        match self {
            Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 => Some(MessageDigest::sha256()),
            Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => Some(MessageDigest::sha384()),
            Algorithm::RS512 | Algorithm::PS512 | Algorithm::ES512 => Some(MessageDigest::sha512()),
            Algorithm::EdDSA => None,
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of algorithms: what a deployment allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlgorithmSet(u16);

impl AlgorithmSet {
    /// Clerk issues RS256; its SDKs accept the RS family only.
    pub const CLERK: AlgorithmSet = AlgorithmSet(0b111);
    /// Every algorithm jwtgate implements (for other issuers' JWKS).
    pub const ALL: AlgorithmSet = AlgorithmSet((1 << Algorithm::ALL.len()) - 1);

    pub const EMPTY: AlgorithmSet = AlgorithmSet(0);

    pub fn with(self, alg: Algorithm) -> AlgorithmSet {
        AlgorithmSet(self.0 | alg.bit())
    }

    pub fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }

    pub fn names(self) -> Vec<&'static str> {
        Algorithm::ALL
            .into_iter()
            .filter(|a| self.contains(*a))
            .map(Algorithm::name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_names_parse() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        }
        for name in [
            "none", "None", "HS256", "rs256", "RS256 ", "ES256K", "EdDSA\0", "Ed25519", "",
        ] {
            assert_eq!(Algorithm::from_name(name), None, "{name:?} must not parse");
        }
    }

    #[test]
    fn clerk_mode_is_the_rs_family() {
        assert_eq!(AlgorithmSet::CLERK.names(), ["RS256", "RS384", "RS512"]);
        assert_eq!(AlgorithmSet::ALL.names().len(), 10);
        assert!(!AlgorithmSet::CLERK.contains(Algorithm::ES256));
    }
}
