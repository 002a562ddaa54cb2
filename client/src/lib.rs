//! The Plasma Stream client library. (Being built: see issue 5.)
