//! [`ObjectId`]: the 20-byte name of a Plasma object.

use std::fmt;
use std::str::FromStr;

/// A Plasma object ID: exactly 20 opaque bytes.
///
/// Written as 40 hex digits (`0102…1314`) in text, logs and errors; carried as 20 raw bytes on
/// both wire formats. Parsing accepts upper and lower case; display is always lower case, so
/// `id.to_string().parse() == Ok(id)` for every ID.
///
/// ```
/// use plasma_stream_protocol::ObjectId;
/// let id: ObjectId = "0102030405060708090a0b0c0d0e0f1011121314".parse().unwrap();
/// assert_eq!(id.as_bytes()[0], 0x01);
/// assert_eq!(id.to_string(), "0102030405060708090a0b0c0d0e0f1011121314");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ObjectId([u8; ObjectId::LEN]);

impl ObjectId {
    /// Bytes in an object ID (Plasma's `kUniqueIDSize`).
    pub const LEN: usize = 20;
    /// Characters in the hex form of an object ID.
    pub const HEX_LEN: usize = 2 * Self::LEN;

    /// Wraps 20 bytes. Every 20-byte value is a valid ID.
    pub const fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        ObjectId(bytes)
    }

    /// Copies an ID out of a slice, which must be exactly 20 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ParseObjectIdError> {
        <[u8; Self::LEN]>::try_from(bytes)
            .map(ObjectId)
            .map_err(|_| ParseObjectIdError::WrongByteLength { len: bytes.len() })
    }

    /// The 20 raw bytes, as they go on the wire and to the Plasma store.
    pub const fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// The 40-character lower-case hex form (same as `to_string()`).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl From<[u8; ObjectId::LEN]> for ObjectId {
    fn from(bytes: [u8; ObjectId::LEN]) -> Self {
        ObjectId(bytes)
    }
}

impl From<ObjectId> for [u8; ObjectId::LEN] {
    fn from(id: ObjectId) -> Self {
        id.0
    }
}

impl TryFrom<&[u8]> for ObjectId {
    type Error = ParseObjectIdError;
    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        ObjectId::from_slice(bytes)
    }
}

/// What the original client library's README does: `hex::decode(..)?.try_into()?`.
impl TryFrom<Vec<u8>> for ObjectId {
    type Error = ParseObjectIdError;

    fn try_from(bytes: Vec<u8>) -> Result<Self, Self::Error> {
        ObjectId::from_slice(&bytes)
    }
}

impl AsRef<[u8]> for ObjectId {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

impl FromStr for ObjectId {
    type Err = ParseObjectIdError;

    /// Parses exactly 40 hex digits (either case); no prefix, no separators, no whitespace.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let chars = text.chars().count();
        if chars != Self::HEX_LEN {
            return Err(ParseObjectIdError::WrongLength {
                token: shorten(text),
                chars,
            });
        }
        if let Some((index, found)) = text
            .chars()
            .enumerate()
            .find(|(_, c)| !c.is_ascii_hexdigit())
        {
            return Err(ParseObjectIdError::NotHex {
                token: shorten(text),
                position: index + 1,
                found,
            });
        }
        // 40 ASCII hex digits: exactly 20 bytes.
        let mut bytes = [0u8; Self::LEN];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| ParseObjectIdError::NotHex {
            token: shorten(text),
            position: 1,
            found: text.chars().next().unwrap_or('?'),
        })?;
        Ok(ObjectId(bytes))
    }
}

/// Keeps error messages one line long when someone pastes a megabyte where an ID belongs.
fn shorten(token: &str) -> String {
    const KEEP: usize = 64;
    if token.chars().count() <= KEEP {
        token.to_owned()
    } else {
        let head: String = token.chars().take(KEEP).collect();
        format!("{head}…")
    }
}

/// Why a text or byte slice is not an [`ObjectId`]. Text errors quote the token (shortened to
/// 64 characters) so a user can find it in what they typed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseObjectIdError {
    /// The token is not 40 characters long.
    #[error("object ID `{token}` has {chars} characters: an object ID is exactly 40 hex digits (20 bytes)")]
    WrongLength {
        /// The offending text (shortened if very long).
        token: String,
        /// How many characters it has.
        chars: usize,
    },
    /// The token has 40 characters but one of them is not a hex digit.
    #[error("object ID `{token}` has {found:?} at position {position}, which is not a hex digit (0-9, a-f, A-F)")]
    NotHex {
        /// The offending text.
        token: String,
        /// 1-based character position of the first bad character.
        position: usize,
        /// The bad character.
        found: char,
    },
    /// A byte slice is not 20 bytes long.
    #[error("an object ID is exactly 20 bytes, got {len}")]
    WrongByteLength {
        /// The slice's length.
        len: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_cases_and_displays_lower_hex() {
        let id: ObjectId = "0102030405060708090A0B0C0D0E0F1011121314".parse().unwrap();
        assert_eq!(
            id.as_bytes(),
            &core::array::from_fn::<u8, 20, _>(|i| i as u8 + 1)
        );
        assert_eq!(id.to_string(), "0102030405060708090a0b0c0d0e0f1011121314");
        assert_eq!(
            format!("{id:?}"),
            "ObjectId(0102030405060708090a0b0c0d0e0f1011121314)"
        );
    }

    #[test]
    fn wrong_length_names_token_and_length() {
        let err = "0102".parse::<ObjectId>().unwrap_err();
        assert_eq!(
            err,
            ParseObjectIdError::WrongLength {
                token: "0102".into(),
                chars: 4
            }
        );
        assert!(err.to_string().contains("`0102`"));
        assert!(err.to_string().contains("4 characters"));
        let err = "".parse::<ObjectId>().unwrap_err();
        assert!(err.to_string().contains("0 characters"));
    }

    #[test]
    fn non_hex_names_position() {
        let text = "0102030405060708090a0b0c0d0e0f10111213zz";
        let err = text.parse::<ObjectId>().unwrap_err();
        assert_eq!(
            err,
            ParseObjectIdError::NotHex {
                token: text.into(),
                position: 39,
                found: 'z'
            }
        );
        assert!(err.to_string().contains("position 39"), "{err}");
    }

    #[test]
    fn multibyte_characters_count_as_characters() {
        // 40 characters but the last is two bytes: must be NotHex, not a panic or WrongLength.
        let text = "0102030405060708090a0b0c0d0e0f101112131é";
        let err = text.parse::<ObjectId>().unwrap_err();
        assert!(matches!(
            err,
            ParseObjectIdError::NotHex {
                position: 40,
                found: 'é',
                ..
            }
        ));
    }

    #[test]
    fn long_tokens_are_shortened_in_messages() {
        let text = "x".repeat(10_000);
        let msg = text.parse::<ObjectId>().unwrap_err().to_string();
        assert!(msg.len() < 300, "{msg}");
        assert!(msg.contains("10000 characters"));
    }

    #[test]
    fn from_slice_checks_length() {
        assert!(ObjectId::from_slice(&[0; 20]).is_ok());
        assert_eq!(
            ObjectId::from_slice(&[0; 19]),
            Err(ParseObjectIdError::WrongByteLength { len: 19 })
        );
        assert!(ObjectId::from_slice(&[0; 21]).is_err());
    }
}
