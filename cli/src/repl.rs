//! The interactive loop: line editing, keyword completion, history in a file, help per
//! command, and Ctrl-C that interrupts a command without ending the session.

use std::path::{Path, PathBuf};

use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use crate::{is_blank_or_comment, run_line, Outcome, Printing, Session};

const HELP: &str =
    "Commands (keywords in any case; <addr> is a peer server's IP:port, <oid> 40 hex digits):
  COPY <addr> <oid>...                       copy objects from the peer into this server's store
  TAKE <addr> <oid>...                       move them: the peer deletes each after we sealed it
  SYNC COPY <addr> <oid>... ; TAKE <addr> <oid>...   several peer requests at once
  ls                                         the objects in the server's store
  info <oid>                                 one object of the server's store
  stats                                      what the server moved since it started
  put FILE [--id <oid>]                      store a file as an object in the server's store
  get <oid> FILE                             write an object of the server's store to a file
  help [COPY|TAKE|SYNC|ls|info|stats|put|get|status|exit-codes]   this help, or one topic
  quit, exit, Ctrl-D                         leave (history is saved)
Tab completes keywords; Up/Down and Ctrl-R search the history.
Ctrl-C during a command asks the server to cancel it (what is sealed stays) and shows its
report; a second Ctrl-C stops waiting for the report. Ctrl-C twice at the prompt leaves.";

const HELP_COPY: &str = "COPY <addr> <oid>...
  The server pulls each object from the peer server at <addr> into its own store; the peer
  keeps its copy. Objects move concurrently, one stream each.
  Example: COPY 127.0.0.1:2022 0102030405060708090a0b0c0d0e0f1011121314
  An object already in this server's store is reported as already there (0x81) and counts as
  success (start the CLI with --strict to count it as failed).";

const HELP_TAKE: &str = "TAKE <addr> <oid>...
  Like COPY, but the peer deletes its copy once this server has sealed the object and
  acknowledged it; an object that fails on the way stays at the peer.
  Example: TAKE 127.0.0.1:2022 0102030405060708090a0b0c0d0e0f1011121314
  An object already in this server's store is reported as already there (0x81): nothing is
  moved and the peer keeps its copy.";

const HELP_SYNC: &str = "SYNC COPY <addr> <oid>... ; TAKE <addr> <oid>... [; ...]
  Several peer requests in one SYNC, separated by `;`: each a COPY or a TAKE from one peer.
  They run concurrently; the report has one line per peer request. An object ID may appear
  only once in a SYNC.
  Example: SYNC COPY 127.0.0.1:2022 <oid> <oid> ; TAKE 127.0.0.1:2023 <oid>";

const HELP_LS: &str = "ls
  Lists every object in the server's store: ID, data and metadata bytes, sealed or still
  being written, and when it was created. `info <oid>` shows one (exit code 1 if absent).
  Both need the `sync` right at the server (docs/security.md).";

const HELP_STATS: &str = "stats
  What the server did since it started: transfers in flight, objects and bytes received and
  sent (per peer too), failed objects, and its store's capacity and use. Needs `sync`.";

const HELP_PUT: &str = "put FILE [--id <oid>]
  Sends FILE to the server, which stores it as one object (data = the file, no metadata)
  and seals it. Without --id the ID is the file's content hash (XXH3-128 and its size), so
  the same file put twice is already there (0x81, success unless --strict). Needs `sync`;
  the object evicts nothing from the store unless the server runs with --evict-for-incoming.";

const HELP_GET: &str = "get <oid> FILE
  Copies an object of the server's store into FILE (written as FILE.partial, renamed when
  whole). The server keeps the object. Needs the `copy` right.";

const HELP_STATUS: &str = "Status codes in reports (docs/protocol.md has the full table):
  0x41 success              0x71 object not found at the peer
  0x80 already being received by another request
  0x81 already in this server's store (counted as success unless --strict)
  0x90 connection to the peer failed     0x63 not permitted by the access policy
  0x64 this server's store has no room   0x60/0x61 this / the peer's Plasma store failed";

const HELP_EXIT: &str = "Exit code of plasma-stream-cli (the worst command of the session counts):
  0    every object arrived, or was already there (0x81; with --strict: 1)
  1    some object did not arrive (the report lists each with its status)
  2    bad usage or input, or the server cannot be reached or trusted
  130  interrupted by Ctrl-C outside the REPL";

