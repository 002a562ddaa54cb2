//! The text grammar of CLI lines: `COPY`, `TAKE`, and a multi-peer `SYNC` in one line.
//!
//! ```text
//! line          = blank* command blank*
//! command       = peer-request
//!               | "SYNC" blank+ peer-request ( separator peer-request )*
//! separator     = blank* ";" blank*  |  blank+        (the ";" is optional but clearer)
//! peer-request  = kind blank+ address ( blank+ object-id )+
//! kind          = "COPY" | "TAKE"                     (any case)
//! address       = IPv4 ":" port  |  "[" IPv6 "]" ":" port      (port 1..=65535)
//! object-id     = 40 hex digits                       (any case)
//! blank         = space | tab                         (any run; CR/LF also count as blank)
//! ```
//!
//! Examples:
//!
//! ```text
//! COPY 127.0.0.1:2022 0102030405060708090a0b0c0d0e0f1011121314
//! take [::1]:2022 0102030405060708090a0b0c0d0e0f1011121314 ffffffffffffffffffffffffffffffffffffffff
//! SYNC COPY 10.0.0.2:2021 0102030405060708090a0b0c0d0e0f1011121314 ; TAKE [fd00::3]:2021 1111111111111111111111111111111111111111
//! ```
//!
//! A line always becomes a SYNC sent to the server the CLI is connected to: `COPY a ids…` is a
//! SYNC of that one peer request. Several peer requests need the `SYNC` keyword. Host names
//! are not resolved here (this crate does no I/O): addresses are IP literals.
//!
//! The limits of [`crate::limits`] apply (1..=1024 peer requests, 1..=65,536 IDs per peer
//! request, no ID twice in the line). Every error names the offending token and its 1-based
//! column (counted in characters), and says why.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use crate::limits::{self, MAX_IDS_PER_LIST, MAX_PEER_REQUESTS};
use crate::{LimitError, ObjectId, ParseObjectIdError, PeerRequest, TransferKind};

/// What one CLI line asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Command {
    /// Pull objects from peers into the connected server (`COPY …`, `TAKE …`, `SYNC …`).
    Sync(Vec<PeerRequest>),
}

impl Command {
    /// The peer requests of the command.
    pub fn peer_requests(&self) -> &[PeerRequest] {
        match self {
            Command::Sync(peer_requests) => peer_requests,
        }
    }

    /// Consumes the command, returning its peer requests.
    pub fn into_peer_requests(self) -> Vec<PeerRequest> {
        match self {
            Command::Sync(peer_requests) => peer_requests,
        }
    }
}

impl fmt::Display for Command {
    /// The canonical line: `COPY a ids…` for one peer request, `SYNC … ; …` for several.
    /// Parsing it gives the same command back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peer_requests = self.peer_requests();
        if peer_requests.len() != 1 {
            f.write_str("SYNC ")?;
        }
        for (index, peer_request) in peer_requests.iter().enumerate() {
            if index > 0 {
                f.write_str(" ; ")?;
            }
            write!(f, "{peer_request}")?;
        }
        Ok(())
    }
}

impl FromStr for Command {
    type Err = GrammarError;
    fn from_str(line: &str) -> Result<Self, Self::Err> {
        parse_command(line)
    }
}

