//! [`Status`]: the one-byte status codes shared by both wire formats.

use std::fmt;

/// A status byte, with the values and meanings of the original implementation (`docs/protocol.md`
/// §3; its legacy format is §5); the QUIC format reuses the same codes so reports read the same
/// everywhere. 0x63 and 0x64 are this project's additions.
///
/// `Begin` (0x00) is not an outcome: it announces that object bytes follow. `Success` (0x41) is
/// the only "it worked" outcome. Everything else names what went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Status {
    /// 0x00: objects (or an object) follow.
    Begin = 0x00,
    /// 0x41: success (per SYNC peer request, per object, per acknowledgement or delete).
    Success = 0x41,
    /// 0x50: the object's metadata is larger than the limit.
    MetadataTooLarge = 0x50,
    /// 0x51: the object's data is larger than the limit.
    DataTooLarge = 0x51,
    /// 0x52: the object has zero bytes of data (refused by the legacy format only).
    ZeroLengthData = 0x52,
    /// 0x60: the local Plasma store failed.
    StoreError = 0x60,
    /// 0x61: the peer's Plasma store failed (a peer's 0x60, as the puller reports it).
    PeerStoreError = 0x61,
    /// 0x62: the peer request failed internally.
    PeerRequestFailed = 0x62,
    /// 0x63: the access policy does not permit it (this project's addition: a refused SYNC,
    /// COPY, TAKE, or a peer that may not serve objects).
    NotPermitted = 0x63,
    /// 0x64: the local store has no room for the object without evicting sealed objects
    /// (this project's addition: incoming objects never evict by default).
    StoreFull = 0x64,
    /// 0x70: the object is scheduled for deletion by a TAKE in progress.
    BeingDeleted = 0x70,
    /// 0x71: the object was not found (not sealed within the store timeout).
    NotFound = 0x71,
    /// 0x80: the object is already being received by another request.
    AlreadyReceiving = 0x80,
    /// 0x81: the object is already in the local store.
    AlreadyInStore = 0x81,
    /// 0x90: the connection to the peer failed.
    PeerConnectionFailed = 0x90,
    /// 0x91: the connection to the client failed.
    ClientConnectionFailed = 0x91,
}

impl Status {
    /// Every status, in code order (handy for tests and tables).
    pub const ALL: [Status; 16] = [
        Status::Begin,
        Status::Success,
        Status::MetadataTooLarge,
        Status::DataTooLarge,
        Status::ZeroLengthData,
        Status::StoreError,
        Status::PeerStoreError,
        Status::PeerRequestFailed,
        Status::NotPermitted,
        Status::StoreFull,
        Status::BeingDeleted,
        Status::NotFound,
        Status::AlreadyReceiving,
        Status::AlreadyInStore,
        Status::PeerConnectionFailed,
        Status::ClientConnectionFailed,
    ];

    /// The byte on the wire.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The documented meaning, in words (what `Display` prints after the code).
    pub const fn message(self) -> &'static str {
        match self {
            Status::Begin => "objects follow",
            Status::Success => "success",
            Status::MetadataTooLarge => "object metadata too large",
            Status::DataTooLarge => "object data too large",
            Status::ZeroLengthData => "zero-length object data",
            Status::StoreError => "local Plasma store error",
            Status::PeerStoreError => "the peer's Plasma store failed",
            Status::PeerRequestFailed => "the peer request failed internally",
            Status::NotPermitted => "not permitted by the access policy",
            Status::StoreFull => "the local store has no room for the object without evicting",
            Status::BeingDeleted => "object is scheduled for deletion by a TAKE in progress",
            Status::NotFound => "object not found",
            Status::AlreadyReceiving => "object is already being received by another request",
            Status::AlreadyInStore => "object is already in the local store",
            Status::PeerConnectionFailed => "connection to the peer failed",
            Status::ClientConnectionFailed => "connection to the client failed",
        }
    }

    /// True for [`Status::Success`] only.
    pub const fn is_success(self) -> bool {
        matches!(self, Status::Success)
    }

    /// How a puller reports a code it received from a peer: the peer's *local* store error
    /// (0x60) becomes 0x61 ("the peer's store failed"); every other code passes through.
    pub const fn as_reported_by_puller(self) -> Status {
        match self {
            Status::StoreError => Status::PeerStoreError,
            other => other,
        }
    }
}

impl From<Status> for u8 {
    fn from(status: Status) -> u8 {
        status.code()
    }
}

impl TryFrom<u8> for Status {
    type Error = UnknownStatus;
    fn try_from(byte: u8) -> Result<Self, Self::Error> {
        Status::ALL
            .into_iter()
            .find(|s| s.code() == byte)
            .ok_or(UnknownStatus(byte))
    }
}

impl fmt::Display for Status {
    /// `0x71 (object not found)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x} ({})", self.code(), self.message())
    }
}

/// A byte that is not one of the documented status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0:#04x} is not a documented status code")]
pub struct UnknownStatus(pub u8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_documented_table() {
        let table: [(u8, Status); 16] = [
            (0x00, Status::Begin),
            (0x41, Status::Success),
            (0x50, Status::MetadataTooLarge),
            (0x51, Status::DataTooLarge),
            (0x52, Status::ZeroLengthData),
            (0x60, Status::StoreError),
            (0x61, Status::PeerStoreError),
            (0x62, Status::PeerRequestFailed),
            (0x63, Status::NotPermitted),
            (0x64, Status::StoreFull),
            (0x70, Status::BeingDeleted),
            (0x71, Status::NotFound),
            (0x80, Status::AlreadyReceiving),
            (0x81, Status::AlreadyInStore),
            (0x90, Status::PeerConnectionFailed),
            (0x91, Status::ClientConnectionFailed),
        ];
        for (code, status) in table {
            assert_eq!(status.code(), code);
            assert_eq!(Status::try_from(code), Ok(status));
        }
    }

    #[test]
    fn every_other_byte_is_unknown() {
        let known = Status::ALL.map(Status::code);
        for byte in 0..=u8::MAX {
            assert_eq!(
                Status::try_from(byte).is_ok(),
                known.contains(&byte),
                "{byte:#x}"
            );
        }
        assert_eq!(
            UnknownStatus(0x42).to_string(),
            "0x42 is not a documented status code"
        );
    }

    #[test]
    fn display_shows_code_and_message() {
        assert_eq!(Status::NotFound.to_string(), "0x71 (object not found)");
        assert_eq!(Status::Begin.to_string(), "0x00 (objects follow)");
    }

    #[test]
    fn peer_store_error_is_renamed_by_the_puller() {
        assert_eq!(
            Status::StoreError.as_reported_by_puller(),
            Status::PeerStoreError
        );
        assert_eq!(Status::NotFound.as_reported_by_puller(), Status::NotFound);
    }
}
