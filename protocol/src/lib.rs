//! Plasma Stream's protocol, sans IO. (Being built: see issue 2.)
