//! The Plasma socket's frame layer (`plasma_store::wire::frame`): the 24-byte header decoder and
//! the frame reader, on arbitrary bytes. No panic; no allocation beyond the bytes that
//! actually arrive (a claimed length is not trusted); a frame read back after writing it is
//! the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plasma_store::wire::frame::{decode_header, encode_header, read_frame, write_frame};
use plasma_store::wire::FRAME_HEADER_LEN;

fuzz_target!(|data: &[u8]| {
    let Some((&limit, bytes)) = data.split_first() else {
        return;
    };
    // Limits from 0 to 2^31: the reader must cope with a body limit far above the input.
    let max_body = 1usize << (limit % 32);
    if let Some(header) = bytes.get(..FRAME_HEADER_LEN) {
        let mut h = [0u8; FRAME_HEADER_LEN];
        h.copy_from_slice(header);
        if let Ok((kind, len)) = decode_header(&h, max_body) {
            assert!(len <= max_body);
            assert_eq!(encode_header(kind, len), h);
        }
    }
    if let Ok(frame) = read_frame(bytes, max_body) {
        assert!(frame.body.len() <= max_body);
        let mut written = Vec::new();
        write_frame(&mut written, frame.kind, &frame.body).expect("writing to a Vec");
        assert_eq!(written, &bytes[..FRAME_HEADER_LEN + frame.body.len()]);
        assert_eq!(read_frame(&written[..], max_body).ok(), Some(frame));
    }
});
