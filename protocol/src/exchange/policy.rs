//! The holder's check-out policy, one for both wire formats: in this order, being taken by
//! someone else (0x70), missing or a store failure (0x71 / 0x60), sizes the format cannot
//! carry (0x50 / 0x51, and 0x52 in the legacy format), and only then BEGIN.
//!
//! Each step is its own function so that the legacy format, whose one reply covers a list of
//! objects, can apply each step to the whole list before the next (its documented order),
//! while an OBJECT stream applies all three to its one object ([`check_out`]).

use crate::{limits, Status};

/// Which wire format the object leaves by: their size limits differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// QUIC or TLS over TCP (format v1): data 0..=16 TiB, metadata 0..=65,536 bytes.
    V1,
    /// The original plaintext format: data 1..=16 TiB, metadata below 65,536 bytes (its
    /// 16-bit field cannot say 65,536).
    Legacy,
}

/// What the holder's store said about the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Sealed, with these sizes.
    Found {
        /// Data bytes.
        data_size: u64,
        /// Metadata bytes.
        metadata_size: u64,
    },
    /// Not sealed within the store timeout.
    Missing,
    /// The store call failed.
    StoreFailed,
}

/// Step 1: a TAKE in progress elsewhere claims the object (0x70) — for a TAKE, another TAKE
/// holds the claim; for a COPY, any TAKE does.
pub fn check_taken(taken_elsewhere: bool) -> Result<(), Status> {
    if taken_elsewhere {
        Err(Status::BeingDeleted)
    } else {
        Ok(())
    }
}

/// Step 2: the store has it (0x71 missing, 0x60 store failure). Returns its sizes.
pub fn check_lookup(lookup: Lookup) -> Result<(u64, u64), Status> {
    match lookup {
        Lookup::Found {
            data_size,
            metadata_size,
        } => Ok((data_size, metadata_size)),
        Lookup::Missing => Err(Status::NotFound),
        Lookup::StoreFailed => Err(Status::StoreError),
    }
}

/// Step 3: the format can carry the object (0x50 metadata, 0x51 data, 0x52 empty legacy data).
pub fn check_sizes(format: WireFormat, data_size: u64, metadata_size: u64) -> Result<(), Status> {
    let checked = match format {
        WireFormat::V1 => limits::validate_object_sizes(data_size, metadata_size),
        WireFormat::Legacy => limits::validate_legacy_object_sizes(data_size, metadata_size),
    };
    checked.map_err(|limit| limit.status().unwrap_or(Status::DataTooLarge))?;
    if format == WireFormat::Legacy && metadata_size >= limits::MAX_METADATA_SIZE {
        return Err(Status::MetadataTooLarge);
    }
    Ok(())
}

/// All three steps for one object, in order; its sizes if it may leave.
pub fn check_out(
    format: WireFormat,
    taken_elsewhere: bool,
    lookup: Lookup,
) -> Result<(u64, u64), Status> {
    check_taken(taken_elsewhere)?;
    let (data_size, metadata_size) = check_lookup(lookup)?;
    check_sizes(format, data_size, metadata_size)?;
    Ok((data_size, metadata_size))
}

/// Whether the local store already holding an object answers its pull (0x81): the one place
/// that decides "already in store", before connecting and after a failed connection alike.
pub fn already_here(contains: Result<bool, ()>) -> Option<Status> {
    match contains {
        Ok(true) => Some(Status::AlreadyInStore),
        Ok(false) => None,
        Err(()) => Some(Status::StoreError),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOUND: Lookup = Lookup::Found {
        data_size: 10,
        metadata_size: 4,
    };

    #[test]
    fn being_taken_comes_before_everything() {
        for lookup in [FOUND, Lookup::Missing, Lookup::StoreFailed] {
            assert_eq!(
                check_out(WireFormat::V1, true, lookup),
                Err(Status::BeingDeleted)
            );
        }
    }

    #[test]
    fn missing_and_store_errors_come_before_sizes() {
        assert_eq!(
            check_out(WireFormat::V1, false, Lookup::Missing),
            Err(Status::NotFound)
        );
        assert_eq!(
            check_out(WireFormat::Legacy, false, Lookup::StoreFailed),
            Err(Status::StoreError)
        );
        assert_eq!(check_out(WireFormat::V1, false, FOUND), Ok((10, 4)));
    }

    #[test]
    fn the_formats_differ_only_in_what_their_fields_can_say() {
        let max_meta = limits::MAX_METADATA_SIZE;
        assert_eq!(check_sizes(WireFormat::V1, 1, max_meta), Ok(()));
        assert_eq!(
            check_sizes(WireFormat::Legacy, 1, max_meta),
            Err(Status::MetadataTooLarge)
        );
        assert_eq!(check_sizes(WireFormat::V1, 0, 0), Ok(()));
        assert_eq!(
            check_sizes(WireFormat::Legacy, 0, 0),
            Err(Status::ZeroLengthData)
        );
        for format in [WireFormat::V1, WireFormat::Legacy] {
            assert_eq!(
                check_sizes(format, limits::MAX_DATA_SIZE + 1, 0),
                Err(Status::DataTooLarge)
            );
            assert_eq!(
                check_sizes(format, 1, max_meta + 1),
                Err(Status::MetadataTooLarge)
            );
        }
    }

    #[test]
    fn already_here_is_decided_once() {
        assert_eq!(already_here(Ok(true)), Some(Status::AlreadyInStore));
        assert_eq!(already_here(Ok(false)), None);
        assert_eq!(already_here(Err(())), Some(Status::StoreError));
    }
}
