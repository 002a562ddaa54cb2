//! Certificates refused even though they would otherwise be trusted: a revocation list of
//! SHA-256 fingerprints and certificate serial numbers (`--revoked FILE`).
//!
//! Pinned mode could drop a pin instead, but a cluster CA vouches for every certificate it
//! issued until it expires; a lost laptop's certificate must be refusable before then, in
//! both modes, without re-issuing everyone else's. The list is checked on the peer's leaf
//! certificate, before anything else, so a revoked certificate is refused whatever the mode.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::path::Path;

use crate::error::{CertsError, Result};
use crate::fingerprint::Fingerprint;

/// Fingerprints and serial numbers of revoked certificates.
///
/// **File format** ([`RevocationList::from_file`]): one entry per line; `#` starts a comment
/// (whole line or after the entry); blank lines are ignored; text after the entry (separated by
/// whitespace) is a free label. An entry is either a fingerprint in any form [`Fingerprint`]
/// parses (the form trust files hold), or `serial:HEX` / `serial=HEX` with the serial in hex,
/// optionally with `:` separators (as `openssl x509 -serial -noout` prints it). Leading zero
/// bytes of a serial do not matter.
///
/// ```text
/// # lost laptop, 2026-11-30
/// 3f9a...c2  laptop-17
/// serial=1A2B3C4D
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevocationList {
    fingerprints: BTreeSet<Fingerprint>,
    /// Big-endian magnitude without leading zero bytes (see [`normalize_serial`]).
    serials: BTreeSet<Vec<u8>>,
}

/// Why a certificate is revoked: which entry of the list matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revoked {
    /// Its SHA-256 fingerprint is listed.
    Fingerprint,
    /// Its serial number is listed (hex, as in the list).
    Serial(String),
}

impl fmt::Display for Revoked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Revoked::Fingerprint => f.write_str("its fingerprint is in the revocation list"),
            Revoked::Serial(serial) => {
                write!(f, "its serial {serial} is in the revocation list")
            }
        }
    }
}

impl RevocationList {
    /// An empty list (revokes nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a revocation file (format above). Errors name the file, the line and the bad
    /// entry. A missing file is an error: a revocation list that silently failed to load
    /// would let revoked certificates back in.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| CertsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut list = Self::new();
        list.extend_from_text(&text)
            .map_err(|(line, err)| CertsError::TrustFile {
                path: path.to_path_buf(),
                line,
                source: Box::new(err),
            })?;
        Ok(list)
    }

    /// Adds the entries of a revocation-file text; on error returns the 1-based line number.
    pub fn extend_from_text(&mut self, text: &str) -> Result<(), (usize, CertsError)> {
        for (index, line) in text.lines().enumerate() {
            let content = line.split('#').next().unwrap_or("");
            let Some(token) = content.split_whitespace().next() else {
                continue;
            };
            self.add_entry(token).map_err(|err| (index + 1, err))?;
        }
        Ok(())
    }

    fn add_entry(&mut self, token: &str) -> Result<()> {
        let serial = token
            .get(..7)
            .filter(|prefix| {
                prefix.eq_ignore_ascii_case("serial:") || prefix.eq_ignore_ascii_case("serial=")
            })
            .map(|_| &token[7..]);
        match serial {
            Some(hex_digits) => {
                let serial =
                    parse_serial(hex_digits).map_err(|reason| CertsError::BadRevocationEntry {
                        token: token.to_string(),
                        reason,
                    })?;
                self.revoke_serial(&serial);
            }
            None => {
                self.revoke_fingerprint(token.parse()?);
            }
        }
        Ok(())
    }

    /// Revokes the certificate with this fingerprint.
    pub fn revoke_fingerprint(&mut self, fingerprint: Fingerprint) {
        self.fingerprints.insert(fingerprint);
    }

    /// Revokes every certificate with this serial number (big-endian bytes, as in the DER
    /// encoding; leading zero bytes are ignored).
    pub fn revoke_serial(&mut self, serial: &[u8]) {
        self.serials.insert(normalize_serial(serial).to_vec());
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty() && self.serials.is_empty()
    }

    /// How many entries the list holds.
    pub fn len(&self) -> usize {
        self.fingerprints.len() + self.serials.len()
    }

    /// Whether the certificate (DER) is revoked, and by which entry. A certificate whose serial
    /// cannot be read is treated as revoked when the list names serials: refusing a malformed
    /// certificate is safer than letting a listed serial through.
    pub fn check(&self, cert_der: &[u8]) -> Option<Revoked> {
        if self.fingerprints.contains(&Fingerprint::of_der(cert_der)) {
            return Some(Revoked::Fingerprint);
        }
        if self.serials.is_empty() {
            return None;
        }
        match serial_of(cert_der) {
            Some(serial) => {
                let serial = normalize_serial(serial);
                self.serials
                    .contains(serial)
                    .then(|| Revoked::Serial(hex::encode(serial)))
            }
            None => Some(Revoked::Serial("(unreadable)".into())),
        }
    }
}

