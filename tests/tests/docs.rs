//! The operator's page lists what the binaries accept: every long option that `--help` of
//! each binary defines is in `docs/operations.md`, so a new flag cannot ship undocumented.

use std::process::Command;

use plasma_stream_tests::binary;

/// The long options `--help` defines: each definition line starts (after indentation) with
/// `-x, --name` or `--name`; flags only mentioned inside another's text do not count.
fn defined_options(help: &str) -> Vec<String> {
    let mut options = Vec::new();
    for line in help.lines() {
        let line = line.trim_start();
        let line = match line.strip_prefix('-') {
            Some(rest) if !rest.starts_with('-') => match rest.split_once(", ") {
                Some((_, long)) => long,
                None => continue,
            },
            _ => line,
        };
        let Some(name) = line.strip_prefix("--") else {
            continue;
        };
        let name: String = name
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if !name.is_empty() && name != "help" && name != "version" {
            options.push(format!("--{name}"));
        }
    }
    options
}

#[test]
fn every_option_of_every_binary_is_in_operations_md() {
    let page = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md"),
    )
    .expect("read docs/operations.md");
    let mut missing = Vec::new();
    for name in ["plasma-stream-server", "plasma-stream-cli", "plasma-store"] {
        let output = Command::new(binary(name))
            .arg("--help")
            .output()
            .unwrap_or_else(|e| panic!("run {name} --help: {e}"));
        assert!(output.status.success(), "{name} --help failed");
        let help = String::from_utf8_lossy(&output.stdout);
        let options = defined_options(&help);
        assert!(
            options.len() >= 5,
            "{name}: too few options found in:\n{help}"
        );
        for option in options {
            // Written in the tables as `--name …` or `-x/--name …`.
            let documented = [format!("`{option}"), format!("/{option}")]
                .iter()
                .any(|form| {
                    page.match_indices(form.as_str()).any(|(at, _)| {
                        let after = page[at + form.len()..].chars().next();
                        !matches!(after, Some(c) if c.is_ascii_alphanumeric() || c == '-')
                    })
                });
            if !documented {
                missing.push(format!("{name} {option}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "options missing from docs/operations.md: {missing:?}"
    );
}

#[test]
fn defined_options_reads_definitions_not_mentions() {
    let help = "Options:\n  -a, --address <A>  The server\n      --ca <PEM>  uses --ca-dir too\n  -h, --help  Print help\n";
    assert_eq!(defined_options(help), vec!["--address", "--ca"]);
}
