//! The legacy plaintext TCP format's decoders (`plasma_stream_protocol::legacy`).
//!
//! Same properties as `protocol_wire`: no panic; decoded messages re-encode to the same bytes
//! and decode to themselves; strict prefixes of a whole message ask for more.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plasma_stream_protocol::legacy::{FrameHeader, SyncReply, TransferReply};
use plasma_stream_protocol::{DecodeError, EncodeError, Request};

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
        consumed <= buf.len(),
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
    for cut in [0, 1, consumed / 2, consumed.saturating_sub(1)] {
        if cut < consumed {
            assert_eq!(decode(&buf[..cut]), Ok(None), "prefix of {cut} bytes");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, buf)) = data.split_first() else {
        return;
    };
    match selector % 5 {
        0 | 1 => check(buf, Request::decode_legacy, |m, out| m.encode_legacy(out)),
        2 => {
            // The reply's length comes from the request; take it from the input too.
            let Some((&count, buf)) = buf.split_first() else {
                return;
            };
            let count = usize::from(count) * 5;
            check(buf, |b| SyncReply::decode(b, count), |m, out| m.encode(out));
        }
        3 => check(buf, TransferReply::decode, |m, out| m.encode(out)),
        _ => {
            check(buf, FrameHeader::decode, |m, out| m.encode(out));
            if let Some(word) = buf.get(..8) {
                let mut w = [0u8; 8];
                w.copy_from_slice(word);
                if let Ok(header) = FrameHeader::from_word(u64::from_le_bytes(w)) {
                    let _ = header.body_len();
                }
            }
        }
    }
});
