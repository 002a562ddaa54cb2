//! Passing one file descriptor over a Unix socket the way Arrow 11 does (`docs/plasma.md`
//! §4.3): each fd rides alone on a `sendmsg` carrying exactly one data byte and one
//! `SCM_RIGHTS` message with one int; the receiver asks `recvmsg` for exactly one byte, so it
//! never eats into the next frame.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};

use super::WireError;

/// The data byte we send with each fd. Receivers ignore its value (the C++ store happens to
/// send 0x14).
const FD_DATA_BYTE: u8 = 0;

/// Room for a few fds in the receive control buffer: a peer that (wrongly) packs several fds
/// into one message gets them all closed and an error, instead of a truncated control message
/// leaking some.
const RECV_FDS_ROOM: usize = 4;

/// Sends `fd` as one 1-byte message. Retries on EINTR.
pub fn send_fd(socket: impl AsFd, fd: BorrowedFd<'_>) -> Result<(), WireError> {
    let fds = [fd];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(WireError::FdPassing { fds: 1, bytes: 0 });
    }
    let byte = [FD_DATA_BYTE];
    loop {
        match sendmsg(
            socket.as_fd(),
            &[IoSlice::new(&byte)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(1) => return Ok(()),
            Ok(n) => return Err(WireError::FdPassing { fds: 1, bytes: n }),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(WireError::Io(e.into())),
        }
    }
}

/// Receives exactly one byte carrying exactly one fd (opened close-on-exec). EOF is `Closed`;
/// a byte without an fd, or with several, is a `FdPassing` error (any fds received are closed).
pub fn recv_fd(socket: impl AsFd) -> Result<OwnedFd, WireError> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(RECV_FDS_ROOM))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let received = loop {
        match recvmsg(
            socket.as_fd(),
            &mut [IoSliceMut::new(&mut byte)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(msg) => break msg,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(WireError::Io(e.into())),
        }
    };
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(passed) = message {
            fds.extend(passed);
        }
    }
    if received.bytes == 0 && fds.is_empty() {
        return Err(WireError::Closed);
    }
    let truncated = received.flags.contains(ReturnFlags::CTRUNC);
    if received.bytes != 1 || fds.len() != 1 || truncated {
        // Dropping `fds` closes whatever arrived.
        return Err(WireError::FdPassing {
            fds: fds.len(),
            bytes: received.bytes,
        });
    }
    fds.pop().ok_or(WireError::FdPassing { fds: 0, bytes: 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn one_fd_round_trips_without_eating_following_bytes() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"shared").unwrap();
        send_fd(&a, file.as_fd()).unwrap();
        (&a).write_all(b"next").unwrap();
        let got = recv_fd(&b).unwrap();
        let mut got = std::fs::File::from(got);
        got.seek(SeekFrom::Start(0)).unwrap();
        let mut s = String::new();
        got.read_to_string(&mut s).unwrap();
        assert_eq!(s, "shared");
        let mut next = [0u8; 4];
        (&b).read_exact(&mut next).unwrap();
        assert_eq!(&next, b"next");
    }

    #[test]
    fn byte_without_fd_is_an_error_and_eof_is_closed() {
        let (a, b) = UnixStream::pair().unwrap();
        (&a).write_all(b"x").unwrap();
        assert!(matches!(
            recv_fd(&b),
            Err(WireError::FdPassing { fds: 0, bytes: 1 })
        ));
        drop(a);
        assert!(matches!(recv_fd(&b), Err(WireError::Closed)));
    }
}
