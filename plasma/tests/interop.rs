//! Runs the Python interop suite (`plasma/interop/`): the unmodified pyarrow 11 client against
//! our `plasma-store` binary AND against pyarrow's real `plasma_store`, in one pytest run.

use std::path::PathBuf;
use std::process::Command;

fn python() -> PathBuf {
    std::env::var_os("PLASMA_STREAM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"))
}

#[test]
#[ignore = "needs pyarrow 11 and pytest (.ci/run installs them)"]
fn pyarrow_client_suite_passes_against_our_store_and_the_real_one() {
    let python = python();
    let real_store = python
        .parent()
        .expect("python has a parent directory")
        .join("plasma_store");
    let suite = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop");
    let output = Command::new(&python)
        .args(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"])
        .arg(&suite)
        .env("PLASMA_STORE_BIN", env!("CARGO_BIN_EXE_plasma-store"))
        .env("PLASMA_REAL_STORE", &real_store)
        .current_dir(&suite)
        .output()
        .expect("run python -m pytest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        output.status.success(),
        "interop suite failed:\n{stdout}\n{stderr}"
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.contains("passed") && !summary.contains("skipped") && !summary.contains("failed"),
        "unexpected pytest summary: {summary}"
    );
    // Both stores ran every test.
    assert!(stdout.contains("passed"));
    let count: usize = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        count >= 2 * 14,
        "expected every test against both stores: {summary}"
    );
}
