//! A private cluster certificate authority (`docs/design.md` §4, `--ca`): one CA certificate that
//! every server and client of a cluster trusts, and that issues their certificates, so adding
//! a machine needs no fingerprint exchange.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::RootCertStore;
use sha2::{Digest, Sha256};

use crate::error::{CertsError, Result};
use crate::fingerprint::Fingerprint;
use crate::identity::{
    check_key_permissions, create_private_dir, parse_certs, write_file, Identity, CERT_FILE,
    KEY_FILE,
};

/// File name of the CA certificate kept by [`CertificateAuthority::load_or_generate`].
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key (mode 0600). Keep it off the servers if you can.
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// The name every certificate issued by a cluster CA carries (as a DNS subject alternative
/// name) and every client checks in CA mode: the CA vouches for cluster membership, not for a
/// host name, and peers are dialed by IP address.
pub const CLUSTER_SERVER_NAME: &str = "plasma-stream";

/// How long a new CA, and a certificate it issues, is valid unless told otherwise (`--days`).
/// A year: long enough not to be a chore, short enough that a leaked key stops working.
pub const DEFAULT_VALIDITY_DAYS: u32 = 365;

/// The longest validity accepted (about 100 years), far inside what X.509 dates can hold.
pub const MAX_VALIDITY_DAYS: u32 = 36_525;

/// Start of validity this far before now, so a peer whose clock is a little behind does not
/// see a certificate that is not valid yet.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// The CA certificate's subject common name: a fixed prefix and a per-CA suffix (the first 8
/// bytes of the SHA-256 of its public key, so no two clusters share a subject and a client
/// never mistakes one cluster's CA for another's when matching issuer names).
fn ca_common_name(key: &KeyPair) -> String {
    let digest = Sha256::digest(key.public_key_raw());
    format!("plasma-stream cluster CA {}", hex::encode(&digest[..8]))
}

/// `[now - CLOCK_SKEW, now + days]` in rcgen's date type.
fn validity(params: &mut CertificateParams, days: u32) -> Result<()> {
    if days == 0 || days > MAX_VALIDITY_DAYS {
        return Err(CertsError::BadValidity {
            days,
            max: MAX_VALIDITY_DAYS,
        });
    }
    // rcgen's dates are `time::OffsetDateTime`; built as the Unix epoch plus the system time
    // so this crate needs no date library of its own. A clock before 1970 counts as 1970.
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    params.not_before = now - CLOCK_SKEW.min(since_epoch);
    params.not_after = now + Duration::from_secs(u64::from(days) * 86_400);
    Ok(())
}

/// A cluster CA: its certificate and its signing key.
pub struct CertificateAuthority {
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key: KeyPair,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

fn ca_params(key: &KeyPair, days: u32) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, ca_common_name(key));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, days)?;
    Ok(params)
}

impl CertificateAuthority {
    /// A new CA (ECDSA P-256) valid for [`DEFAULT_VALIDITY_DAYS`], with a subject of its own.
    pub fn generate() -> Result<Self> {
        Self::generate_valid_for(DEFAULT_VALIDITY_DAYS)
    }

    /// A new CA valid for `days` days from now (1 to [`MAX_VALIDITY_DAYS`]).
    pub fn generate_valid_for(days: u32) -> Result<Self> {
        let key = KeyPair::generate()?;
        let cert = ca_params(&key, days)?.self_signed(&key)?;
        Ok(CertificateAuthority {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            key,
        })
    }

    /// Loads `ca.pem` / `ca-key.pem` from `dir`, or creates a CA there (valid for
    /// [`DEFAULT_VALIDITY_DAYS`]) if neither exists.
    pub fn load_or_generate(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_or_generate_valid_for(dir, DEFAULT_VALIDITY_DAYS)
    }

