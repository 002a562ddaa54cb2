//! `-a`: the server's address as people write it: an IP or a host name, the port optional.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// The port `plasma-stream-server` listens on unless told otherwise (its `-p` default).
pub const DEFAULT_PORT: u16 = 2021;

/// A host (IP address or DNS name) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    host: Host,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

impl ServerAddress {
    /// Every socket address the host stands for (one for an IP; a name may give several, and
    /// the client tries each in turn).
    pub async fn resolve(&self) -> Result<Vec<SocketAddr>, String> {
        match &self.host {
            Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, self.port)]),
            Host::Name(name) => {
                let found: Vec<_> = tokio::net::lookup_host((name.as_str(), self.port))
                    .await
                    .map_err(|error| format!("cannot resolve host name `{name}`: {error}"))?
                    .collect();
                if found.is_empty() {
                    Err(format!("host name `{name}` resolved to no address"))
                } else {
                    Ok(found)
                }
            }
        }
    }
}

impl fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(ip) => write!(f, "{}", SocketAddr::new(*ip, self.port)),
            Host::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

impl FromStr for ServerAddress {
    type Err = String;

    /// `127.0.0.1`, `127.0.0.1:2021`, `::1`, `[::1]`, `[::1]:2021`, `localhost`,
    /// `server.example:2022`.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let expected = "expected host[:port], e.g. 127.0.0.1, 127.0.0.1:2021, [::1]:2021 or \
                        localhost:2021";
        if text.is_empty() {
            return Err(format!("-a: no server address given ({expected})"));
        }
        if let Ok(socket) = text.parse::<SocketAddr>() {
            return checked(Host::Ip(socket.ip()), socket.port(), text);
        }
        // A bare IPv6 address has colons of its own: it can only be a host without a port.
        if let Ok(ip) = text.parse::<IpAddr>() {
            return checked(Host::Ip(ip), DEFAULT_PORT, text);
        }
        if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            return match inner.parse::<Ipv6Addr>() {
                Ok(ip) => checked(Host::Ip(IpAddr::V6(ip)), DEFAULT_PORT, text),
                Err(_) => Err(format!("-a `{text}`: `{inner}` is not an IPv6 address")),
            };
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => {
                let port = port.parse::<u16>().map_err(|_| {
                    format!("-a `{text}`: `{port}` is not a port number (0-65535); {expected}")
                })?;
                (host, port)
            }
            None => (text, DEFAULT_PORT),
        };
        if host.starts_with('[') || host.contains(':') {
            return Err(format!("-a `{text}`: not an address ({expected})"));
        }
        if !is_host_name(host) {
            return Err(format!(
                "-a `{text}`: `{host}` is neither an IP address nor a host name ({expected})"
            ));
        }
        checked(Host::Name(host.to_owned()), port, text)
    }
}

fn checked(host: Host, port: u16, text: &str) -> Result<ServerAddress, String> {
    if port == 0 {
        return Err(format!("-a `{text}`: port 0 cannot be connected to"));
    }
    // What a server's ready file and log print (`[::]:2021`) is where it listens.
    if let Host::Ip(ip) = &host {
        if ip.is_unspecified() {
            return Err(format!(
                "-a `{text}`: `{ip}` is the wildcard a server listens on (every interface), not \
                 an address to connect to; for a server on this machine use 127.0.0.1:{port} or \
                 [::1]:{port}"
            ));
        }
    }
    Ok(ServerAddress { host, port })
}

/// Letters, digits, `-`, `_` and dots between non-empty labels (RFC 1123, with `_` tolerated
/// as resolvers do).
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ServerAddress {
        match text.parse() {
            Ok(address) => address,
            Err(error) => panic!("{text}: {error}"),
        }
    }

    #[test]
    fn the_port_is_optional() {
        assert_eq!(parse("127.0.0.1").to_string(), "127.0.0.1:2021");
        assert_eq!(parse("127.0.0.1:2022").to_string(), "127.0.0.1:2022");
        assert_eq!(parse("::1").to_string(), "[::1]:2021");
        assert_eq!(parse("[::1]").to_string(), "[::1]:2021");
        assert_eq!(parse("[::1]:2022").to_string(), "[::1]:2022");
        assert_eq!(parse(" 10.0.0.7 ").to_string(), "10.0.0.7:2021");
    }

    #[test]
    fn a_listening_wildcard_is_refused_with_the_address_to_use() {
        for text in ["[::]:2030", "0.0.0.0:2030", "::"] {
            let error = text.parse::<ServerAddress>().unwrap_err();
            assert!(error.contains("wildcard a server listens on"), "{error}");
            assert!(
                error.contains("127.0.0.1:") && error.contains("[::1]:"),
                "{error}"
            );
        }
        assert!("[::]:2030"
            .parse::<ServerAddress>()
            .unwrap_err()
            .contains("127.0.0.1:2030"));
    }

    #[test]
    fn host_names_are_accepted() {
        assert_eq!(parse("localhost").to_string(), "localhost:2021");
        assert_eq!(parse("localhost:2022").to_string(), "localhost:2022");
        assert_eq!(
            parse("store-1.cluster.example:7000").to_string(),
            "store-1.cluster.example:7000"
        );
    }

    #[test]
    fn bad_addresses_say_why() {
        for (text, says) in [
            ("", "no server address"),
            ("127.0.0.1:", "is not a port number"),
            ("127.0.0.1:99999", "`99999` is not a port number"),
            ("host:http", "`http` is not a port number"),
            ("127.0.0.1:0", "port 0"),
            ("[::1", "not an address"),
            ("[zz]", "not an IPv6 address"),
            ("1:2:3", "not an address"),
            ("two words", "neither an IP address nor a host name"),
            ("a..b", "neither an IP address nor a host name"),
        ] {
            match text.parse::<ServerAddress>() {
                Ok(address) => panic!("`{text}` parsed as {address}"),
                Err(error) => assert!(error.contains(says), "`{text}`: {error}"),
            }
        }
    }

    #[tokio::test]
    async fn ips_need_no_resolver() {
        assert_eq!(
            parse("127.0.0.1").resolve().await,
            Ok(vec!["127.0.0.1:2021".parse().unwrap()])
        );
    }
}
