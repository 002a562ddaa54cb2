//! The operator's page lists what the binaries accept, and only that: every long option that
//! `--help` of each binary defines is in that binary's options table in `docs/operations.md`,
//! so a new flag cannot ship undocumented, and every option those tables document is one
//! `--help` defines, so a renamed or removed flag cannot linger in the docs.

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

/// Each binary, and the heading of its section of `docs/operations.md`.
const BINARIES: [(&str, &str); 3] = [
    ("plasma-stream-server", "## The server"),
    ("plasma-stream-cli", "## The CLI"),
    ("plasma-store", "## The embedded store on its own"),
];

fn operations_page() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md"),
    )
    .expect("read docs/operations.md")
}

/// The text of the section whose heading starts with `heading`, up to the next `## `.
fn section<'a>(page: &'a str, heading: &str) -> &'a str {
    let start = page
        .find(&format!("\n{heading}"))
        .unwrap_or_else(|| panic!("no section `{heading}` in docs/operations.md"));
    let rest = &page[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |at| at + 3);
    &rest[..end]
}

/// The long options the section's options tables (those headed `| option |`) document: every
/// `--name` in a row's first cell (`-x/--name ARG`, `--a FP` / `--b FILE`, `--name[=MODE]`).
fn documented_options(section: &str) -> Vec<String> {
    let mut options = Vec::new();
    let mut in_table = false;
    for line in section.lines() {
        if line.starts_with("| option |") {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if !in_table {
            continue;
        }
        let Some(first_cell) = line.split('|').nth(1) else {
            continue;
        };
        for (at, _) in first_cell.match_indices("--") {
            let name: String = first_cell[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            // A separator row (`|---|`) is no option.
            if name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
                options.push(format!("--{name}"));
            }
        }
    }
    options
}

fn help_of(name: &str) -> String {
    let output = Command::new(binary(name))
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("run {name} --help: {e}"));
    assert!(output.status.success(), "{name} --help failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn every_option_of_every_binary_is_in_its_table_in_operations_md() {
    let page = operations_page();
    let mut missing = Vec::new();
    for (name, heading) in BINARIES {
        let help = help_of(name);
        let options = defined_options(&help);
        assert!(
            options.len() >= 5,
            "{name}: too few options found in:\n{help}"
        );
        let documented = documented_options(section(&page, heading));
        for option in options {
            if !documented.contains(&option) {
                missing.push(format!("{name} {option}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "options missing from their table in docs/operations.md: {missing:?}"
    );
}

#[test]
fn every_option_the_tables_document_is_in_help() {
    let page = operations_page();
    let mut unknown = Vec::new();
    for (name, heading) in BINARIES {
        let defined = defined_options(&help_of(name));
        let documented = documented_options(section(&page, heading));
        assert!(
            documented.len() >= 5,
            "{name}: too few options found in the table under `{heading}`"
        );
        for option in documented {
            if !defined.contains(&option) {
                unknown.push(format!("{name} {option}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "docs/operations.md documents options that --help does not define: {unknown:?}"
    );
}

#[test]
fn documented_options_reads_first_cells_of_option_tables_only() {
    let page = "intro --not-this\n\n## The server\n\n| option | default | what |\n|---|---|---|\n\
        | `-c/--max-connections` | 128 | see `--other` |\n\
        | `--trust FP` / `--trust-file FILE` | none | pins |\n\
        | `--prefault[=MODE]` | window | maps |\n\
        \n| figure | value |\n|---|---|\n| `--measured` | 1 |\n\
        \n## The CLI\n\n| option | default | what |\n| `--json` | off | lines |\n";
    assert_eq!(
        documented_options(section(page, "## The server")),
        vec!["--max-connections", "--trust", "--trust-file", "--prefault"]
    );
    assert_eq!(
        documented_options(section(page, "## The CLI")),
        vec!["--json"]
    );
}

#[test]
fn defined_options_reads_definitions_not_mentions() {
    let help = "Options:\n  -a, --address <A>  The server\n      --ca <PEM>  uses --ca-dir too\n  -h, --help  Print help\n";
    assert_eq!(defined_options(help), vec!["--address", "--ca"]);
}
