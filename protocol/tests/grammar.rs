//! CLI grammar: good lines, bad lines, and errors that name the token, its column and why.

use plasma_stream_protocol::grammar::parse_command;
use plasma_stream_protocol::{Command, GrammarError, ObjectId, PeerRequest, TransferKind};

const A: &str = "0102030405060708090a0b0c0d0e0f1011121314";
const B: &str = "ffffffffffffffffffffffffffffffffffffffff";
const C: &str = "1111111111111111111111111111111111111111";

fn oid(text: &str) -> ObjectId {
    text.parse().unwrap()
}

fn err(line: &str) -> GrammarError {
    parse_command(line).unwrap_err()
}

#[test]
fn copy_one_object() {
    let command = parse_command(&format!("COPY 127.0.0.1:2022 {A}")).unwrap();
    assert_eq!(
        command,
        Command::Sync(vec![PeerRequest::Copy {
            from: "127.0.0.1:2022".parse().unwrap(),
            objects: vec![oid(A)],
        }])
    );
}

#[test]
fn keywords_any_case_blanks_any_run() {
    let line = format!(" \t tAkE\t\t[::1]:2022   {A}\t{}  \n", B.to_uppercase());
    let command = parse_command(&line).unwrap();
    let peer = &command.peer_requests()[0];
    assert_eq!(peer.kind(), TransferKind::Take);
    assert_eq!(peer.from(), "[::1]:2022".parse().unwrap());
    assert_eq!(peer.objects(), &[oid(A), oid(B)]);
}

#[test]
fn multi_peer_sync() {
    for line in [
        format!("SYNC COPY 10.0.0.2:2021 {A} ; TAKE [fd00::3]:2021 {B} {C}"),
        format!("sync copy 10.0.0.2:2021 {A};take [fd00::3]:2021 {B} {C}"),
        format!("Sync COPY 10.0.0.2:2021 {A} TAKE [fd00::3]:2021 {B} {C}"),
    ] {
        let command = parse_command(&line).unwrap();
        let peers = command.peer_requests();
        assert_eq!(peers.len(), 2, "{line}");
        assert_eq!(peers[0].kind(), TransferKind::Copy);
        assert_eq!(peers[1].kind(), TransferKind::Take);
        assert_eq!(peers[1].objects(), &[oid(B), oid(C)]);
        // Display gives a line that parses back to the same command.
        assert_eq!(parse_command(&command.to_string()).unwrap(), command);
    }
}

#[test]
fn empty_and_unknown_command() {
    assert_eq!(err("  \t "), GrammarError::Empty);
    let e = err(&format!("  MOVE 1.2.3.4:5 {A}"));
    assert_eq!(
        e,
        GrammarError::UnknownCommand {
            token: "MOVE".into(),
            column: 3
        }
    );
    assert!(e.to_string().contains("column 3"), "{e}");
    assert!(e.to_string().contains("`MOVE`"), "{e}");
}

#[test]
fn bad_addresses_name_token_and_reason() {
    let cases = [
        ("COPY 1.2.3.4 X", "1.2.3.4", "port is missing"),
        ("COPY localhost:2021 X", "localhost:2021", "host names"),
        ("COPY ::1:2021 X", "::1:2021", "brackets"),
        ("COPY [::1]:99999 X", "[::1]:99999", "port `99999`"),
        ("COPY 1.2.3.4:0 X", "1.2.3.4:0", "port 0"),
        ("COPY 1.2.3.400:5 X", "1.2.3.400:5", "not an IPv4 address"),
        ("COPY [::g]:5 X", "[::g]:5", "not an IPv6 address"),
    ];
    for (line, token, reason) in cases {
        let line = line.replace('X', A);
        match err(&line) {
            GrammarError::BadAddress {
                token: t,
                column,
                reason: r,
            } => {
                assert_eq!(t, token, "{line}");
                assert_eq!(column, 6, "{line}");
                assert!(r.contains(reason), "{line}: {r}");
            }
            other => panic!("{line}: {other:?}"),
        }
    }
    let e = err("COPY");
    assert!(
        matches!(e, GrammarError::MissingAddress { column: 5, .. }),
        "{e:?}"
    );
}