    /// Like [`CertificateAuthority::load_or_generate`]; a CA created here is valid for `days`
    /// days (an existing CA keeps its own dates). The directory is created 0700, the key 0600.
    pub fn load_or_generate_valid_for(dir: impl AsRef<Path>, days: u32) -> Result<Self> {
        let dir = dir.as_ref();
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        if cert_path.exists() || key_path.exists() {
            return Self::load_pem(&cert_path, &key_path);
        }
        create_private_dir(dir)?;
        let ca = Self::generate_valid_for(days)?;
        write_file(&key_path, ca.key.serialize_pem().as_bytes(), 0o600)?;
        write_file(&cert_path, ca.cert_pem.as_bytes(), 0o644)?;
        tracing::info!(dir = %dir.display(), fingerprint = %ca.fingerprint(), days, "created a cluster CA");
        Ok(ca)
    }

    /// Loads a CA written by [`CertificateAuthority::load_or_generate`]. A key file readable
    /// by group or others is refused ([`CertsError::KeyPermissions`]).
    pub fn load_pem(cert_path: impl AsRef<Path>, key_path: impl AsRef<Path>) -> Result<Self> {
        let cert_path = cert_path.as_ref();
        let key_path = key_path.as_ref();
        let read = |path: &Path| {
            fs::read_to_string(path).map_err(|source| CertsError::Io {
                path: path.to_path_buf(),
                source,
            })
        };
        check_key_permissions(key_path)?;
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        let cert_der = parse_certs(cert_pem.as_bytes(), cert_path)?
            .into_iter()
            .next()
            .ok_or_else(|| CertsError::Pem {
                path: cert_path.to_path_buf(),
                reason: "no CERTIFICATE block found".into(),
            })?;
        let key = KeyPair::from_pem(&key_pem).map_err(|err| CertsError::Pem {
            path: key_path.to_path_buf(),
            reason: format!("not a usable private key: {err}"),
        })?;
        Ok(CertificateAuthority {
            cert_der,
            cert_pem,
            key,
        })
    }

    /// SHA-256 of the CA certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_der(&self.cert_der)
    }

    /// The CA certificate (what every member trusts: `Trust::Ca`).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA certificate in PEM, to hand to members.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The trust of a cluster member: peers whose certificate this CA issued.
    pub fn trust(&self) -> Result<crate::Trust> {
        Ok(crate::Trust::Ca(ClusterCa::from_der(
            self.cert_der.clone(),
        )?))
    }

    /// Issues a certificate for a server or client, valid for [`DEFAULT_VALIDITY_DAYS`].
    /// `names` (DNS names or IP addresses) are informative; [`CLUSTER_SERVER_NAME`] is always
    /// added, since that is the name clients check. The certificate is valid for both TLS
    /// server and client authentication.
    pub fn issue<I, S>(&self, names: I) -> Result<IssuedCertificate>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.issue_valid_for(names, DEFAULT_VALIDITY_DAYS)
    }

    /// Like [`CertificateAuthority::issue`], valid for `days` days from now, but never beyond
    /// the CA certificate's own end: rustls checks no dates on a trust anchor, so a member
    /// certificate outliving its CA would keep working after the CA expired.
    pub fn issue_valid_for<I, S>(&self, names: I, days: u32) -> Result<IssuedCertificate>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut names: Vec<String> = names.into_iter().map(Into::into).collect();
        if !names.iter().any(|name| name == CLUSTER_SERVER_NAME) {
            names.push(CLUSTER_SERVER_NAME.to_string());
        }
        let mut params = CertificateParams::new(names.clone())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.is_ca = IsCa::ExplicitNoCa;
        validity(&mut params, days)?;
        if let Some(ca_end) = not_after_seconds(&self.cert_der) {
            let ca_end = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(ca_end);
            if params.not_after > ca_end {
                tracing::warn!(
                    days,
                    "the cluster CA expires sooner: the certificate ends with the CA"
                );
                params.not_after = ca_end;
            }
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let leaf_key = KeyPair::generate()?;
        // The issuer name is read from the CA certificate itself, so certificates chain to
        // it whatever its subject is (including CAs made before subjects were per cluster).
        let issuer = Issuer::from_ca_cert_der(&self.cert_der, &self.key)?;
        let leaf = params.signed_by(&leaf_key, &issuer)?;
        let identity = Identity::from_der(
            vec![leaf.der().clone(), self.cert_der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )?;
        Ok(IssuedCertificate {
            identity,
            chain_pem: format!("{}{}", leaf.pem(), self.cert_pem),
            key_pem: leaf_key.serialize_pem(),
        })
    }
}

