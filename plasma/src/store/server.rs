//! The Plasma socket server: an accept thread and one thread per connection.
//!
//! (First version: the listener is bound but connections are not served yet; the protocol
//! dispatch lands with the shared wire layer.)

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::state::ObjectInfo;
use super::Shared;

/// Encodes a Notification body for subscribers.
pub(super) fn encode_notification(_infos: &[ObjectInfo]) -> Vec<u8> {
    Vec::new()
}

/// The running listener.
pub(super) struct ServerHandle {
    path: PathBuf,
    accept: Option<JoinHandle<()>>,
}

impl ServerHandle {
    pub(super) fn start(path: &Path, shared: Arc<Shared>) -> std::io::Result<Self> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        let accept = std::thread::Builder::new()
            .name("plasma-store-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if shared.is_shut_down() {
                        return;
                    }
                    drop(conn);
                }
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            accept: Some(accept),
        })
    }

    pub(super) fn stop(mut self) {
        // Wake the accept loop so it sees the shutdown flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}
