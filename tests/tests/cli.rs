//! `plasma-stream-cli` used non-interactively: exit codes and one-line errors.

use plasma_stream_tests::{cli, oid, put, verify, Server};

const MIB: u64 = 1 << 20;

#[test]
fn one_command_exit_codes() {
    let source = Server::embedded(16 * MIB);
    let destination = Server::embedded(16 * MIB);
    let (a, b) = (oid(30, 1), oid(30, 2));
    put(&mut source.store(), a, 100, 1);
    put(&mut source.store(), b, 200, 2);

    let from = source.addr.to_string();
    let output = cli(destination.addr, &["COPY", &from, &a.to_string()], None);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("0x41"), "{stdout}");
    verify(&mut destination.store(), a, 100, 1);

    // One object missing: exit 1, and the report names it.
    let missing = oid(30, 99);
    let output = cli(
        destination.addr,
        &["TAKE", &from, &b.to_string(), &missing.to_string()],
        None,
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&missing.to_string()) && stdout.contains("0x71"),
        "{stdout}"
    );
    verify(&mut destination.store(), b, 200, 2);

    // A bad token: exit 2, one line naming it.
    let output = cli(destination.addr, &["COPY", &from, "0102zz"], None);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let error_lines: Vec<_> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(error_lines.len(), 1, "{stderr}");
    assert!(error_lines[0].contains("0102zz"), "{stderr}");
}

#[test]
fn script_on_stdin_and_multi_peer_sync() {
    let peer_a = Server::embedded(16 * MIB);
    let peer_b = Server::embedded(16 * MIB);
    let destination = Server::embedded(32 * MIB);
    let (a, b, c) = (oid(31, 1), oid(31, 2), oid(31, 3));
    put(&mut peer_a.store(), a, 10, 0);
    put(&mut peer_b.store(), b, 20, 0);
    put(&mut peer_a.store(), c, 30, 0);
    let script = format!(
        "# a comment\n\nSYNC COPY {} {a} ; TAKE {} {b}\nCOPY {} {c}\n",
        peer_a.addr, peer_b.addr, peer_a.addr
    );
    let output = cli(destination.addr, &["--json"], Some(&script));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Progress event lines come before each report; one report line per command.
    let reports: Vec<_> = stdout
        .lines()
        .filter(|l| l.contains("\"event\":\"report\""))
        .collect();
    assert_eq!(reports.len(), 2, "{stdout}");
    assert!(
        reports.iter().all(|l| l.contains("\"success\":true")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .all(|l| l.starts_with("{\"") && l.contains("\"event\":")),
        "every line is one JSON event: {stdout}"
    );
    let mut store = destination.store();
    verify(&mut store, a, 10, 0);
    verify(&mut store, b, 20, 0);
    verify(&mut store, c, 30, 0);
}

#[test]
fn unreachable_server_is_exit_2() {
    let unused = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let output = std::process::Command::new(plasma_stream_tests::binary("plasma-stream-cli"))
        .args([
            "-a",
            &unused.to_string(),
            "--insecure",
            "--transport",
            "tcp",
            "COPY",
            "127.0.0.1:1",
        ])
        .arg(oid(32, 1).to_string())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot connect"));
}

/// `plasma-stream-cli ARGS…` (no `-a`/`--insecure` added) with a private HOME and none of the
/// client's environment variables, so trust and identity come from the arguments alone.
fn cli_in_home(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(plasma_stream_tests::binary("plasma-stream-cli"));
    command
        .args(args)
        .env("HOME", home)
        .stdin(std::process::Stdio::null());
    for variable in [
        "XDG_CONFIG_HOME",
        "XDG_STATE_HOME",
        "PLASMA_STREAM_INSECURE",
        "PLASMA_STREAM_TRUST",
        "PLASMA_STREAM_TRUST_FILE",
        "PLASMA_STREAM_CA",
        "PLASMA_STREAM_IDENTITY_DIR",
    ] {
        command.env_remove(variable);
    }
    command.output().expect("run plasma-stream-cli")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn already_there_is_exit_0_and_strict_makes_it_1() {
    let source = Server::embedded(16 * MIB);
    let destination = Server::embedded(16 * MIB);
    let a = oid(33, 1);
    put(&mut source.store(), a, 1000, 8);
    let from = source.addr.to_string();
    let id = a.to_string();

    let output = cli(destination.addr, &["COPY", &from, &id], None);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("1 object: 1 arrived, 0 already there, 0 failed; 1008 bytes in "),
        "{stdout}"
    );
    assert!(stdout.contains("/s)"), "a rate: {stdout}");

    // The same COPY again: nothing to do, which is what was asked for.
    let output = cli(destination.addr, &["COPY", &from, &id], None);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!("{id}: already there, 0x81")),
        "{stdout}"
    );
    assert!(
        stdout.contains("0 arrived, 1 already there, 0 failed"),
        "{stdout}"
    );

    let output = cli(destination.addr, &["--strict", "COPY", &from, &id], None);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        text(&output.stdout).contains("--strict: already there counts as failed"),
        "{output:?}"
    );

    let output = cli(destination.addr, &["--json", "COPY", &from, &id], None);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("\"success\":true") && stdout.contains("\"status_hex\":\"0x81\""),
        "{stdout}"
    );
    assert!(stdout.contains("\"outcome\":\"already there\""), "{stdout}");

    // Not found is a failure whatever --strict says.
    let missing = oid(33, 99).to_string();
    let output = cli(destination.addr, &["COPY", &from, &id, &missing], None);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!("{missing}: failed, 0x71")),
        "{stdout}"
    );
    verify(&mut destination.store(), a, 1000, 8);
}

