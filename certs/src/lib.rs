//! Certificates and trust. (Being built: see issue 5.)
