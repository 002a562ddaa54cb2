//! QUIC and TLS-over-TCP transport. (Being built: see issue 5.)
