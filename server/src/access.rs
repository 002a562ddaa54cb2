//! Who may do what on this server: the access policy (`--access FILE`, reloaded on SIGHUP).
//!
//! Trust (the TLS layer, `certs`) says who someone *is*; this says what they *may do*. Rights:
//!
//! | right | role | allows |
//! |---|---|---|
//! | `sync` | client | ask this server to SYNC, COPY only |
//! | `sync-take` | client | ask this server to SYNC with TAKE peer requests too (this server then TAKEs from its peers in its own name: a transitive decision, see `docs/security.md`) |
//! | `copy` | peer | pull objects from this server (COPY) |
//! | `take` | peer | pull and delete objects here (TAKE) |
//! | `hold` | peer | be pulled from: this server accepts objects it serves |
//!
//! An identity is a certificate fingerprint (`sha256:…`), `subject:NAME` (in cluster CA mode,
//! `--ca`: a certificate the CA issued for the DNS name NAME, `--cert-name`), `anonymous` (the
//! plaintext legacy format, which has no identity), or `*` (any authenticated identity not
//! listed). A certificate's rights are those of its fingerprint's line, else of the first
//! `subject:` line naming one of its names, else those of `*`. A line grants rights of one role only: a client's certificate is never a
//! peer's, so a client cannot plant objects as a holder, and a peer cannot issue SYNCs. Only
//! `anonymous` may mix them (the legacy format has no identity to tell the roles apart).
//!
//! ```text
//! # identity                                     rights
//! sha256:9f:86:d0:...:0a:08                      sync sync-take   # the scheduler
//! sha256:2c:26:b4:...:ae:2f                      copy hold        # node B, read-only
//! subject:node-c                                 copy take hold   # CA-issued for node-c
//! *                                              copy hold
//! anonymous                                      copy
//! ```
//!
//! Without `--access`, every trusted identity has every right (the behaviour before access
//! policies existed; the server says so once at startup), and `anonymous` may `copy` and
//! `sync` (COPY only).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use plasma_stream_certs::Fingerprint;

/// One right of the table in the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    Sync,
    SyncTake,
    Copy,
    Take,
    Hold,
}

impl Right {
    const ALL: [Right; 5] = [
        Right::Sync,
        Right::SyncTake,
        Right::Copy,
        Right::Take,
        Right::Hold,
    ];

    /// The word in the access file.
    pub const fn word(self) -> &'static str {
        match self {
            Right::Sync => "sync",
            Right::SyncTake => "sync-take",
            Right::Copy => "copy",
            Right::Take => "take",
            Right::Hold => "hold",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }

    const fn is_client_right(self) -> bool {
        matches!(self, Right::Sync | Right::SyncTake)
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// A set of rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rights(u8);

impl Rights {
    /// No right at all.
    pub const NONE: Rights = Rights(0);
    /// Every right (no `--access`: a trusted identity may do anything).
    pub const ALL: Rights = Rights(0b1_1111);
    /// What `anonymous` (legacy) may do without `--access`.
    pub const ANONYMOUS_DEFAULT: Rights = Rights(Right::Copy.bit() | Right::Sync.bit());

    /// Whether the set holds `right` (`sync-take` implies `sync`).
    pub fn allows(self, right: Right) -> bool {
        self.0 & right.bit() != 0 || (right == Right::Sync && self.0 & Right::SyncTake.bit() != 0)
    }

    fn with(self, right: Right) -> Rights {
        Rights(self.0 | right.bit())
    }
}

impl fmt::Display for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<&str> = Right::ALL
            .iter()
            .filter(|r| self.0 & r.bit() != 0)
            .map(|r| r.word())
            .collect();
        if words.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&words.join(" "))
        }
    }
}

/// Who is asking, as the transport authenticated them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A TLS peer with this certificate (or, in `--insecure` mode, without one: no
    /// fingerprint), and the names a cluster CA issued it for (empty unless in CA mode).
    Authenticated {
        fingerprint: Option<Fingerprint>,
        names: Arc<[String]>,
    },
    /// A plaintext legacy connection: no identity.
    Anonymous,
}

impl Who {
    /// A certificate known by its fingerprint alone (pinned or insecure mode).
    pub fn certificate(fingerprint: Option<Fingerprint>) -> Self {
        Who::Authenticated {
            fingerprint,
            names: Arc::from([]),
        }
    }

    /// A certificate and the names its issuer vouched for. Only a cluster CA's names may be
    /// given here: a pinned certificate's names are its owner's own claim.
    pub fn vouched(fingerprint: Option<Fingerprint>, names: Arc<[String]>) -> Self {
        Who::Authenticated { fingerprint, names }
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Authenticated {
                fingerprint: Some(fingerprint),
                names,
            } => match names.first() {
                Some(name) => write!(f, "{fingerprint} ({name})"),
                None => write!(f, "{fingerprint}"),
            },
            Who::Authenticated {
                fingerprint: None, ..
            } => f.write_str("unauthenticated (insecure mode)"),
            Who::Anonymous => f.write_str("anonymous"),
        }
    }
}

