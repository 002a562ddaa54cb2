//! SHA-256 certificate fingerprints: how peers name each other in pinned mode.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::error::CertsError;

/// The SHA-256 digest of a leaf certificate's DER encoding.
///
/// **Text format.** [`Display`](fmt::Display) writes 64 lowercase hex digits with no separators
/// (e.g. `3f9a…c2`), the form servers print at startup and trust files hold. Parsing
/// ([`FromStr`]) is lenient about presentation: surrounding whitespace, an optional
/// `sha256:` / `SHA256:` prefix, `:` separators between bytes (as `openssl x509 -fingerprint`
/// prints them) and uppercase digits are all accepted. Anything else is refused with an error
/// that quotes the input.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a certificate given in DER.
    pub fn of_der(cert_der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(cert_der).into())
    }

    /// The raw 32 digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A short prefix (first 8 hex digits) for log lines where the full value is noise.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint(sha256:{self})")
    }
}

impl FromStr for Fingerprint {
    type Err = CertsError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |reason| CertsError::BadFingerprint {
            token: input.to_string(),
            reason,
        };
        let trimmed = input.trim();
        let body = match trimmed.get(..7) {
            Some(prefix) if prefix.eq_ignore_ascii_case("sha256:") => &trimmed[7..],
            _ => trimmed,
        };
        let digits: String = body.chars().filter(|c| *c != ':').collect();
        if digits.is_empty() {
            return Err(bad("empty: expected 64 hex digits (SHA-256)"));
        }
        if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad(
                "not hexadecimal: expected 64 hex digits, optionally with ':' separators and a 'sha256:' prefix",
            ));
        }
        if digits.len() != 64 {
            return Err(bad("wrong length: a SHA-256 fingerprint has 64 hex digits"));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&digits, &mut bytes)
            .map_err(|_| bad("not hexadecimal: expected 64 hex digits"))?;
        Ok(Fingerprint(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn display_is_lowercase_hex_and_round_trips() {
        let fp: Fingerprint = HEX.parse().unwrap();
        assert_eq!(fp.to_string(), HEX);
        assert_eq!(fp.to_string().parse::<Fingerprint>().unwrap(), fp);
    }

    #[test]
    fn accepts_prefix_colons_uppercase_and_whitespace() {
        let expected: Fingerprint = HEX.parse().unwrap();
        let colons = HEX
            .as_bytes()
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).unwrap().to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        for text in [
            format!("sha256:{HEX}"),
            format!("SHA256:{colons}"),
            format!("  {colons}\t"),
        ] {
            assert_eq!(text.parse::<Fingerprint>().unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn bad_strings_are_refused_with_the_token_named() {
        for (text, why) in [
            ("", "empty"),
            ("sha256:", "empty"),
            ("abcd", "wrong length"),
            (&HEX[..63], "wrong length"),
            (
                "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                "not hex",
            ),
            ("md5:00112233445566778899aabbccddeeff", "not hex"),
        ] {
            let err = text.parse::<Fingerprint>().unwrap_err();
            let message = err.to_string();
            assert!(message.contains(&format!("{text:?}")), "{message} ({why})");
            assert!(matches!(err, CertsError::BadFingerprint { .. }), "{why}");
        }
    }

    #[test]
    fn of_der_is_sha256() {
        // SHA-256 of the empty string.
        assert_eq!(
            Fingerprint::of_der(b"").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
