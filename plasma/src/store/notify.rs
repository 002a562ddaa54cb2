//! Subscriber sockets: where the store pushes a notification for every seal and deletion.
//!
//! A pyarrow client subscribes by sending the store one end of a socketpair (`docs/plasma.md`
//! §4.4). Each notification is an 8-byte native-endian length followed by a `Notification`
//! FlatBuffer. Writes never block the store: what the socket cannot take now is queued and
//! flushed later (on the next notification, or by the store's timer thread). A subscriber whose
//! queue grows past [`MAX_QUEUED_BYTES`] is dropped, so a client that never reads cannot make
//! the store hold unbounded memory.

use std::collections::VecDeque;
use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream;

/// Queued notification bytes above which a subscriber that does not read is dropped.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;

/// One subscriber socket with its unsent bytes.
#[derive(Debug)]
pub struct Subscriber {
    stream: UnixStream,
    queue: VecDeque<u8>,
}

/// What happened when writing to a subscriber.
#[derive(Debug, PartialEq, Eq)]
pub enum FlushOutcome {
    /// Everything queued was written.
    Drained,
    /// Some bytes wait for the socket to drain.
    Pending,
    /// The subscriber is gone (peer closed) or hopelessly behind: drop it.
    Dead,
}

impl Subscriber {
    /// Wraps the client's socket end, switching it to non-blocking mode.
    pub fn new(stream: UnixStream) -> std::io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Self {
            stream,
            queue: VecDeque::new(),
        })
    }

    /// Queues one framed notification body (adds the 8-byte length) and tries to send.
    pub fn push(&mut self, body: &[u8]) -> FlushOutcome {
        let len = body.len() as i64;
        self.queue.extend(len.to_ne_bytes());
        self.queue.extend(body);
        if self.queue.len() > MAX_QUEUED_BYTES {
            return FlushOutcome::Dead;
        }
        self.flush()
    }

    /// Writes as much of the queue as the socket takes now.
    pub fn flush(&mut self) -> FlushOutcome {
        while !self.queue.is_empty() {
            let (front, _) = self.queue.as_slices();
            match self.stream.write(front) {
                Ok(0) => return FlushOutcome::Dead,
                Ok(n) => {
                    self.queue.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return FlushOutcome::Pending,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return FlushOutcome::Dead,
            }
        }
        FlushOutcome::Drained
    }

    pub fn has_pending(&self) -> bool {
        !self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn frames_are_length_prefixed_and_queue_when_full() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let mut sub = Subscriber::new(ours).unwrap();
        assert_eq!(sub.push(b"abc"), FlushOutcome::Drained);
        let mut buf = [0u8; 11];
        theirs.read_exact(&mut buf).unwrap();
        assert_eq!(&buf[..8], &3i64.to_ne_bytes());
        assert_eq!(&buf[8..], b"abc");
        // Fill the socket until it would block; the rest stays queued.
        let big = vec![7u8; 1 << 16];
        let mut outcome = FlushOutcome::Drained;
        for _ in 0..64 {
            outcome = sub.push(&big);
            if outcome == FlushOutcome::Pending {
                break;
            }
        }
        assert_eq!(outcome, FlushOutcome::Pending);
        assert!(sub.has_pending());
        drop(theirs);
        assert_eq!(sub.flush(), FlushOutcome::Dead);
    }
}
