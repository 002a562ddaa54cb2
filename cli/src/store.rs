//! The commands about the server's own store: `ls`, `info <oid>`, `stats`,
//! `put FILE [--id HEX]` and `get <oid> FILE`. They are the CLI's, not the protocol grammar's
//! (which has COPY, TAKE and SYNC): each is one request to the server (`docs/protocol.md`
//! §4.4; `get` is an OBJECT exchange, a COPY into this process).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use stream::{Client, ListedObject, ObjectId, ServerStats, Status, TransferKind};
use tokio::io::AsyncWriteExt;

use crate::report::{bytes_text, duration_text, rate_text};
use crate::{Outcome, Printing, Session};

/// One of the store commands, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreCommand {
    List,
    Info(ObjectId),
    Stats,
    Put { file: PathBuf, id: Option<ObjectId> },
    Get { id: ObjectId, file: PathBuf },
}

/// The command words this module answers (Tab completes them too).
pub const WORDS: &[&str] = &["ls", "info", "stats", "put", "get"];

/// `None` if `line` is not a store command (its first word is none of [`WORDS`]);
/// otherwise the command, or a message naming what is wrong with it.
pub fn parse(line: &str) -> Option<Result<StoreCommand, String>> {
    let mut words = line.split_whitespace();
    let first = words.next()?.to_ascii_lowercase();
    if !WORDS.contains(&first.as_str()) {
        return None;
    }
    let rest: Vec<&str> = words.collect();
    Some(parse_rest(&first, &rest))
}

fn object_id(text: &str) -> Result<ObjectId, String> {
    text.parse()
        .map_err(|error| format!("`{text}` is not an object ID: {error}"))
}

fn parse_rest(command: &str, rest: &[&str]) -> Result<StoreCommand, String> {
    match (command, rest) {
        ("ls", []) => Ok(StoreCommand::List),
        ("stats", []) => Ok(StoreCommand::Stats),
        ("info", [id]) => Ok(StoreCommand::Info(object_id(id)?)),
        ("get", [id, file]) => Ok(StoreCommand::Get {
            id: object_id(id)?,
            file: PathBuf::from(file),
        }),
        ("put", [file]) => Ok(StoreCommand::Put {
            file: PathBuf::from(file),
            id: None,
        }),
        ("put", [file, "--id", id]) | ("put", ["--id", id, file]) => Ok(StoreCommand::Put {
            file: PathBuf::from(file),
            id: Some(object_id(id)?),
        }),
        ("ls", _) => Err("usage: ls (takes no arguments)".into()),
        ("stats", _) => Err("usage: stats (takes no arguments)".into()),
        ("info", _) => Err("usage: info <oid>".into()),
        ("get", _) => Err("usage: get <oid> FILE".into()),
        _ => Err("usage: put FILE [--id <oid>]".into()),
    }
}

/// Runs one store command and prints its result.
pub async fn run(session: &mut Session, command: StoreCommand, print: Printing) -> Outcome {
    let client = match session.client() {
        Some(client) => client.clone(),
        None => match session.connect().await {
            Ok(client) => client.clone(),
            Err(error) => {
                eprintln!("error: {error}");
                return Outcome::Error;
            }
        },
    };
    let result = match command {
        StoreCommand::List => list(&client, print).await,
        StoreCommand::Info(id) => info(&client, id, print).await,
        StoreCommand::Stats => stats(&client, print).await,
        StoreCommand::Put { file, id } => put(&client, &file, id, print).await,
        StoreCommand::Get { id, file } => get(&client, id, &file, print).await,
    };
    match result {
        Ok(outcome) => outcome,
        Err(error) => {
            eprintln!("error: {error}");
            Outcome::Error
        }
    }
}

fn object_json(object: &ListedObject) -> serde_json::Value {
    json!({
        "id": object.id.to_string(),
        "data_size": object.data_size,
        "metadata_size": object.metadata_size,
        "state": state(object),
        "created": object.created,
    })
}

fn state(object: &ListedObject) -> &'static str {
    if object.sealed {
        "sealed"
    } else {
        "unsealed"
    }
}

/// `2026-12-03 14:05:09 UTC` from Unix seconds (`-` for unknown).
fn time_text(unix: u64) -> String {
    if unix == 0 {
        return "-".into();
    }
    let days = unix / 86_400;
    let seconds = unix % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian), as in Howard Hinnant's
    // published algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

fn object_line(object: &ListedObject) -> String {
    format!(
        "{}  {:>14}  {:>8}  {:<8}  {}",
        object.id,
        object.data_size,
        object.metadata_size,
        state(object),
        time_text(object.created)
    )
}

async fn list(client: &Client, print: Printing) -> stream::Result<Outcome> {
    let objects = client.list().await?;
    if print.json {
        for object in &objects {
            println!("{}", object_json(object));
        }
        return Ok(Outcome::AllArrived);
    }
    if !print.quiet {
        println!(
            "{:<40}  {:>14}  {:>8}  {:<8}  CREATED",
            "OBJECT", "DATA BYTES", "METADATA", "STATE"
        );
    }
    for object in &objects {
        println!("{}", object_line(object));
    }
    if !print.quiet {
        let total: u64 = objects
            .iter()
            .map(|o| o.data_size.saturating_add(o.metadata_size))
            .sum();
        let unsealed = objects.iter().filter(|o| !o.sealed).count();
        println!(
            "{} objects ({unsealed} unsealed), {}",
            objects.len(),
            bytes_text(total)
        );
    }
    Ok(Outcome::AllArrived)
}

