//! Support for the end-to-end tests: starting stores and servers as real processes.
