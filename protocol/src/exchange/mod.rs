//! The OBJECT exchange as two state machines, sans I/O: [`ObjectPull`] (the puller: a server
//! pulling into its store, or a client pulling into memory) and [`ObjectServe`] (the holder,
//! serving from its store), plus the holder's check-out policy that both wire formats share
//! ([`policy`]).
//!
//! One exchange moves one object on one stream:
//!
//! ```text
//! puller                                    holder
//!   ObjectRequest (kind, id, offset) ───────▶  policy: 0x70 → 0x71/0x60 → 0x50/0x51
//!                      ◀─────── ObjectHeader   Begin {sizes, offset} or Failed(status)
//!                      ◀─────── metadata       all of it
//!                      ◀─────── data           from the header's offset to the end
//!                      ◀─────── DigestTrailer  only if the request asked for it
//!   Ack (0x41 sealed, or why not) ─────────▶  TAKE: delete only after 0x41, in time
//!                      ◀─────── DeleteResult   TAKE after 0x41 only
//! ```
//!
//! The machines decide; their drivers (thin async loops in the `stream` client library and
//! the server) only move the bytes the machines ask for. Every step is checked: a header the
//! request did not allow (a resume offset we did not ask for, sizes that changed under a
//! resume, sizes past the limits), a body that ends short or runs long, an Ack that is not an
//! outcome, or arrives after the holder gave up waiting, or before the body was sent. Time
//! is an input too: a driver whose wait for the Ack ran out tells [`ObjectServe`], which then
//! keeps the object whatever arrives later.
//!
//! Resuming is a start offset: [`ObjectPull::resume`] asks for the data from `offset` and
//! insists that the holder's object has the sizes the puller already holds part of; a holder
//! may restart from 0 (it does not resume), and the puller then starts over.

mod error;
pub mod policy;
mod pull;
mod serve;

pub use error::ExchangeError;
pub use pull::{Answer, Body, ObjectPull, PullRead};
pub use serve::{AckVerdict, ObjectServe};

#[cfg(test)]
mod tests;