/// Why a CLI line is not a command. Every variant but `Empty` names a token (or the place
/// where one is missing) and its 1-based column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    /// Nothing but blanks.
    #[error("empty line: expected COPY, TAKE or SYNC")]
    Empty,
    /// The first word is not a command.
    #[error("column {column}: unknown command `{token}`: expected COPY, TAKE or SYNC")]
    UnknownCommand {
        /// The word.
        token: String,
        /// Its column.
        column: usize,
    },
    /// Where a peer request must start, something else stands (or nothing).
    #[error("column {column}: expected COPY or TAKE, found {}", describe_found(.token))]
    ExpectedTransferKind {
        /// The token found (empty at the end of the line).
        token: String,
        /// Its column.
        column: usize,
    },
    /// A COPY/TAKE without an address.
    #[error("column {column}: `{keyword}` needs a peer address (1.2.3.4:port or [v6]:port), found the end of the line")]
    MissingAddress {
        /// The keyword as written.
        keyword: String,
        /// Column just past the line's end.
        column: usize,
    },
    /// The address token is not an IP socket address.
    #[error("column {column}: `{token}` is not a peer address: {reason}")]
    BadAddress {
        /// The token.
        token: String,
        /// Its column.
        column: usize,
        /// Why, in words.
        reason: String,
    },
    /// A peer request with no object ID.
    #[error("column {column}: peer request for `{address}` needs at least one object ID (40 hex digits), found {}", describe_found(.found))]
    MissingObjectId {
        /// The address token of that peer request.
        address: String,
        /// The column where an ID was expected.
        column: usize,
        /// What stood there instead (empty at the end of the line).
        found: String,
    },
    /// A token in an ID list is not an object ID.
    #[error("column {column}: {source}")]
    BadObjectId {
        /// Its column.
        column: usize,
        /// Why (names the token).
        source: ParseObjectIdError,
    },
    /// The same ID twice in one line.
    #[error("column {column}: object ID {token} appears twice in this SYNC (first at column {first_column})")]
    DuplicateId {
        /// The ID as written.
        token: String,
        /// Column of the second occurrence.
        column: usize,
        /// Column of the first occurrence.
        first_column: usize,
    },
    /// More than 65,536 IDs in one peer request.
    #[error("column {column}: object ID `{token}` is one too many: a peer request has at most {MAX_IDS_PER_LIST} object IDs")]
    TooManyIds {
        /// The first ID past the limit.
        token: String,
        /// Its column.
        column: usize,
    },
    /// More than 1024 peer requests in one SYNC.
    #[error("column {column}: `{token}` starts peer request {}, but a SYNC has at most {MAX_PEER_REQUESTS}", MAX_PEER_REQUESTS + 1)]
    TooManyPeerRequests {
        /// The keyword of the first peer request past the limit.
        token: String,
        /// Its column.
        column: usize,
    },
    /// A second peer request (or `;`) in a line that does not start with SYNC.
    #[error("column {column}: `{token}` starts a second peer request: write several as `SYNC COPY <addr> <oid>… ; TAKE <addr> <oid>…`")]
    SeveralWithoutSync {
        /// The token.
        token: String,
        /// Its column.
        column: usize,
    },
    /// A limit check that the token-level checks above did not catch (kept for safety).
    #[error(transparent)]
    Limit(#[from] LimitError),
}

fn describe_found(token: &str) -> String {
    if token.is_empty() {
        "the end of the line".to_owned()
    } else {
        format!("`{token}`")
    }
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    text: &'a str,
    /// 1-based column of the first character.
    column: usize,
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Splits at runs of blanks; `;` is always a token of its own.
///
/// The slices below cannot panic: every offset comes from `char_indices` (a char boundary),
/// and `;` is one byte, so `offset + 1` is the next boundary.
fn tokenize(line: &str) -> (Vec<Token<'_>>, usize) {
    let mut tokens = Vec::new();
    let mut start: Option<(usize, usize)> = None; // (byte offset, column)
    let mut column = 0;
    for (offset, c) in line.char_indices() {
        column += 1;
        if is_blank(c) || c == ';' {
            if let Some((begin, col)) = start.take() {
                tokens.push(Token {
                    text: &line[begin..offset],
                    column: col,
                });
            }
            if c == ';' {
                tokens.push(Token {
                    text: &line[offset..offset + 1],
                    column,
                });
            }
        } else if start.is_none() {
            start = Some((offset, column));
        }
    }
    if let Some((begin, col)) = start {
        tokens.push(Token {
            text: &line[begin..],
            column: col,
        });
    }
    (tokens, column + 1)
}

fn keyword(token: &str) -> Option<TransferKind> {
    if token.eq_ignore_ascii_case("COPY") {
        Some(TransferKind::Copy)
    } else if token.eq_ignore_ascii_case("TAKE") {
        Some(TransferKind::Take)
    } else {
        None
    }
}

/// Parses a peer address: `1.2.3.4:port` or `[v6]:port`, port 1..=65535.
pub fn parse_address(token: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = token.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err("port 0 cannot be connected to".to_owned());
        }
        return Ok(addr);
    }
    let reason = if token.starts_with('[') {
        match token.rsplit_once("]:") {
            None => "expected [IPv6]:port (a closing `]` and a `:port`)".to_owned(),
            Some((ip, port)) => {
                if port.parse::<u16>().is_err() {
                    format!("port `{port}` is not a number from 1 to 65535")
                } else {
                    format!("`{}` is not an IPv6 address", ip.trim_start_matches('['))
                }
            }
        }
    } else if token.matches(':').count() > 1 {
        "write IPv6 addresses in brackets, as [v6]:port".to_owned()
    } else {
        match token.rsplit_once(':') {
            None => "the port is missing: expected 1.2.3.4:port or [v6]:port".to_owned(),
            Some((host, port)) => {
                if port.parse::<u16>().is_err() {
                    format!("port `{port}` is not a number from 1 to 65535")
                } else if host.chars().any(|c| c.is_ascii_alphabetic()) {
                    format!("`{host}` is not an IP address (host names are not resolved here)")
                } else {
                    format!("`{host}` is not an IPv4 address")
                }
            }
        }
    };
    Err(reason)
}