/// Why an access file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("cannot read the access file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// The access policy in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    listed: Vec<(Fingerprint, Rights)>,
    /// `subject:NAME` lines, in file order.
    subjects: Vec<(String, Rights)>,
    any: Rights,
    anonymous: Rights,
    /// `None` without `--access`.
    source: Option<PathBuf>,
}

impl AccessPolicy {
    /// No `--access`: every trusted identity has every right; `anonymous` copy and sync.
    pub fn trusted_may_do_anything() -> Self {
        AccessPolicy {
            listed: Vec::new(),
            subjects: Vec::new(),
            any: Rights::ALL,
            anonymous: Rights::ANONYMOUS_DEFAULT,
            source: None,
        }
    }

    /// Reads an access file (format in the module docs).
    pub fn load(path: &Path) -> Result<Self, AccessError> {
        let text = std::fs::read_to_string(path).map_err(|source| AccessError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses the text of an access file; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, AccessError> {
        let mut policy = AccessPolicy {
            listed: Vec::new(),
            subjects: Vec::new(),
            any: Rights::NONE,
            anonymous: Rights::NONE,
            source: Some(path.to_path_buf()),
        };
        for (index, raw) in text.lines().enumerate() {
            let error = |message: String| AccessError::Line {
                path: path.to_path_buf(),
                line: index + 1,
                message,
            };
            let line = raw.split('#').next().unwrap_or("").trim();
            let mut words = line.split_whitespace();
            let Some(identity) = words.next() else {
                continue;
            };
            let mut rights = Rights::NONE;
            let mut role: Option<bool> = None;
            for word in words {
                let right = Right::ALL
                    .into_iter()
                    .find(|r| r.word() == word)
                    .ok_or_else(|| {
                        error(format!(
                            "`{word}` is not a right (sync, sync-take, copy, take, hold)"
                        ))
                    })?;
                let client = right.is_client_right();
                // The legacy format has no identity to tell a client from a peer by, so
                // `anonymous` alone may hold rights of both roles.
                if role.is_some_and(|r| r != client) && identity != "anonymous" {
                    return Err(error(format!(
                        "`{identity}` mixes client rights (sync, sync-take) with peer rights \
                         (copy, take, hold): give a client and a peer different certificates"
                    )));
                }
                role = Some(client);
                rights = rights.with(right);
            }
            if rights == Rights::NONE {
                return Err(error(format!("`{identity}` is given no right")));
            }
            match identity {
                "*" => policy.any = rights,
                "anonymous" => policy.anonymous = rights,
                subject if subject.starts_with("subject:") => {
                    let name = subject.trim_start_matches("subject:");
                    if name.is_empty() || name == plasma_stream_certs::CLUSTER_SERVER_NAME {
                        return Err(error(format!(
                            "`{subject}` names no member: give a name the CA issued a \
                             certificate for (--cert-name; `{}` is in every one)",
                            plasma_stream_certs::CLUSTER_SERVER_NAME
                        )));
                    }
                    if policy.subjects.iter().any(|(n, _)| n == name) {
                        return Err(error(format!("{subject} is listed twice")));
                    }
                    policy.subjects.push((name.to_owned(), rights));
                }
                fingerprint => {
                    let fingerprint: Fingerprint = fingerprint.parse().map_err(|_| {
                        error(format!(
                            "`{fingerprint}` is not an identity: a SHA-256 fingerprint \
                             (sha256:…), subject:NAME, `*` or `anonymous`"
                        ))
                    })?;
                    if policy.listed.iter().any(|(f, _)| *f == fingerprint) {
                        return Err(error(format!("{fingerprint} is listed twice")));
                    }
                    policy.listed.push((fingerprint, rights));
                }
            }
        }
        Ok(policy)
    }

    /// The rights of `who`: its fingerprint's line if it has one, else the first
    /// `subject:` line naming one of its names, else `*` (authenticated) or `anonymous`
    /// (legacy).
    pub fn rights_of(&self, who: &Who) -> Rights {
        match who {
            Who::Anonymous => self.anonymous,
            Who::Authenticated { fingerprint, names } => {
                let by_fingerprint = fingerprint
                    .and_then(|fp| self.listed.iter().find(|(f, _)| *f == fp))
                    .map(|(_, rights)| *rights);
                let by_subject = || {
                    self.subjects
                        .iter()
                        .find(|(name, _)| names.iter().any(|n| n == name))
                        .map(|(_, rights)| *rights)
                };
                by_fingerprint.or_else(by_subject).unwrap_or(self.any)
            }
        }
    }

    /// Whether the file names identities by subject (they only match in CA mode).
    pub fn has_subjects(&self) -> bool {
        !self.subjects.is_empty()
    }

    /// Whether `who` may do `right`.
    pub fn allows(&self, who: &Who, right: Right) -> bool {
        self.rights_of(who).allows(right)
    }

    /// The file this policy came from (`None` without `--access`).
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(byte: u8) -> Fingerprint {
        Fingerprint([byte; 32])
    }

    fn parse(text: &str) -> Result<AccessPolicy, AccessError> {
        AccessPolicy::parse(text, Path::new("access"))
    }

    #[test]
    fn a_listed_identity_has_its_own_rights_and_others_those_of_star() {
        let text = format!(
            "# comment\n{} sync-take\n{} copy hold  # read-only peer\n* copy\nanonymous copy\n",
            fingerprint(1),
            fingerprint(2)
        );
        let policy = parse(&text).expect("valid");
        let client = Who::certificate(Some(fingerprint(1)));
        let peer = Who::certificate(Some(fingerprint(2)));
        let stranger = Who::certificate(Some(fingerprint(3)));
        assert!(
            policy.allows(&client, Right::Sync),
            "sync-take implies sync"
        );
        assert!(policy.allows(&client, Right::SyncTake));
        assert!(
            !policy.allows(&client, Right::Hold),
            "a client is no holder"
        );
        assert!(!policy.allows(&client, Right::Copy));
        assert!(policy.allows(&peer, Right::Copy) && policy.allows(&peer, Right::Hold));
        assert!(!policy.allows(&peer, Right::Take), "read-only");
        assert!(!policy.allows(&peer, Right::Sync), "a peer issues no SYNC");
        assert!(policy.allows(&stranger, Right::Copy));
        assert!(!policy.allows(&stranger, Right::Hold));
        assert!(policy.allows(&Who::Anonymous, Right::Copy));
        assert!(!policy.allows(&Who::Anonymous, Right::Take));
    }

    #[test]
    fn a_subject_line_grants_by_the_ca_issued_name_after_the_fingerprint_line() {
        let text = format!(
            "subject:node-c copy take hold\nsubject:scheduler sync-take\n{} copy hold\n* copy\n",
            fingerprint(1)
        );
        let policy = parse(&text).expect("valid");
        let names =
            |list: &[&str]| -> Arc<[String]> { list.iter().map(|n| n.to_string()).collect() };
        let node_c = Who::vouched(Some(fingerprint(7)), names(&["node-c"]));
        assert!(policy.allows(&node_c, Right::Take));
        assert!(!policy.allows(&node_c, Right::Sync));
        let scheduler = Who::vouched(Some(fingerprint(8)), names(&["other", "scheduler"]));
        assert!(policy.allows(&scheduler, Right::SyncTake));
        // The fingerprint's own line comes first, whatever names the certificate has.
        let listed = Who::vouched(Some(fingerprint(1)), names(&["node-c"]));
        assert!(!policy.allows(&listed, Right::Take));
        // The same name without a CA's word (a pinned certificate): only `*`.
        let claimed = Who::certificate(Some(fingerprint(7)));
        assert!(policy.allows(&claimed, Right::Copy) && !policy.allows(&claimed, Right::Take));
        assert!(policy.has_subjects());
    }

    #[test]
    fn a_subject_must_name_one_member() {
        for line in ["subject: copy", "subject:plasma-stream copy"] {
            let error = parse(line).expect_err(line).to_string();
            assert!(error.contains("names no member"), "{error}");
        }
        let error = parse("subject:a copy\nsubject:a hold\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("listed twice"), "{error}");
    }

    #[test]
    fn without_a_file_trusted_identities_may_do_anything_and_anonymous_copy_and_sync() {
        let policy = AccessPolicy::trusted_may_do_anything();
        let anyone = Who::certificate(Some(fingerprint(9)));
        for right in Right::ALL {
            assert!(policy.allows(&anyone, right), "{right}");
        }
        assert!(policy.allows(&Who::Anonymous, Right::Copy));
        assert!(policy.allows(&Who::Anonymous, Right::Sync));
        assert!(!policy.allows(&Who::Anonymous, Right::SyncTake));
        assert!(!policy.allows(&Who::Anonymous, Right::Take));
        assert!(!policy.allows(&Who::Anonymous, Right::Hold));
    }

    #[test]
    fn a_file_grants_nothing_it_does_not_say() {
        let policy = parse(&format!("{} copy\n", fingerprint(1))).expect("valid");
        assert_eq!(policy.rights_of(&Who::Anonymous), Rights::NONE);
        assert_eq!(
            policy.rights_of(&Who::certificate(Some(fingerprint(2)))),
            Rights::NONE
        );
        assert_eq!(policy.rights_of(&Who::certificate(None)), Rights::NONE);
    }

    #[test]
    fn bad_lines_are_named() {
        let mixed = parse(&format!("{} sync copy\n", fingerprint(1))).unwrap_err();
        assert!(mixed.to_string().contains("access:1") && mixed.to_string().contains("mixes"));
        let unknown = parse("\n* copy delete\n").unwrap_err();
        assert!(
            unknown.to_string().contains("access:2") && unknown.to_string().contains("`delete`")
        );
        let not_identity = parse("node-b copy\n").unwrap_err();
        assert!(not_identity
            .to_string()
            .contains("`node-b` is not an identity"));
        assert!(
            parse("anonymous sync copy take\n").is_ok(),
            "legacy has no roles"
        );
        let empty = parse("* \n").unwrap_err();
        assert!(empty.to_string().contains("no right"));
        let twice = parse(&format!("{0} copy\n{0} take\n", fingerprint(4))).unwrap_err();
        assert!(twice.to_string().contains("twice"));
    }
}
