//! The Rust client against pyarrow 11's real `plasma_store` (one store per test), including
//! interoperability with pyarrow's own client. Needs the venv that `.ci/run` creates.

mod support;

use support::scenarios;
use support::{spawn_pyarrow_store_at, start_pyarrow_store};

const MIB: u64 = 1 << 20;
const GB: u64 = 1_000_000_000;

#[test]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run installs it)"]
fn basic_operations_against_pyarrow_store() {
    scenarios::basic_operations(&start_pyarrow_store);
}

#[test]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run installs it)"]
fn rust_objects_are_read_by_pyarrow_with_equal_digests() {
    scenarios::rust_to_pyarrow(
        &start_pyarrow_store,
        300 * MIB,
        &[
            (0, 0),
            (0, 13),
            (1, 0),
            (1000, 65_536),
            (3 * MIB + 17, 5),
            (100 * MIB, 100),
        ],
    );
}

#[test]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run installs it)"]
fn pyarrow_objects_are_read_by_rust_byte_for_byte() {
    scenarios::pyarrow_to_rust(
        &start_pyarrow_store,
        300 * MIB,
        &[
            (0, 0),
            (0, 13),
            (1, 0),
            (1000, 65_536),
            (3 * MIB + 17, 5),
            (100 * MIB, 100),
        ],
    );
}

#[test]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run installs it)"]
fn large_gib_object_round_trips_through_pyarrow() {
    // > 1 GiB of data, written by Rust, read and hashed by pyarrow.
    scenarios::rust_to_pyarrow(&start_pyarrow_store, 2 * GB, &[((1 << 30) + 4097, 1000)]);
}

#[test]
#[ignore = "needs pyarrow 11 plasma_store"]
fn create_without_eviction_never_evicts_in_pyarrow_store() {
    scenarios::create_without_eviction_never_evicts(&start_pyarrow_store);
}

#[test]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run installs it)"]
fn get_timeouts_against_pyarrow_store() {
    scenarios::get_timeouts(&start_pyarrow_store);
}

#[test]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run installs it)"]
fn delete_outcomes_against_pyarrow_store() {
    scenarios::delete_outcomes(&start_pyarrow_store);
}

#[test]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run installs it)"]
fn fragmented_store_opens_a_second_segment() {
    scenarios::second_segment(&start_pyarrow_store);
}

#[test]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run installs it)"]
fn store_killed_mid_session_is_an_error() {
    scenarios::store_killed(&start_pyarrow_store);
}

#[test]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run installs it)"]
fn async_pool_against_pyarrow_store() {
    scenarios::pool_operations(&start_pyarrow_store);
}

#[test]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run installs it)"]
fn async_pool_survives_a_pyarrow_store_restart() {
    scenarios::pool_survives_store_restart(&start_pyarrow_store, &spawn_pyarrow_store_at);
}

#[test]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run installs it)"]
fn create_and_seal_in_one_request_in_pyarrow_store() {
    scenarios::create_and_seal_in_one_request(&start_pyarrow_store);
}

#[test]
#[ignore = "needs pyarrow 11's plasma_store (.ci/run installs it)"]
fn contains_many_answers_like_contains_in_pyarrow_store() {
    scenarios::contains_many_answers_like_contains(&start_pyarrow_store);
}
