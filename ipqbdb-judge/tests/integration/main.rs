//! This crate's integration tests in one binary, as ripgrep and cargo keep theirs: the engines are
//! linked once instead of once per file, and the tests of all files run side by side.

mod batching;
mod busy_writer;
mod common;
mod netns;
mod stop;
mod usage;
