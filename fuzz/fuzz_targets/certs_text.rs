//! The text a user or a trust file gives the certs crate: fingerprints (`Fingerprint`'s
//! `FromStr`) and whole trust files (`TrustedFingerprints::extend_from_text`). No panic; a
//! parsed fingerprint's `Display` form parses back to it; a trust file that parses keeps
//! every fingerprint it names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plasma_stream_certs::{Fingerprint, TrustedFingerprints};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(fingerprint) = text.parse::<Fingerprint>() {
        let shown = fingerprint.to_string();
        assert_eq!(
            shown.parse::<Fingerprint>().ok(),
            Some(fingerprint),
            "{shown:?}"
        );
        let _ = fingerprint.short();
    }
    let mut trusted = TrustedFingerprints::new();
    match trusted.extend_from_text(&text) {
        Ok(()) => {
            for line in text.lines() {
                let content = line.split('#').next().unwrap_or("");
                if let Some(token) = content.split_whitespace().next() {
                    let fingerprint: Fingerprint = token.parse().expect("parsed once already");
                    assert!(trusted.contains(&fingerprint));
                }
            }
        }
        Err((line, error)) => {
            assert!(line >= 1 && line <= text.lines().count(), "line {line}");
            let _ = error.to_string();
        }
    }
});
