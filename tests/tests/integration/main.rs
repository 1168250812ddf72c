//! This crate's integration tests in one binary, as ripgrep and cargo keep theirs: the engines are
//! linked once instead of once per file, and the tests of all files run side by side. A root test
//! with a timing bound says so (`#[root_test("...", timing)]`) and runs alone
//! (`ipqbdb_tests::timing`).

mod crash_loop;
mod damaged_files;
mod full_disk;
mod metrics;
mod postgres;
mod propagation;
mod stale_readers;
mod store_conformance;
mod storm;
mod transfer;
mod upgrade;