/// Parses a serial in hex (`1A2B`, `1a:2b`, odd digit counts allowed).
fn parse_serial(text: &str) -> Result<Vec<u8>, &'static str> {
    let digits: String = text.chars().filter(|c| *c != ':').collect();
    if digits.is_empty() {
        return Err("empty serial: expected hex digits after serial:");
    }
    if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("not hexadecimal: a serial is hex digits, optionally with ':' separators");
    }
    // RFC 5280 serials are at most 20 bytes; allow a little slack for a leading sign byte.
    if digits.len() > 42 {
        return Err("too long: a certificate serial has at most 20 bytes");
    }
    let padded = if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits
    };
    hex::decode(&padded).map_err(|_| "not hexadecimal")
}

/// The serial without the leading zero bytes DER adds to keep a positive INTEGER positive.
fn normalize_serial(serial: &[u8]) -> &[u8] {
    let first = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    &serial[first..]
}

/// Reads one DER tag-length header at the start of `input`; returns the tag, the contents
/// and what follows them. Only what X.509 certificates use: single-byte tags, definite
/// lengths up to 4 length bytes.
pub(crate) fn der_header(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, b| (len << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The serialNumber of an X.509 certificate (DER): Certificate ::= SEQUENCE { tbsCertificate
/// SEQUENCE { [0] version OPTIONAL, serialNumber INTEGER, ... }, ... }. `None` if the bytes
/// are not shaped like that.
pub(crate) fn serial_of(cert_der: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const VERSION: u8 = 0xa0;
    let (tag, certificate, _) = der_header(cert_der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = der_header(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, contents, rest) = der_header(tbs)?;
    let (tag, contents) = if tag == VERSION {
        let (tag, contents, _) = der_header(rest)?;
        (tag, contents)
    } else {
        (tag, contents)
    };
    (tag == INTEGER && !contents.is_empty()).then_some(contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    const A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn file_with_fingerprints_serials_comments_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked");
        fs::write(
            &path,
            format!("# revoked\n\n{A}  laptop # lost\nserial=01:A2\n  SERIAL:00ff\n"),
        )
        .unwrap();
        let list = RevocationList::from_file(&path).unwrap();
        assert_eq!(list.len(), 3);
        assert!(list.fingerprints.contains(&A.parse().unwrap()));
        assert!(list.serials.contains(&vec![0x01, 0xa2]));
        assert!(list.serials.contains(&vec![0xff]), "leading zero dropped");
    }

    #[test]
    fn bad_entries_name_the_line_and_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked");
        fs::write(&path, format!("{A}\nserial=xyz\n")).unwrap();
        let message = RevocationList::from_file(&path).unwrap_err().to_string();
        assert!(message.contains(":2:"), "{message}");
        assert!(message.contains("serial=xyz"), "{message}");
        fs::write(&path, "not-a-fingerprint\n").unwrap();
        let message = RevocationList::from_file(&path).unwrap_err().to_string();
        assert!(message.contains(":1:") && message.contains("not-a-fingerprint"));
        let message = RevocationList::from_file(dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("missing"), "{message}");
    }

    #[test]
    fn serial_is_read_from_a_real_certificate() {
        let ca = crate::CertificateAuthority::generate().unwrap();
        let issued = ca.issue(["member"]).unwrap().identity;
        let leaf = &issued.cert_chain()[0];
        let serial = serial_of(leaf).unwrap();
        assert!(!serial.is_empty() && serial.len() <= 21);
        // The serial is what rcgen wrote: different certificates, different serials.
        let other = ca.issue(["member"]).unwrap().identity;
        assert_ne!(serial_of(&other.cert_chain()[0]), Some(serial));
        assert_eq!(serial_of(b"garbage"), None);
        assert_eq!(serial_of(&[0x30, 0x03, 0x30, 0x01, 0x05]), None);
    }

    #[test]
    fn check_matches_by_fingerprint_or_serial_and_nothing_else() {
        let revoked = Identity::generate(["revoked"]).unwrap();
        let by_serial = Identity::generate(["by-serial"]).unwrap();
        let fine = Identity::generate(["fine"]).unwrap();
        let mut list = RevocationList::new();
        list.revoke_fingerprint(revoked.fingerprint());
        let serial = serial_of(&by_serial.cert_chain()[0]).unwrap().to_vec();
        // Revoke it with a leading zero byte: the same serial.
        let mut padded = vec![0];
        padded.extend_from_slice(&serial);
        list.revoke_serial(&padded);
        assert_eq!(
            list.check(&revoked.cert_chain()[0]),
            Some(Revoked::Fingerprint)
        );
        assert_eq!(
            list.check(&by_serial.cert_chain()[0]),
            Some(Revoked::Serial(hex::encode(normalize_serial(&serial))))
        );
        assert_eq!(list.check(&fine.cert_chain()[0]), None);
        assert_eq!(RevocationList::new().check(&revoked.cert_chain()[0]), None);
    }
}
