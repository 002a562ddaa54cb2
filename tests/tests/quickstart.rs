//! The README quickstart runs and verifies every object.

#[test]
fn quickstart_moves_and_verifies_objects() {
    let output = std::process::Command::new(plasma_stream_tests::binary("quickstart"))
        .output()
        .expect("run quickstart");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("quickstart: OK"), "{stdout}");
}

#[test]
#[ignore = "needs root and network namespaces (.ci/run provides it)"]
fn quickstart_with_all_udp_dropped_falls_back_to_tls_over_tcp() {
    // A fresh network namespace whose firewall drops every UDP packet: QUIC cannot connect
    // anywhere, so the client and the servers must all fall back to TLS over TCP.
    let quickstart = plasma_stream_tests::binary("quickstart");
    let script = format!(
        "ip link set lo up && iptables -I INPUT -p udp -j DROP && exec {}",
        quickstart.display()
    );
    let output = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("over tcp"), "{stdout}");
    assert!(stdout.contains("quickstart: OK"), "{stdout}");
}
