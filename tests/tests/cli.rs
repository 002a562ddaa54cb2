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
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(
        stdout.lines().all(|l| l.contains("\"success\":true")),
        "{stdout}"
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
