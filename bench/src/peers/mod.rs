//! The peers a user would otherwise pick, moving the same bytes in the same run.

pub mod copy;
pub mod flight;
pub mod quic_copy;
