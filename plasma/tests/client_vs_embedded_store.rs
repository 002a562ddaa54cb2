//! The same client scenarios as `pyarrow_store.rs`, against this crate's own `plasma-store`
//! binary (the embedded store), so both stores are held to one behaviour. The interop checks
//! still need pyarrow; the rest need nothing but the binary.

mod support;

use std::path::Path;

use support::{
    scenarios, spawn_store_at, start_embedded_in_process, start_store_process, RunningStore,
};

const MIB: u64 = 1 << 20;

fn start_ours(capacity: u64) -> RunningStore {
    start_store_process(Path::new(env!("CARGO_BIN_EXE_plasma-store")), capacity, &[])
}

/// Small arenas, so a fragmented store spills into further segments.
fn start_ours_small_arenas(capacity: u64) -> RunningStore {
    let arena = (capacity / 2).to_string();
    start_store_process(
        Path::new(env!("CARGO_BIN_EXE_plasma-store")),
        capacity,
        &["--arena-size", &arena],
    )
}

#[test]
fn basic_operations_against_embedded_store() {
    scenarios::basic_operations(&start_ours);
}

#[test]
fn get_timeouts_against_embedded_store() {
    scenarios::get_timeouts(&start_ours);
}

#[test]
fn delete_outcomes_against_embedded_store() {
    scenarios::delete_outcomes(&start_ours);
}

#[test]
fn second_segment_against_embedded_store() {
    scenarios::second_segment(&start_ours_small_arenas);
}

#[test]
fn store_killed_mid_session_against_embedded_store() {
    scenarios::store_killed(&start_ours);
}

#[test]
fn async_pool_against_embedded_store() {
    scenarios::pool_operations(&start_ours);
}

#[test]
#[ignore = "needs pyarrow 11 (.ci/run installs it)"]
fn rust_and_pyarrow_interoperate_through_embedded_store() {
    let sizes = [
        (0, 0),
        (0, 13),
        (1, 0),
        (1000, 65_536),
        (3 * MIB + 17, 5),
        (100 * MIB, 100),
    ];
    scenarios::rust_to_pyarrow(&start_ours, 300 * MIB, &sizes);
    scenarios::pyarrow_to_rust(&start_ours, 300 * MIB, &sizes);
}

#[test]
fn create_without_eviction_never_evicts_in_embedded_store() {
    scenarios::create_without_eviction_never_evicts(&start_ours);
}

#[test]
fn async_pool_survives_an_embedded_store_restart() {
    scenarios::pool_survives_store_restart(&start_ours, &|socket, capacity| {
        spawn_store_at(
            Path::new(env!("CARGO_BIN_EXE_plasma-store")),
            socket,
            capacity,
            &[],
        )
    });
}

// The same scenarios against the store started in this process (`EmbeddedStore::start`), the
// way the stream server runs it with `--embedded-store`.

#[test]
fn basic_operations_against_in_process_store() {
    scenarios::basic_operations(&start_embedded_in_process);
}

#[test]
fn get_timeouts_against_in_process_store() {
    scenarios::get_timeouts(&start_embedded_in_process);
}

#[test]
fn delete_outcomes_against_in_process_store() {
    scenarios::delete_outcomes(&start_embedded_in_process);
}

#[test]
fn store_stopped_mid_session_against_in_process_store() {
    scenarios::store_killed(&start_embedded_in_process);
}

#[test]
fn async_pool_against_in_process_store() {
    scenarios::pool_operations(&start_embedded_in_process);
}

#[test]
#[ignore = "needs pyarrow 11 (.ci/run installs it)"]
fn large_gib_object_round_trips_through_embedded_store() {
    // > 1 GiB of data, written by Rust into our store, read and hashed by pyarrow.
    scenarios::rust_to_pyarrow(&start_ours, 2_000_000_000, &[((1 << 30) + 4097, 1000)]);
}

#[test]
fn create_and_seal_in_one_request_in_embedded_store() {
    scenarios::create_and_seal_in_one_request(&start_ours);
}

#[test]
fn contains_many_answers_like_contains_in_embedded_store() {
    scenarios::contains_many_answers_like_contains(&start_ours);
}