/// The notAfter date of a certificate (DER) in seconds since the Unix epoch, or `None` if it
/// cannot be read or is before 1970. Read by hand (tbsCertificate = [0] version, serial,
/// signature algorithm, issuer, validity { notBefore, notAfter }, ...) to need no X.509
/// parser for one field.
fn not_after_seconds(cert_der: &[u8]) -> Option<u64> {
    use crate::revocation::der_header;
    let (_, certificate, _) = der_header(cert_der)?;
    let (_, tbs, _) = der_header(certificate)?;
    let (tag, _, mut rest) = der_header(tbs)?;
    if tag != 0xa0 {
        // No explicit version: what we just skipped was the serial.
        rest = der_header(tbs)?.2;
    } else {
        rest = der_header(rest)?.2; // serial
    }
    let (_, _, rest) = der_header(rest)?; // signature algorithm
    let (_, _, rest) = der_header(rest)?; // issuer
    let (_, validity, _) = der_header(rest)?;
    let (_, _, after) = der_header(validity)?; // notBefore
    let (tag, time, _) = der_header(after)?;
    let text = std::str::from_utf8(time).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| digits.get(range)?.parse::<u32>().ok();
    // UTCTime (tag 23) has a two-digit year (50-99 = 19xx), GeneralizedTime (24) four.
    let (year, rest_at) = match (tag, digits.len()) {
        (23, 12) => {
            let yy = number(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (24, 14) => (number(0..4)?, 4),
        _ => return None,
    };
    let field = |index: usize| number(rest_at + 2 * index..rest_at + 2 * index + 2);
    let (month, day, hour, minute, second) =
        (field(0)?, field(1)?, field(2)?, field(3)?, field(4)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_since_epoch(year, month, day)?;
    let seconds = u64::from(hour * 3600 + minute * 60 + second);
    u64::try_from(days)
        .ok()?
        .checked_mul(86_400)?
        .checked_add(seconds)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (the usual era-based formula).
fn days_since_epoch(year: u32, month: u32, day: u32) -> Option<i64> {
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146_097 + day_of_era - 719_468)
}

/// A certificate issued by a [`CertificateAuthority`], in memory and as PEM text.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    /// Ready to use.
    pub identity: Identity,
    /// Leaf then CA certificate, PEM.
    pub chain_pem: String,
    /// The leaf's private key, PEM (PKCS#8).
    pub key_pem: String,
}

impl IssuedCertificate {
    /// Writes `cert.pem` and `key.pem` (0600) into `dir` (created 0700 if absent), where
    /// `Identity::load_or_generate` finds them; refuses to overwrite existing files.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        create_private_dir(dir)?;
        write_file(&dir.join(KEY_FILE), self.key_pem.as_bytes(), 0o600)?;
        write_file(&dir.join(CERT_FILE), self.chain_pem.as_bytes(), 0o644)
    }
}

/// The trust anchor of CA mode: the cluster CA's certificate.
#[derive(Clone, Debug)]
pub struct ClusterCa {
    pub(crate) roots: RootCertStore,
    fingerprint: Fingerprint,
    /// Member certificates refused although this CA issued them (see `Trust::with_revoked`).
    pub(crate) revoked: crate::RevocationList,
}

impl ClusterCa {
    /// Trusts the CA certificate given in DER.
    pub fn from_der(cert: CertificateDer<'static>) -> Result<Self> {
        let fingerprint = Fingerprint::of_der(&cert);
        let mut roots = RootCertStore::empty();
        roots.add(cert)?;
        Ok(ClusterCa {
            roots,
            fingerprint,
            revoked: crate::RevocationList::default(),
        })
    }

    /// Trusts the (first) CA certificate of a PEM file (`--ca FILE`).
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let pem = fs::read(path).map_err(|source| CertsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let cert = parse_certs(&pem, path)?
            .into_iter()
            .next()
            .ok_or_else(|| CertsError::Pem {
                path: path.to_path_buf(),
                reason: "no CERTIFICATE block found".into(),
            })?;
        Self::from_der(cert)
    }

    /// SHA-256 of the CA certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }
}

/// The names a certificate was issued for (its DNS subject alternative names), without
/// [`CLUSTER_SERVER_NAME`], which every member certificate carries. In cluster CA mode these
/// are what the CA vouched for (`--cert-name`), so an access file may grant rights by them;
/// an unparsable certificate has none.
pub fn certificate_names(cert_der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, certificate)) = x509_parser::parse_x509_certificate(cert_der) else {
        return Vec::new();
    };
    let Ok(Some(names)) = certificate.subject_alternative_name() else {
        return Vec::new();
    };
    names
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(name) => Some((*name).to_owned()),
            _ => None,
        })
        .filter(|name| name != CLUSTER_SERVER_NAME)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};

    use super::*;
    use crate::revocation::der_header;
    use crate::verifier::CaServerVerifier;
    use crate::Trust;

    /// The raw issuer and subject names of a certificate (DER), read field by field:
    /// tbsCertificate = [0] version, serial, signature algorithm, issuer, validity, subject.
    fn issuer_and_subject(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (_, certificate, _) = der_header(der).unwrap();
        let (_, tbs, _) = der_header(certificate).unwrap();
        let (_, _, rest) = der_header(tbs).unwrap(); // version
        let (_, _, rest) = der_header(rest).unwrap(); // serial
        let (_, _, rest) = der_header(rest).unwrap(); // signature algorithm
        let (_, issuer, rest) = der_header(rest).unwrap();
        let (_, _, rest) = der_header(rest).unwrap(); // validity
        let (_, subject, _) = der_header(rest).unwrap();
        (issuer.to_vec(), subject.to_vec())
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn each_ca_has_its_own_subject_and_its_members_name_it_as_issuer() {
        let dir = tempfile::tempdir().unwrap();
        let a = CertificateAuthority::load_or_generate(dir.path().join("a")).unwrap();
        let b = CertificateAuthority::generate().unwrap();
        let (a_issuer, a_subject) = issuer_and_subject(a.cert_der());
        let (_, b_subject) = issuer_and_subject(b.cert_der());
        assert_ne!(a_subject, b_subject, "two clusters' CAs share a subject");
        assert_eq!(a_issuer, a_subject, "a CA is self-signed");
        assert!(contains(&a_subject, b"plasma-stream cluster CA "));
        // Members of the reloaded CA name the CA's real subject as their issuer.
        let reloaded = CertificateAuthority::load_or_generate(dir.path().join("a")).unwrap();
        let member = reloaded.issue(["member"]).unwrap().identity;
        let (member_issuer, _) = issuer_and_subject(&member.cert_chain()[0]);
        assert_eq!(member_issuer, a_subject);
    }

    /// Verifies `leaf` (chained to the CA of `trust`) as a client would, at `now + offset`
    /// (`offset` may be negative, in seconds).
    fn verify_at(trust: &Trust, leaf: &IssuedCertificate, offset: i64) -> Result<(), String> {
        let Trust::Ca(ca) = trust else {
            panic!("CA trust expected")
        };
        let verifier = CaServerVerifier {
            inner: rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(ca.roots.clone()),
                crate::crypto_provider(),
            )
            .build()
            .unwrap(),
            ca: ca.fingerprint(),
            revoked: ca.revoked.clone(),
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .checked_add_signed(offset)
            .unwrap();
        let chain = leaf.identity.cert_chain();
        verifier
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &ServerName::try_from(CLUSTER_SERVER_NAME).unwrap(),
                &[],
                UnixTime::since_unix_epoch(Duration::from_secs(now)),
            )
            .map(|_| ())
            .map_err(|e| crate::tidy_tls_error(&e.to_string()))
    }

    const DAY: i64 = 86_400;

    #[test]
    fn ca_and_members_are_valid_for_a_year_by_default() {
        let ca = CertificateAuthority::generate().unwrap();
        let member = ca.issue(["member"]).unwrap();
        let trust = ca.trust().unwrap();
        verify_at(&trust, &member, 0).unwrap();
        verify_at(&trust, &member, 364 * DAY).unwrap();
        // A peer whose clock is a few minutes behind still accepts a brand new certificate.
        verify_at(&trust, &member, -600).unwrap();
        let expired = verify_at(&trust, &member, 366 * DAY).unwrap_err();
        assert!(expired.contains("is outside its validity"), "{expired}");
        assert!(expired.contains("--days"), "{expired}");
        let early = verify_at(&trust, &member, -2 * DAY).unwrap_err();
        assert!(early.contains("is outside its validity"), "{early}");
    }

    #[test]
    fn certificate_names_are_the_issued_dns_names_but_the_clusters() {
        let ca = CertificateAuthority::generate().unwrap();
        let issued = ca.issue(["node-b", "node-b.example", "10.0.0.2"]).unwrap();
        let leaf = issued.identity.cert_chain().first().unwrap();
        assert_eq!(certificate_names(leaf), vec!["node-b", "node-b.example"]);
        // A self-signed certificate says nothing a CA vouched for: only its own names.
        assert_eq!(certificate_names(ca.cert_der()), Vec::<String>::new());
        assert!(certificate_names(b"not a certificate").is_empty());
    }

    #[test]
    fn days_bound_the_ca_and_what_it_issues() {
        let ca = CertificateAuthority::generate_valid_for(1000).unwrap();
        let trust = ca.trust().unwrap();
        let short = ca.issue_valid_for(["short"], 30).unwrap();
        verify_at(&trust, &short, 29 * DAY).unwrap();
        assert!(verify_at(&trust, &short, 31 * DAY).is_err());
        let long = ca.issue_valid_for(["long"], 900).unwrap();
        verify_at(&trust, &long, 899 * DAY).unwrap();
        // The leaf is valid for 2000 days but the CA is not: refused after the CA's end.
        let outliving = ca.issue_valid_for(["outliving"], 2000).unwrap();
        verify_at(&trust, &outliving, 999 * DAY).unwrap();
        assert!(verify_at(&trust, &outliving, 1001 * DAY).is_err());

        for days in [0, MAX_VALIDITY_DAYS + 1] {
            let err = CertificateAuthority::generate_valid_for(days).unwrap_err();
            assert!(
                matches!(err, CertsError::BadValidity { days: d, .. } if d == days),
                "{err}"
            );
            assert!(ca.issue_valid_for(["x"], days).is_err());
        }
    }

    /// A CA created before subjects were per cluster ("Plasma Stream cluster CA", rcgen's
    /// default dates) still issues certificates that chain to it after loading.
    #[test]
    fn a_ca_with_the_old_shared_subject_still_issues_valid_members() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "Plasma Stream cluster CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        write_file(
            &dir.path().join(CA_KEY_FILE),
            key.serialize_pem().as_bytes(),
            0o600,
        )
        .unwrap();
        write_file(&dir.path().join(CA_CERT_FILE), cert.pem().as_bytes(), 0o644).unwrap();
        let ca = CertificateAuthority::load_or_generate(dir.path()).unwrap();
        let member = ca.issue(["member"]).unwrap();
        verify_at(&ca.trust().unwrap(), &member, 0).unwrap();
    }

    #[test]
    fn not_after_is_read_from_the_certificate() {
        assert_eq!(days_since_epoch(1970, 1, 1), Some(0));
        assert_eq!(days_since_epoch(2000, 3, 1), Some(11_017));
        assert_eq!(days_since_epoch(2024, 2, 29), Some(19_782));
        let ca = CertificateAuthority::generate_valid_for(10).unwrap();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let end = not_after_seconds(ca.cert_der()).unwrap();
        assert!(end.abs_diff(now + 10 * 86_400) < 120, "{end} vs {now}");
        assert_eq!(not_after_seconds(b"junk"), None);
    }

    #[test]
    fn a_ca_key_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        CertificateAuthority::load_or_generate(dir.path()).unwrap();
        let key = dir.path().join(CA_KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let message = CertificateAuthority::load_or_generate(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(&format!(
                "permissions 0644 for {} are too open",
                key.display()
            )),
            "{message}"
        );
        assert!(message.contains("chmod 600"), "{message}");
    }
}
