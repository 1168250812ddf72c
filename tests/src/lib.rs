//! Helpers shared by the cross-crate tests, a file per kind: addresses, databases, the workspace's
//! programs and their options, child processes, waiting, network namespaces and traffic, the
//! metrics pages, a private PostgreSQL server, and the lock that runs timed tests alone
//! ([`timing`]).

pub mod addr;
pub mod db;
pub mod http_server;
pub mod netns;
pub mod postgres;
pub mod proc;
pub mod programs;
pub mod scrape;
pub mod timing;
pub mod traffic;
pub mod wait;

pub use addr::{ip, nth_v4, stream_addr};
pub use db::{open_any, open_existing, options, TestDb};
pub use ipqbdb_test_macros::root_test;
pub use proc::{output_ok, Proc};
pub use programs::{daemon_options, db_options, parser_following, workspace_bin};
pub use wait::{must_finish, wait_until, Lines};