#[test]
fn bad_object_ids_name_token_and_column() {
    let e = err("COPY 1.2.3.4:5 0102");
    assert!(
        matches!(e, GrammarError::BadObjectId { column: 16, .. }),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("column 16") && msg.contains("`0102`") && msg.contains("4 characters"),
        "{msg}"
    );

    let bad = format!("{}zz", &A[..38]);
    let msg = err(&format!("COPY 1.2.3.4:5 {A} {bad}")).to_string();
    assert!(
        msg.contains("column 57") && msg.contains("position 39"),
        "{msg}"
    );

    let e = err("COPY 1.2.3.4:5");
    assert!(
        matches!(e, GrammarError::MissingObjectId { column: 15, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("end of the line"));
    let e = err("SYNC COPY 1.2.3.4:5 ; TAKE 1.2.3.4:6 X");
    assert!(
        matches!(e, GrammarError::MissingObjectId { column: 21, ref found, .. } if found == ";"),
        "{e:?}"
    );
}

#[test]
fn several_peer_requests_need_sync() {
    let e = err(&format!("COPY 1.2.3.4:5 {A} ; TAKE 1.2.3.4:6 {B}"));
    assert!(
        matches!(e, GrammarError::SeveralWithoutSync { column: 57, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("SYNC COPY"));
    let e = err(&format!("COPY 1.2.3.4:5 {A} TAKE 1.2.3.4:6 {B}"));
    assert!(
        matches!(e, GrammarError::SeveralWithoutSync { .. }),
        "{e:?}"
    );
    let e = err(&format!("SYNC COPY 1.2.3.4:5 {A} ;"));
    assert!(
        matches!(e, GrammarError::ExpectedTransferKind { ref token, .. } if token.is_empty()),
        "{e:?}"
    );
    let e = err("SYNC");
    assert!(
        matches!(e, GrammarError::ExpectedTransferKind { column: 5, .. }),
        "{e:?}"
    );
    let e = err(&format!("SYNC SYNC 1.2.3.4:5 {A}"));
    assert!(
        matches!(e, GrammarError::ExpectedTransferKind { column: 6, .. }),
        "{e:?}"
    );
}

#[test]
fn duplicates_within_and_across_peer_requests() {
    let e = err(&format!("COPY 1.2.3.4:5 {A} {A}"));
    assert_eq!(
        e,
        GrammarError::DuplicateId {
            token: A.into(),
            column: 57,
            first_column: 16
        }
    );
    assert!(e.to_string().contains(A));
    let e = err(&format!(
        "SYNC COPY 1.2.3.4:5 {A} ; TAKE 1.2.3.4:6 {}",
        A.to_uppercase()
    ));
    assert!(
        matches!(
            e,
            GrammarError::DuplicateId {
                first_column: 21,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn messages_as_documented() {
    let cases = [
        ("MOVE 1.2.3.4:5 <A>", "column 1: unknown command `MOVE`: expected COPY, TAKE or SYNC"),
        (
            "COPY localhost:2021 <A>",
            "column 6: `localhost:2021` is not a peer address: `localhost` is not an IP address (host names are not resolved here)",
        ),
        (
            "COPY ::1:2021 <A>",
            "column 6: `::1:2021` is not a peer address: write IPv6 addresses in brackets, as [v6]:port",
        ),
        (
            "COPY 1.2.3.4:5 0102",
            "column 16: object ID `0102` has 4 characters: an object ID is exactly 40 hex digits (20 bytes)",
        ),
        (
            "COPY 1.2.3.4:5 <A> TAKE 1.2.3.4:6 <B>",
            "column 57: `TAKE` starts a second peer request: write several as `SYNC COPY <addr> <oid>… ; TAKE <addr> <oid>…`",
        ),
        (
            "COPY 1.2.3.4:5 <A> <A>",
            "column 57: object ID 0102030405060708090a0b0c0d0e0f1011121314 appears twice in this SYNC (first at column 16)",
        ),
    ];
    for (line, message) in cases {
        let line = line.replace("<A>", A).replace("<B>", B);
        assert_eq!(err(&line).to_string(), message, "{line}");
    }
}