/// A line the CLI answers itself instead of sending it to the server.
pub enum Builtin {
    Quit,
    Help(&'static str),
}

/// `help`, `help COPY`, `? take`, `quit`, `exit`: `None` for anything else (a command).
pub fn builtin(line: &str) -> Option<Builtin> {
    let mut words = line.split_whitespace();
    let first = words.next()?.to_ascii_lowercase();
    match first.as_str() {
        "quit" | "exit" if words.next().is_none() => Some(Builtin::Quit),
        "help" | "?" => {
            let topic = words.next().map(str::to_ascii_lowercase);
            Some(Builtin::Help(match topic.as_deref() {
                None => HELP,
                Some("copy") => HELP_COPY,
                Some("take") => HELP_TAKE,
                Some("sync") => HELP_SYNC,
                Some("ls" | "info") => HELP_LS,
                Some("stats") => HELP_STATS,
                Some("put") => HELP_PUT,
                Some("get") => HELP_GET,
                Some("status" | "statuses" | "codes") => HELP_STATUS,
                Some("exit-codes" | "exit" | "exit-code") => HELP_EXIT,
                Some(_) => HELP,
            }))
        }
        _ => None,
    }
}

/// Words Tab completes at the start of a command (and after `SYNC` or `;`).
const COMMAND_WORDS: &[&str] = &[
    "COPY", "TAKE", "SYNC", "ls", "info", "stats", "put", "get", "help", "quit", "exit",
];
/// Words Tab completes after `help`.
const HELP_TOPICS: &[&str] = &[
    "COPY",
    "TAKE",
    "SYNC",
    "ls",
    "info",
    "stats",
    "put",
    "get",
    "status",
    "exit-codes",
];

struct KeywordHelper;

impl KeywordHelper {
    /// The word under the cursor (from its start) and the candidates for it.
    fn candidates(line: &str, pos: usize) -> (usize, Vec<String>) {
        let before = &line[..pos];
        let start = before
            .rfind(|c: char| c.is_whitespace() || c == ';')
            .map_or(0, |i| i + 1);
        let word = &before[start..];
        let previous: Vec<&str> = before[..start]
            .split(|c: char| c.is_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        let last = previous.last().copied().unwrap_or("");
        let choices: &[&str] = if previous.is_empty() {
            COMMAND_WORDS
        } else if previous.len() == 1 && last.eq_ignore_ascii_case("help") {
            HELP_TOPICS
        } else if last.eq_ignore_ascii_case("SYNC") || last == ";" || before[..start].ends_with(';')
        {
            &["COPY", "TAKE"]
        } else {
            &[]
        };
        // Lower-case typing gets lower-case keywords; the grammar accepts either.
        let lower = !word.is_empty() && word.chars().all(|c| !c.is_ascii_uppercase());
        let found = choices
            .iter()
            .filter(|choice| {
                choice.len() >= word.len() && choice[..word.len()].eq_ignore_ascii_case(word)
            })
            .map(|choice| {
                let text = if lower {
                    choice.to_ascii_lowercase()
                } else {
                    (*choice).to_owned()
                };
                format!("{text} ")
            })
            .collect();
        (start, found)
    }
}

impl Completer for KeywordHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(Self::candidates(line, pos))
    }
}

impl Hinter for KeywordHelper {
    type Hint = String;
}
impl Highlighter for KeywordHelper {}
impl Validator for KeywordHelper {}
impl Helper for KeywordHelper {}

/// Reads and runs commands until `quit`, Ctrl-D or two Ctrl-C in a row; saves the history
/// after every command (a crash loses nothing) and on the way out.
pub async fn run(session: &mut Session, print: Printing) -> Outcome {
    let mut editor: Editor<KeywordHelper, FileHistory> = match Editor::new() {
        Ok(editor) => editor,
        Err(error) => {
            eprintln!("error: cannot start line editing: {error}");
            return Outcome::Error;
        }
    };
    editor.set_helper(Some(KeywordHelper));
    let history = History::locate();
    if let Some(history) = &history {
        history.load(&mut editor);
    }
    if let Some(client) = session.client() {
        println!(
            "connected to {} over {}; type COPY/TAKE/SYNC commands, `help`, or `quit`",
            client.server(),
            client.connection_kind()
        );
    }
    let mut overall = Outcome::AllArrived;
    // Whether the last thing that happened was a Ctrl-C: a second one in a row leaves.
    let mut interrupted = false;
    loop {
        match editor.readline("plasma-stream> ") {
            Ok(line) => {
                interrupted = false;
                if is_blank_or_comment(&line) {
                    continue;
                }
                let _ = editor.add_history_entry(line.as_str());
                if let Some(history) = &history {
                    history.save(&mut editor);
                }
                match builtin(&line) {
                    Some(Builtin::Quit) => break,
                    Some(Builtin::Help(text)) => println!("{text}"),
                    None => match run_line(session, &line, print).await {
                        // A command the user stopped does not make the session's exit
                        // code 130 (that is for a run outside the REPL); its report said
                        // what arrived.
                        Outcome::Interrupted | Outcome::Cancelled => {
                            interrupted = true;
                            eprintln!("(Ctrl-C again to leave)");
                        }
                        outcome => overall = overall.max(outcome),
                    },
                }
            }
            Err(ReadlineError::Interrupted) => {
                if interrupted {
                    break;
                }
                interrupted = true;
                eprintln!("(Ctrl-C again, `quit` or Ctrl-D to leave)");
            }
            Err(ReadlineError::Eof) => break,
            Err(error) => {
                eprintln!("error: {error}");
                break;
            }
        }
    }
    if let Some(history) = &history {
        history.save(&mut editor);
    }
    overall
}

