//! `plasma-stream-cli`'s REPL driven through a pseudo-terminal (util-linux `script(1)`), as a
//! person at a keyboard: Ctrl-C during a command, help, history.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plasma_stream_tests::{binary, oid, put, verify, Server, ServerConfig};

const MIB: u64 = 1 << 20;

/// The CLI in a terminal of its own, what it printed so far collected by a thread.
struct Terminal {
    child: Child,
    screen: Arc<Mutex<String>>,
}

impl Terminal {
    fn start(args: &[String], home: &Path) -> Option<Terminal> {
        // `script` gives the CLI a pty as its controlling terminal: Ctrl-C (0x03) typed
        // there is SIGINT in cooked mode (a command running) and a key for rustyline in raw
        // mode (at the prompt), as at a real terminal.
        // `exec`: the CLI replaces the shell script(1) starts. dash (/bin/sh, and the shell
        // when $SHELL is unset) would stay as its parent otherwise, die of the first Ctrl-C
        // typed while a command runs, and `script -e` would report the shell's 130.
        let mut line = format!(
            "exec {}",
            shell_quote(&binary("plasma-stream-cli").display().to_string())
        );
        for arg in args {
            line.push(' ');
            line.push_str(&shell_quote(arg));
        }
        let mut child = Command::new("script")
            .args(["-q", "-e", "-c", &line, "/dev/null"])
            .env("SHELL", "/bin/sh")
            .env("HOME", home)
            .env("TERM", "xterm")
            .env_remove("XDG_STATE_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut stdout = child.stdout.take()?;
        let screen = Arc::new(Mutex::new(String::new()));
        let collected = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buffer) {
                if let Ok(mut screen) = collected.lock() {
                    screen.push_str(&String::from_utf8_lossy(&buffer[..n]));
                }
            }
        });
        Some(Terminal { child, screen })
    }

    fn screen(&self) -> String {
        self.screen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits until `text` appears `count` times in the output.
    fn wait_for(&self, text: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.screen().matches(text).count() < count {
            assert!(
                Instant::now() < deadline,
                "`{text}` ×{count} did not appear:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn type_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.child.stdin.as_mut().expect("script stdin");
        stdin.write_all(bytes).expect("type into the terminal");
        stdin.flush().expect("flush");
    }

    fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the CLI did not exit:\n{}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the server logged `text`: a SYNC it logged was sent after the CLI's Ctrl-C
/// handler was in place (both are set up in the same poll), so a Ctrl-C now is not a race.
fn wait_until_logged(server: &Server, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.process.log().contains(text) {
        assert!(
            Instant::now() < deadline,
            "the server never logged `{text}`"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[test]
fn ctrl_c_interrupts_a_command_not_the_repl_and_history_is_kept() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no script(1) to make a pseudo-terminal");
        return;
    }
    // The source waits 8 s for an object to be sealed before answering "not found": a COPY of
    // a missing object keeps the SYNC busy long enough to interrupt it.
    let source = Server::start(ServerConfig::embedded(16 * MIB).with_args(&["-t", "8000"]));
    let destination = Server::embedded(16 * MIB);
    let present = oid(40, 2);
    put(&mut source.store(), present, 100, 0);
    let home = tempfile::tempdir().unwrap();
    let args = vec![
        "-a".to_owned(),
        destination.addr.to_string(),
        "--insecure".to_owned(),
    ];
    let mut terminal = Terminal::start(&args, home.path()).expect("start script(1)");
    terminal.wait_for("plasma-stream> ", 1);

    let started = Instant::now();
    terminal.type_bytes(format!("COPY {} {}\r", source.addr, oid(40, 1)).as_bytes());
    wait_until_logged(&destination, "SYNC peer_requests=1");
    terminal.type_bytes(b"\x03");
    // The server cancels the SYNC and reports the object that never came as cancelled.
    terminal.wait_for("cancelled by the client", 1);
    terminal.wait_for("cancelled: the report above says what arrived", 1);
    terminal.wait_for("plasma-stream> ", 2);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "Ctrl-C did not stop the wait:\n{}",
        terminal.screen()
    );

    // Still alive and still connected: help on one command, then a COPY that works.
    terminal.type_bytes(b"help COPY\r");
    terminal.wait_for("The server pulls each object", 1);
    terminal.wait_for("plasma-stream> ", 3);
    terminal.type_bytes(format!("COPY {} {present}\r", source.addr).as_bytes());
    terminal.wait_for("1 object: 1 arrived", 1);
    terminal.wait_for("plasma-stream> ", 4);
    verify(&mut destination.store(), present, 100, 0);

    // Ctrl-C at the prompt says how to leave; the second one leaves.
    terminal.type_bytes(b"\x03");
    terminal.wait_for("Ctrl-C again", 2);
    // The next prompt means rustyline is reading keys again (raw mode): a Ctrl-C typed before
    // it is the terminal's SIGINT, not the second key press this checks.
    terminal.wait_for("plasma-stream> ", 5);
    terminal.type_bytes(b"\x03");
    assert_eq!(terminal.wait_exit(), Some(0), "{}", terminal.screen());

    let history = home.path().join(".local/state/plasma-stream/history");
    let saved = std::fs::read_to_string(&history).expect("history saved");
    assert!(
        saved.contains("COPY ") && saved.contains("help COPY"),
        "{saved}"
    );
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&history), 0o600);
    assert_eq!(mode(history.parent().unwrap()), 0o700);

    // A new session starts with that history: Up recalls the last command.
    let mut terminal = Terminal::start(&args, home.path()).expect("start script(1)");
    terminal.wait_for("plasma-stream> ", 1);
    terminal.type_bytes(b"\x1b[A");
    terminal.wait_for(&present.to_string(), 1);
    // Ctrl-U clears the recalled line; Tab completes `he` to `help `.
    terminal.type_bytes(b"\x15he\tTAKE\r");
    terminal.wait_for("Like COPY, but the peer deletes its copy", 1);
    terminal.wait_for("plasma-stream> ", 2);
    terminal.type_bytes(b"\x03");
    terminal.wait_for("Ctrl-C again", 1);
    terminal.wait_for("plasma-stream> ", 3);
    terminal.type_bytes(b"\x03");
    assert_eq!(terminal.wait_exit(), Some(0), "{}", terminal.screen());
}