async fn info(client: &Client, id: ObjectId, print: Printing) -> stream::Result<Outcome> {
    let Some(object) = client.info(id).await? else {
        if print.json {
            println!("{}", json!({ "id": id.to_string(), "state": "absent" }));
        } else {
            println!("{id}: not in the server's store");
        }
        return Ok(Outcome::SomeFailed);
    };
    if print.json {
        println!("{}", object_json(&object));
    } else {
        println!("object    {}", object.id);
        println!("state     {}", state(&object));
        println!("data      {}", bytes_text(object.data_size));
        println!("metadata  {}", bytes_text(object.metadata_size));
        println!("created   {}", time_text(object.created));
    }
    Ok(Outcome::AllArrived)
}

async fn stats(client: &Client, print: Printing) -> stream::Result<Outcome> {
    let stats: ServerStats = client.stats().await?;
    if print.json {
        let peers: Vec<_> = stats
            .peers
            .iter()
            .map(|p| json!({"peer": p.label, "received_bytes": p.received_bytes, "sent_bytes": p.sent_bytes}))
            .collect();
        println!(
            "{}",
            json!({
                "uptime_seconds": stats.uptime_seconds,
                "transfers_in_flight": stats.transfers_in_flight,
                "received_bytes": stats.received_bytes,
                "received_objects": stats.received_objects,
                "sent_bytes": stats.sent_bytes,
                "sent_objects": stats.sent_objects,
                "failed_objects": stats.failed_objects,
                "store_capacity": stats.store_capacity,
                "store_used": stats.store_used,
                "peers": peers,
            })
        );
        return Ok(Outcome::AllArrived);
    }
    let uptime = Duration::from_secs(stats.uptime_seconds);
    println!("up                   {}", duration_text(uptime));
    println!("transfers in flight  {}", stats.transfers_in_flight);
    println!(
        "received             {} objects, {}",
        stats.received_objects,
        bytes_text(stats.received_bytes)
    );
    println!(
        "sent                 {} objects, {}",
        stats.sent_objects,
        bytes_text(stats.sent_bytes)
    );
    println!("failed objects       {}", stats.failed_objects);
    match stats.store_used {
        Some(used) => println!(
            "store                {} used of {}",
            bytes_text(used),
            bytes_text(stats.store_capacity)
        ),
        None => println!("store                {}", bytes_text(stats.store_capacity)),
    }
    for peer in &stats.peers {
        println!(
            "peer {:<16} received {}, sent {}",
            peer.label,
            bytes_text(peer.received_bytes),
            bytes_text(peer.sent_bytes)
        );
    }
    Ok(Outcome::AllArrived)
}

/// The ID `put` gives a file without `--id`: its content hash (XXH3-128, 16 bytes) and its
/// size (4 bytes, little-endian, modulo 2^32). The same file put twice gets the same ID, so
/// the second put says "already there" instead of storing a copy.
fn content_id(path: &Path) -> std::io::Result<ObjectId> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size: u64 = 0;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(buffer.get(..read).unwrap_or_default());
        size += read as u64;
    }
    let mut bytes = [0u8; ObjectId::LEN];
    bytes[..16].copy_from_slice(&hasher.digest128().to_le_bytes());
    bytes[16..].copy_from_slice(&(size as u32).to_le_bytes());
    Ok(ObjectId::from_bytes(bytes))
}

async fn put(
    client: &Client,
    path: &Path,
    id: Option<ObjectId>,
    print: Printing,
) -> stream::Result<Outcome> {
    let id = match id {
        Some(id) => id,
        None => {
            let owned = path.to_owned();
            tokio::task::spawn_blocking(move || content_id(&owned))
                .await
                .map_err(|error| stream::Error::Protocol(format!("hashing the file: {error}")))?
                .map_err(|error| file_error(path, "read", error))?
        }
    };
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|error| file_error(path, "open", error))?;
    let size = file
        .metadata()
        .await
        .map_err(|error| file_error(path, "read", error))?
        .len();
    let started = Instant::now();
    let reader = tokio::io::BufReader::with_capacity(1 << 20, file);
    let result = client.put(id, Bytes::new(), size, reader).await;
    let elapsed = started.elapsed();
    let (status, outcome) = match result {
        Ok(()) => (Status::Success, Outcome::AllArrived),
        Err(stream::Error::Object { status, .. }) if status == Status::AlreadyInStore => {
            let outcome = if print.strict {
                Outcome::SomeFailed
            } else {
                Outcome::AllArrived
            };
            (status, outcome)
        }
        Err(stream::Error::Object { status, .. }) => (status, Outcome::SomeFailed),
        Err(error) => return Err(error),
    };
    if print.json {
        println!(
            "{}",
            json!({
                "event": "put",
                "id": id.to_string(),
                "file": path.display().to_string(),
                "bytes": size,
                "status": status.code(),
                "status_hex": format!("{:#04x}", status.code()),
                "status_text": status.message(),
                "seconds": elapsed.as_secs_f64(),
                "success": outcome == Outcome::AllArrived,
            })
        );
    } else if status == Status::Success {
        if !print.quiet {
            println!(
                "put {}: {} in {} ({}) as {id}",
                path.display(),
                bytes_text(size),
                duration_text(elapsed),
                rate_text(size, elapsed)
            );
        } else {
            println!("{id}");
        }
    } else {
        println!(
            "put {}: {:#04x} ({}) for {id}",
            path.display(),
            status.code(),
            status.message()
        );
    }
    Ok(outcome)
}