/// Parses one CLI line into a [`Command`]; see the [module docs](self) for the grammar.
pub fn parse_command(line: &str) -> Result<Command, GrammarError> {
    let (tokens, end_column) = tokenize(line);
    let mut tokens = tokens.into_iter().peekable();
    let first = tokens.next().ok_or(GrammarError::Empty)?;
    let sync = first.text.eq_ignore_ascii_case("SYNC");
    let mut next_kind = if sync {
        None
    } else if keyword(first.text).is_some() {
        Some(first)
    } else {
        return Err(GrammarError::UnknownCommand {
            token: first.text.to_owned(),
            column: first.column,
        });
    };

    let mut peer_requests = Vec::new();
    let mut seen: HashMap<ObjectId, usize> = HashMap::new();
    loop {
        // The peer request's keyword.
        let kind_token = match next_kind.take().or_else(|| tokens.next()) {
            Some(token) => token,
            None => {
                return Err(GrammarError::ExpectedTransferKind {
                    token: String::new(),
                    column: end_column,
                })
            }
        };
        let Some(kind) = keyword(kind_token.text) else {
            return Err(GrammarError::ExpectedTransferKind {
                token: kind_token.text.to_owned(),
                column: kind_token.column,
            });
        };
        if peer_requests.len() == MAX_PEER_REQUESTS {
            return Err(GrammarError::TooManyPeerRequests {
                token: kind_token.text.to_owned(),
                column: kind_token.column,
            });
        }

        // The address.
        let address_token = tokens.next().ok_or_else(|| GrammarError::MissingAddress {
            keyword: kind_token.text.to_owned(),
            column: end_column,
        })?;
        if address_token.text == ";" {
            return Err(GrammarError::BadAddress {
                token: ";".to_owned(),
                column: address_token.column,
                reason: "expected 1.2.3.4:port or [v6]:port".to_owned(),
            });
        }
        let from =
            parse_address(address_token.text).map_err(|reason| GrammarError::BadAddress {
                token: address_token.text.to_owned(),
                column: address_token.column,
                reason,
            })?;

        // The object IDs, up to a `;`, the next keyword, or the end.
        let mut objects = Vec::new();
        while let Some(token) = tokens.peek().copied() {
            if token.text == ";" || keyword(token.text).is_some() {
                break;
            }
            tokens.next();
            let id =
                token
                    .text
                    .parse::<ObjectId>()
                    .map_err(|source| GrammarError::BadObjectId {
                        column: token.column,
                        source,
                    })?;
            if objects.len() == MAX_IDS_PER_LIST {
                return Err(GrammarError::TooManyIds {
                    token: token.text.to_owned(),
                    column: token.column,
                });
            }
            if let Some(first_column) = seen.insert(id, token.column) {
                return Err(GrammarError::DuplicateId {
                    token: token.text.to_owned(),
                    column: token.column,
                    first_column,
                });
            }
            objects.push(id);
        }
        if objects.is_empty() {
            let (found, column) = match tokens.peek() {
                Some(token) => (token.text.to_owned(), token.column),
                None => (String::new(), end_column),
            };
            return Err(GrammarError::MissingObjectId {
                address: address_token.text.to_owned(),
                column,
                found,
            });
        }
        peer_requests.push(PeerRequest::new(kind, from, objects));

        // What follows: the end, or (in a SYNC) another peer request.
        match tokens.next() {
            None => break,
            Some(token) if !sync => {
                return Err(GrammarError::SeveralWithoutSync {
                    token: token.text.to_owned(),
                    column: token.column,
                })
            }
            Some(token) if token.text == ";" => {}
            Some(token) => next_kind = Some(token),
        }
    }
    limits::validate_sync(&peer_requests)?;
    Ok(Command::Sync(peer_requests))
}