#[test]
fn options_after_the_command_are_options() {
    let source = Server::embedded(16 * MIB);
    let destination = Server::embedded(16 * MIB);
    let a = oid(34, 1);
    put(&mut source.store(), a, 10, 0);
    let from = source.addr.to_string();
    let id = a.to_string();

    // The command line: `--json` after the object ID.
    let output = cli(destination.addr, &["COPY", &from, &id, "--json"], None);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(
        stdout.starts_with('{') && stdout.contains("\"success\":true"),
        "{stdout}"
    );
    verify(&mut destination.store(), a, 10, 0);

    // A misspelt option is refused by name, not read as an object ID.
    let output = cli(destination.addr, &["COPY", &from, &id, "--jsn"], None);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("unexpected argument '--jsn'"), "{stderr}");

    // After `--` everything is the command: still refused, and said to be an option.
    let output = cli(
        destination.addr,
        &["--", "COPY", &from, &id, "--json"],
        None,
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("`--json` after the command looks like an option"),
        "{stderr}"
    );

    // Typed into a script (or the REPL) line.
    let output = cli(
        destination.addr,
        &[],
        Some(&format!("COPY {from} {id} --json\n")),
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("`--json` is an option, not part of a command"),
        "{stderr}"
    );
}

#[test]
fn a_host_name_with_a_port_and_help_lines() {
    let source = Server::embedded(16 * MIB);
    let destination = Server::embedded(16 * MIB);
    let a = oid(35, 1);
    put(&mut source.store(), a, 10, 0);
    let home = tempfile::tempdir().unwrap();
    let server = format!("localhost:{}", destination.addr.port());
    let script = format!(
        "help COPY\nhelp\nCOPY {} {a}\nquit\nCOPY 1.2.3.4:5 {a}\n",
        source.addr
    );
    let mut command = std::process::Command::new(plasma_stream_tests::binary("plasma-stream-cli"));
    command
        .args(["-a", &server, "--insecure"])
        .env("HOME", home.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(script.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("COPY <addr> <oid>...\n  The server pulls"),
        "{stdout}"
    );
    assert!(
        stdout.contains("help [COPY|TAKE|SYNC|ls|info|stats|put|get|status|exit-codes]"),
        "{stdout}"
    );
    assert!(stdout.contains("1 object: 1 arrived"), "{stdout}");
    // `quit` ended the script before the last line.
    assert_eq!(stdout.matches("object:").count(), 1, "{stdout}");
    verify(&mut destination.store(), a, 10, 0);

    // A name that does not resolve: exit 2, naming it.
    let output = cli_in_home(
        home.path(),
        &[
            "-a",
            "no-such-host.invalid",
            "--insecure",
            "COPY",
            &source.addr.to_string(),
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        text(&output.stderr).contains("cannot resolve host name `no-such-host.invalid`"),
        "{output:?}"
    );
}

#[test]
fn no_trust_says_how_with_cli_options() {
    let destination = Server::embedded(16 * MIB);
    let home = tempfile::tempdir().unwrap();
    let output = cli_in_home(
        home.path(),
        &[
            "-a",
            &destination.addr.to_string(),
            "COPY",
            "127.0.0.1:1",
            &oid(36, 1).to_string(),
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("no trust configured for the server at")
            && stderr.contains("--trust FINGERPRINT")
            && stderr.contains("--insecure"),
        "{stderr}"
    );
    assert!(!stderr.contains("Client::builder"), "{stderr}");
    assert!(!stderr.contains("PLASMA_STREAM_"), "{stderr}");
}

#[test]
fn a_new_client_identity_is_announced_once() {
    let source = Server::embedded(16 * MIB);
    let destination = Server::embedded(16 * MIB);
    let a = oid(37, 1);
    put(&mut source.store(), a, 10, 0);
    let home = tempfile::tempdir().unwrap();
    let args = [
        "-a",
        &destination.addr.to_string(),
        "--trust",
        &destination.fingerprint,
        "COPY",
        &source.addr.to_string(),
        &a.to_string(),
    ];
    let output = cli_in_home(home.path(), &args);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let dir = home.path().join(".config/plasma-stream/client");
    let fingerprint = plasma_stream_tests::fingerprint_of(&dir);
    let stderr = text(&output.stderr);
    let notices: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("created a new client identity"))
        .collect();
    assert_eq!(notices.len(), 1, "{stderr}");
    assert!(
        notices[0].contains(&fingerprint)
            && notices[0].contains(&dir.display().to_string())
            && notices[0].contains(&format!("--trust {fingerprint}")),
        "{stderr}"
    );

    // The identity is kept: no notice the second time.
    let output = cli_in_home(home.path(), &args);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(
        !text(&output.stderr).contains("created a new client identity"),
        "{output:?}"
    );
}

#[test]
fn reconnects_after_the_server_restarted() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::time::Duration;

    let source = Server::embedded(16 * MIB);
    let mut destination = Server::embedded(16 * MIB);
    let (a, b) = (oid(38, 1), oid(38, 2));
    put(&mut source.store(), a, 10, 0);
    put(&mut source.store(), b, 20, 0);
    let port = destination.addr.port();

    let mut child = std::process::Command::new(plasma_stream_tests::binary("plasma-stream-cli"))
        .args(["-a", &destination.addr.to_string(), "--insecure"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    writeln!(stdin, "COPY {} {a}", source.addr).unwrap();
    let mut first = String::new();
    while !first.contains("object:") {
        let mut line = String::new();
        assert_ne!(stdout.read_line(&mut line).unwrap(), 0, "{first}");
        first.push_str(&line);
    }
    assert!(first.contains("1 arrived"), "{first}");

    // A new server process on the same port (the first one's connection is gone with it).
    assert!(destination.process.stop(Duration::from_secs(10)));
    let mut config = plasma_stream_tests::ServerConfig::embedded(16 * MIB);
    config.port = port;
    let restarted = Server::restart(config);
    writeln!(stdin, "COPY {} {b}", source.addr).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let rest = text(&rest);
    assert_eq!(output.status.code(), Some(0), "{output:?} {rest}");
    assert!(rest.contains("1 arrived"), "{rest}");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("reconnecting"), "{stderr}");
    verify(&mut restarted.store(), b, 20, 0);
}

#[test]
fn help_texts_document_exit_codes_and_quickstart_helps() {
    let output = std::process::Command::new(plasma_stream_tests::binary("plasma-stream-cli"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = text(&output.stdout);
    for line in [
        "0    every object arrived, or was already in the destination store (0x81; with --strict: 1)",
        "1    some object did not arrive",
        "2    bad usage or input, or the server cannot be reached or trusted",
        "130  interrupted by Ctrl-C",
        "port 2021 if left out",
    ] {
        assert!(stdout.contains(line), "`{line}` missing:\n{stdout}");
    }

    // The quickstart helps instead of starting servers, and refuses what it does not know.
    let quickstart = plasma_stream_tests::binary("quickstart");
    let output = std::process::Command::new(&quickstart)
        .arg("-h")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(stdout.contains("Usage: quickstart [-h]"), "{stdout}");
    assert!(!stdout.contains("starting two servers"), "{stdout}");
    let output = std::process::Command::new(&quickstart)
        .arg("--port")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        text(&output.stderr).contains("unexpected argument `--port`"),
        "{output:?}"
    );
}

/// Ctrl-C during a command asks the server to cancel the SYNC: the server aborts the pull at
/// once (here it would wait 8 s for the source), the CLI prints the report with the object
/// cancelled, and exits 130.
#[test]
fn ctrl_c_of_one_command_cancels_the_sync_and_prints_its_report() {
    use std::time::{Duration, Instant};
    // The source waits 8 s for the missing object to be sealed: the SYNC is busy meanwhile.
    let source = Server::start(
        plasma_stream_tests::ServerConfig::embedded(16 * MIB).with_args(&["-t", "8000"]),
    );
    let destination = Server::embedded(16 * MIB);
    let id = oid(39, 1);
    let child = std::process::Command::new(plasma_stream_tests::binary("plasma-stream-cli"))
        .args(["-a", &destination.addr.to_string(), "--insecure", "COPY"])
        .arg(source.addr.to_string())
        .arg(id.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the server logged the SYNC, the CLI's Ctrl-C handler is in place.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !destination.process.log().contains("SYNC peer_requests=1") {
        assert!(Instant::now() < deadline, "{}", destination.process.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let interrupted = Instant::now();
    // SAFETY: kill(2) on our own child, not yet reaped (wait_with_output comes after).
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let output = child.wait_with_output().unwrap();
    assert!(interrupted.elapsed() < Duration::from_secs(4), "{output:?}");
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("cancelling: asked the server to cancel the SYNC")
            && stderr.contains("cancelled: the report above says what arrived"),
        "{stderr}"
    );
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&id.to_string()) && stdout.contains("cancelled by the client"),
        "{stdout}"
    );
    let log = destination.process.log();
    assert!(log.contains("the client cancelled the SYNC"), "{log}");
}

#[test]
fn json_prints_event_lines_then_the_report() {
    let source = Server::embedded(48 * MIB);
    let destination = Server::embedded(48 * MIB);
    let a = oid(35, 1);
    put(&mut source.store(), a, 16 * MIB, 4);
    let from = source.addr.to_string();
    let output = cli(
        destination.addr,
        &["--json", "COPY", &from, &a.to_string()],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    let (report, events) = lines.split_last().expect("some output");
    assert_eq!(report["event"], "report", "{stdout}");
    let object = &report["peer_requests"][0]["objects"][0];
    assert_eq!(object["status"], 0x41);
    assert_eq!(object["status_text"], "success");
    assert_eq!(object["reason"], "none");
    assert_eq!(object["attempts"], 1);
    assert_eq!(object["bytes"], 16 * MIB + 4);
    assert!(object["duration_ms"].is_u64(), "{object}");
    let states: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "object")
        .map(|e| e["state"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(states, ["started", "arrived"], "{stdout}");
    let last_total = events
        .iter()
        .rev()
        .find(|e| e["event"] == "progress" && e["peer_request"] == "all")
        .expect("a progress event for the whole SYNC");
    assert_eq!(last_total["bytes_done"], 16 * MIB + 4, "{stdout}");
    assert_eq!(last_total["bytes_total"], 16 * MIB + 4, "{stdout}");
    // Not a terminal: nothing animated, no escape sequences.
    assert!(!stdout.contains('\u{1b}'), "{stdout}");
}

#[test]
fn a_failed_object_line_gives_its_reason_and_quiet_prints_only_failures() {
    let destination = Server::start(
        plasma_stream_tests::ServerConfig::embedded(16 * MIB).with_args(&["--retries", "0"]),
    );
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let id = oid(36, 1).to_string();
    let output = cli(destination.addr, &["COPY", &dead, &id], None);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains(&format!("{id}: failed, 0x90")))
        .unwrap_or_else(|| panic!("no failed line: {stdout}"));
    assert!(
        line.contains("connection refused") || line.contains("timed out"),
        "{line}"
    );
    assert!(line.contains("1 attempt"), "{line}");
    assert!(
        !stdout.contains('\u{1b}'),
        "not a terminal: no bars: {stdout}"
    );

    let output = cli(destination.addr, &["--quiet", "COPY", &dead, &id], None);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&id) && stderr.contains("0x90"), "{stderr}");
    assert!(
        stderr.contains("connection refused") || stderr.contains("timed out"),
        "{stderr}"
    );
}
