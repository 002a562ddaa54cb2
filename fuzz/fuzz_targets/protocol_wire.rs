//! The QUIC wire format's decoders (`plasma_stream_protocol::wire`) on arbitrary bytes.
//!
//! The first input byte picks the decoder, the rest is the buffer. Properties checked:
//! - no decoder panics, whatever the bytes;
//! - a decoded message re-encodes (its encoder accepts everything its decoder accepts), to
//!   exactly the bytes it was decoded from (the format is canonical), and decodes to itself;
//! - every strict prefix of a whole message is `Ok(None)` ("read more"), never an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plasma_stream_protocol::wire::{
    Ack, DeleteResult, DigestTrailer, ObjectHeader, ObjectRequest, StreamKind, StreamRequest,
    SyncReport, SyncRequest,
};
use plasma_stream_protocol::store_requests::{ListPiece, ListRequest, PutRequest, ServerStats};
use plasma_stream_protocol::{DecodeError, EncodeError};

/// Checks the decoder contract for one message type.
fn check<T, D, E>(buf: &[u8], decode: D, encode: E)
where
    T: PartialEq + std::fmt::Debug,
    D: Fn(&[u8]) -> Result<Option<(T, usize)>, DecodeError>,
    E: Fn(&T, &mut Vec<u8>) -> Result<(), EncodeError>,
{
    let Ok(Some((message, consumed))) = decode(buf) else {
        return;
    };
    assert!(
        consumed > 0 && consumed <= buf.len(),
        "consumed {consumed} of {}",
        buf.len()
    );
    let mut encoded = Vec::new();
    if let Err(e) = encode(&message, &mut encoded) {
        panic!("decoded {message:?} but its encoder refuses it: {e}");
    }
    assert_eq!(
        encoded,
        &buf[..consumed],
        "re-encoding {message:?} changed the bytes"
    );
    assert_eq!(decode(&encoded), Ok(Some((message, consumed))));
    // Prefixes ask for more. (Only a few: the check is quadratic.)
    for cut in [0, 1, consumed / 2, consumed - 1] {
        if cut < consumed {
            assert_eq!(decode(&buf[..cut]), Ok(None), "prefix of {cut} bytes");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, buf)) = data.split_first() else {
        return;
    };
    match selector % 13 {
        0 => check(buf, StreamRequest::decode, |m, out| m.encode(out)),
        1 => {
            check(buf, SyncRequest::decode, |m, out| m.encode(out));
            let _ = SyncRequest::declared_peer_request_count(buf);
        }
        2 => check(buf, SyncReport::decode, |m, out| m.encode(out)),
        3 => check(buf, ObjectRequest::decode, |m, out| m.encode(out)),
        4 => check(buf, ObjectHeader::decode, |m, out| m.encode(out)),
        5 => check(buf, Ack::decode, |m, out| m.encode(out)),
        6 => check(buf, DeleteResult::decode, |m, out| m.encode(out)),
        7 => check(buf, DigestTrailer::decode, |m, out| m.encode(out)),
        8 => check(buf, ListRequest::decode, |m, out| {
            m.encode(out);
            Ok(())
        }),
        9 => check(buf, ListPiece::decode, |m, out| m.encode(out)),
        10 => check(buf, ServerStats::decode, |m, out| m.encode(out)),
        11 => check(buf, PutRequest::decode, |m, out| m.encode(out)),
        _ => {
            let _ = StreamKind::peek(buf);
            // A decode error's status (what a server answers) never panics either.
            if let Err(e) = StreamRequest::decode(buf) {
                let _ = e.status();
                let _ = e.to_string();
            }
        }
    }
});
