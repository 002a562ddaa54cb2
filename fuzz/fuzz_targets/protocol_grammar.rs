//! The CLI line grammar (`plasma_stream_protocol::grammar`) and object-ID parsing on arbitrary
//! text. No panic; a parsed command's canonical `Display` line parses back to the same command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plasma_stream_protocol::grammar::parse_address;
use plasma_stream_protocol::{parse_command, ObjectId};

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    match parse_command(&line) {
        Ok(command) => {
            let canonical = command.to_string();
            match parse_command(&canonical) {
                Ok(again) => assert_eq!(again, command, "line {canonical:?}"),
                Err(e) => panic!("canonical line {canonical:?} of {line:?} does not parse: {e}"),
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    for token in line.split_whitespace().take(8) {
        if let Ok(id) = token.parse::<ObjectId>() {
            assert_eq!(id.to_hex().parse::<ObjectId>(), Ok(id));
        }
        let _ = parse_address(token);
    }
    let _ = ObjectId::from_slice(data);
});
