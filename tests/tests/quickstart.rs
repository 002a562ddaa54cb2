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