fn file_error(path: &Path, what: &str, error: std::io::Error) -> stream::Error {
    stream::Error::Io(std::io::Error::new(
        error.kind(),
        format!("cannot {what} {}: {error}", path.display()),
    ))
}

/// Streams the object into `FILE.partial` and renames it to `FILE` once whole: a failed
/// `get` leaves no file that looks complete.
async fn get(
    client: &Client,
    id: ObjectId,
    path: &Path,
    print: Printing,
) -> stream::Result<Outcome> {
    let started = Instant::now();
    let mut incoming = match client.pull(TransferKind::Copy, id).await {
        Ok(incoming) => incoming,
        Err(stream::Error::Object { status, .. }) => {
            println!("get {id}: {:#04x} ({})", status.code(), status.message());
            return Ok(Outcome::SomeFailed);
        }
        Err(error) => return Err(error),
    };
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let written = async {
        let mut file = tokio::fs::File::create(&partial)
            .await
            .map_err(|error| file_error(&partial, "create", error))?;
        while let Some(chunk) = incoming.next_chunk().await? {
            file.write_all(&chunk)
                .await
                .map_err(|error| file_error(&partial, "write", error))?;
        }
        file.sync_all()
            .await
            .map_err(|error| file_error(&partial, "write", error))?;
        let size = incoming.data_size();
        incoming.finish().await?;
        Ok::<u64, stream::Error>(size)
    }
    .await;
    let size = match written {
        Ok(size) => size,
        Err(error) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(error);
        }
    };
    tokio::fs::rename(&partial, path)
        .await
        .map_err(|error| file_error(path, "rename the finished file to", error))?;
    let elapsed = started.elapsed();
    if print.json {
        println!(
            "{}",
            json!({
                "event": "get",
                "id": id.to_string(),
                "file": path.display().to_string(),
                "bytes": size,
                "seconds": elapsed.as_secs_f64(),
                "success": true,
            })
        );
    } else if !print.quiet {
        println!(
            "get {id}: {} to {} in {} ({})",
            bytes_text(size),
            path.display(),
            duration_text(elapsed),
            rate_text(size, elapsed)
        );
    }
    Ok(Outcome::AllArrived)
}

/// Seconds since the Unix epoch now (for tests of [`time_text`]).
#[cfg(test)]
fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_commands_parse_and_misuse_is_named() {
        let id = "0102030405060708090a0b0c0d0e0f1011121314";
        assert_eq!(parse("ls"), Some(Ok(StoreCommand::List)));
        assert_eq!(parse("STATS"), Some(Ok(StoreCommand::Stats)));
        assert!(matches!(
            parse(&format!("info {id}")),
            Some(Ok(StoreCommand::Info(_)))
        ));
        assert_eq!(
            parse(&format!("put a.bin --id {id}")),
            Some(Ok(StoreCommand::Put {
                file: "a.bin".into(),
                id: Some(id.parse().unwrap())
            }))
        );
        assert!(matches!(
            parse(&format!("get {id} out")),
            Some(Ok(StoreCommand::Get { .. }))
        ));
        assert_eq!(parse("COPY 1.2.3.4:5 x"), None);
        assert_eq!(
            parse("ls -l"),
            Some(Err("usage: ls (takes no arguments)".into()))
        );
        assert!(parse("info xyz")
            .unwrap()
            .unwrap_err()
            .contains("`xyz` is not an object ID"));
        assert_eq!(parse("get"), Some(Err("usage: get <oid> FILE".into())));
    }

    #[test]
    fn times_are_civil_dates_in_utc() {
        assert_eq!(time_text(0), "-");
        assert_eq!(time_text(86_400 * 365), "1971-01-01 00:00:00 UTC");
        assert_eq!(time_text(1_709_210_096), "2024-02-29 12:34:56 UTC");
        assert!(time_text(now_unix()).starts_with("20"));
    }

    #[test]
    fn a_files_id_is_its_content_hash_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        std::fs::write(&a, b"hello").unwrap();
        std::fs::write(&b, b"hello").unwrap();
        std::fs::write(&c, b"hellO").unwrap();
        let id = content_id(&a).unwrap();
        assert_eq!(id, content_id(&b).unwrap());
        assert_ne!(id, content_id(&c).unwrap());
        assert_eq!(&id.as_bytes()[16..], &5u32.to_le_bytes());
    }
}
