//! [`ClientBuilder`]: trust, identity and transport choices for a [`Client`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use plasma_stream_certs::{ClusterCa, Fingerprint, Identity, Trust, TrustedFingerprints};
use plasma_stream_transport::{Endpoint, TransportConfig, TransportMode};

use crate::{Client, Error, Result};

/// How a [`Client`] connects. Start from [`ClientBuilder::new`] (nothing trusted yet) or
/// [`ClientBuilder::from_env`] (what [`Client::connect`] uses).
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    insecure: bool,
    ca: Option<ClusterCa>,
    trusted: TrustedFingerprints,
    identity_dir: Option<PathBuf>,
    identity: Option<Identity>,
    transport: TransportConfig,
    timeout: Duration,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientBuilder {
    /// Nothing trusted, default transport (QUIC with TLS-over-TCP fallback), 30 s timeout.
    pub fn new() -> Self {
        Self {
            insecure: false,
            ca: None,
            trusted: TrustedFingerprints::new(),
            identity_dir: None,
            identity: None,
            transport: TransportConfig::default(),
            timeout: Duration::from_secs(30),
        }
    }

    /// The environment's choices (see the crate docs): `PLASMA_STREAM_INSECURE`,
    /// `PLASMA_STREAM_TRUST`, `PLASMA_STREAM_TRUST_FILE`, `~/.config/plasma-stream/trusted`,
    /// `PLASMA_STREAM_IDENTITY_DIR`.
    pub fn from_env() -> Result<Self> {
        let mut builder = Self::new();
        if std::env::var("PLASMA_STREAM_INSECURE").is_ok_and(|v| !v.is_empty() && v != "0") {
            builder = builder.insecure();
        }
        if let Ok(list) = std::env::var("PLASMA_STREAM_TRUST") {
            for token in list
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|t| !t.is_empty())
            {
                builder = builder.trust_fingerprint(token.parse()?);
            }
        }
        match std::env::var_os("PLASMA_STREAM_TRUST_FILE") {
            Some(path) => builder = builder.trust_file(path)?,
            None => {
                if let Some(path) = config_dir()
                    .map(|d| d.join("trusted"))
                    .filter(|p| p.exists())
                {
                    builder = builder.trust_file(path)?;
                }
            }
        }
        if let Some(path) = std::env::var_os("PLASMA_STREAM_CA") {
            builder = builder.ca(path)?;
        }
        if let Some(dir) = std::env::var_os("PLASMA_STREAM_IDENTITY_DIR") {
            builder = builder.identity_dir(dir);
        }
        Ok(builder)
    }

    /// Development mode: accept any server certificate. Traffic is still encrypted, but
    /// anyone on the path can pretend to be the server.
    pub fn insecure(mut self) -> Self {
        self.insecure = true;
        self
    }

    /// Cluster CA mode: trusts servers whose certificate the CA (PEM file) issued. This
    /// client's own certificate, in [`ClientBuilder::identity_dir`], must be CA-issued too.
    pub fn ca(mut self, ca_pem: impl AsRef<Path>) -> Result<Self> {
        self.ca = Some(ClusterCa::from_pem_file(ca_pem)?);
        Ok(self)
    }

    /// Trusts the server whose certificate has this SHA-256 fingerprint (repeatable).
    pub fn trust_fingerprint(mut self, fingerprint: Fingerprint) -> Self {
        self.trusted.add(fingerprint);
        self
    }

    /// Trusts every fingerprint in a file (one per line, `#` comments).
    pub fn trust_file(mut self, path: impl AsRef<Path>) -> Result<Self> {
        self.trusted
            .extend(TrustedFingerprints::from_file(path)?.iter().copied());
        Ok(self)
    }

    /// Where this client's own certificate lives (generated there on first use), so servers
    /// can pin its fingerprint. Default: `~/.config/plasma-stream/client`.
    pub fn identity_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.identity_dir = Some(dir.into());
        self
    }

    /// Uses this identity instead of one from a directory.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// QUIC with fallback (`Auto`, the default), QUIC only, or TLS over TCP only.
    pub fn transport(mut self, mode: TransportMode) -> Self {
        self.transport.mode = mode;
        self
    }

    /// Full transport tuning.
    pub fn transport_config(mut self, config: TransportConfig) -> Self {
        self.transport = config;
        self
    }

    /// Longest wait for the server's next bytes while pulling an object (not for a SYNC
    /// report, which arrives when the SYNC is done).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects (resolving `address` and trying each result in turn).
    pub async fn connect(self, address: impl tokio::net::ToSocketAddrs) -> Result<Client> {
        let trust = if self.insecure {
            Trust::Insecure
        } else if let Some(ca) = self.ca.clone() {
            Trust::Ca(ca)
        } else if self.trusted.is_empty() {
            return Err(Error::NoTrust);
        } else {
            Trust::Pinned(self.trusted.clone())
        };
        let identity = match (self.identity, &self.identity_dir) {
            (Some(identity), _) => identity,
            (None, Some(dir)) => load_or_generate_noting(dir)?,
            (None, None) if self.insecure => Identity::generate(["plasma-stream-client"])?,
            (None, None) => match config_dir() {
                Some(dir) => load_or_generate_noting(&dir.join("client"))?,
                None => Identity::generate(["plasma-stream-client"])?,
            },
        };
        let endpoint = Endpoint::client(&identity, &trust, self.transport).await?;
        let addresses: Vec<_> = tokio::net::lookup_host(address).await?.collect();
        let mut last_error = None;
        for server in addresses {
            match endpoint.connect(server).await {
                Ok(connection) => {
                    return Ok(Client {
                        _endpoint: endpoint,
                        connection,
                        server,
                        timeout: self.timeout,
                    })
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(match last_error {
            Some(error) => error.into(),
            None => Error::Resolve("the address resolved to nothing".into()),
        })
    }
}

/// [`Identity::load_or_generate`], saying on stderr when it creates a new identity: servers in
/// pinned mode refuse this client until their operator trusts its fingerprint, and a
/// silently created certificate left users wondering which fingerprint that is. Said once,
/// since the identity is kept for later runs.
fn load_or_generate_noting(dir: &Path) -> Result<Identity> {
    use plasma_stream_certs::{CERT_FILE, KEY_FILE};
    let is_new = !dir.join(CERT_FILE).exists() && !dir.join(KEY_FILE).exists();
    let identity = Identity::load_or_generate(dir)?;
    if is_new {
        let fingerprint = identity.fingerprint();
        eprintln!(
            "plasma-stream: created a new client identity {fingerprint} in {}; a server in \
             pinned mode accepts this client once started with --trust {fingerprint}",
            dir.display()
        );
    }
    Ok(identity)
}

/// `$XDG_CONFIG_HOME/plasma-stream` or `~/.config/plasma-stream`.
fn config_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .map(|dir| dir.join("plasma-stream"))
}