/// The history file: `$XDG_STATE_HOME/plasma-stream/history`, else
/// `~/.local/state/plasma-stream/history` (the XDG place for state that is not configuration).
/// Its directory is created 0700 and the file 0600 (rustyline sets that mode when it writes):
/// commands name hosts and objects.
struct History {
    path: PathBuf,
    /// Where earlier versions kept it; read once if the new file does not exist yet.
    old_path: Option<PathBuf>,
}

impl History {
    fn locate() -> Option<History> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        let state = std::env::var_os("XDG_STATE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".local/state")))?;
        let old_path = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".config")))
            .map(|d| d.join("plasma-stream/history"));
        Some(History {
            path: state.join("plasma-stream").join("history"),
            old_path,
        })
    }

    fn load(&self, editor: &mut Editor<KeywordHelper, FileHistory>) {
        let path = match &self.old_path {
            Some(old) if !self.path.exists() && old.exists() => old.as_path(),
            _ => self.path.as_path(),
        };
        if path.exists() {
            if let Err(error) = editor.load_history(path) {
                eprintln!(
                    "warning: cannot read the history {}: {error}",
                    path.display()
                );
            }
        }
    }

    fn save(&self, editor: &mut Editor<KeywordHelper, FileHistory>) {
        if let Err(error) = create_private_dir(&self.path) {
            eprintln!("warning: cannot save the history: {error}");
            return;
        }
        if let Err(error) = editor.save_history(&self.path) {
            eprintln!(
                "warning: cannot save the history to {}: {error}",
                self.path.display()
            );
        }
    }
}

/// Creates the parent directory of `file` (and its missing ancestors) with mode 0700.
fn create_private_dir(file: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    let Some(dir) = file.parent() else {
        return Ok(());
    };
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(line: &str) -> (usize, Vec<String>) {
        KeywordHelper::candidates(line, line.len())
    }

    #[test]
    fn completes_keywords_where_they_go() {
        assert_eq!(complete("CO"), (0, vec!["COPY ".to_owned()]));
        assert_eq!(complete("ta"), (0, vec!["take ".to_owned()]));
        assert_eq!(
            complete("help s"),
            (5, vec!["sync ".into(), "stats ".into(), "status ".into()])
        );
        assert_eq!(complete("st"), (0, vec!["stats ".to_owned()]));
        assert_eq!(complete("help g"), (5, vec!["get ".to_owned()]));
        assert_eq!(complete("SYNC C"), (5, vec!["COPY ".to_owned()]));
        assert_eq!(
            complete("SYNC COPY 127.0.0.1:2022 01 ; T"),
            (30, vec!["TAKE ".to_owned()])
        );
        assert_eq!(
            complete("SYNC COPY 127.0.0.1:2022 01 ;T"),
            (29, vec!["TAKE ".to_owned()])
        );
        assert!(complete("COPY 127.0.0.1:2022 ").1.is_empty());
    }

    #[test]
    fn help_per_command() {
        for (line, starts) in [
            ("help", "Commands"),
            ("?", "Commands"),
            ("help COPY", "COPY <addr>"),
            ("HELP take", "TAKE <addr>"),
            ("help sync", "SYNC COPY"),
            ("help status", "Status codes"),
            ("help exit-codes", "Exit code"),
        ] {
            match builtin(line) {
                Some(Builtin::Help(text)) => assert!(text.starts_with(starts), "{line}: {text}"),
                _ => panic!("{line} is not help"),
            }
        }
        assert!(matches!(builtin("quit"), Some(Builtin::Quit)));
        assert!(matches!(builtin(" EXIT "), Some(Builtin::Quit)));
        assert!(builtin("COPY 127.0.0.1:2022 01").is_none());
    }
}
