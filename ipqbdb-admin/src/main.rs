//! `ibd`: see the library for the dispatch on program names.

fn main() -> std::process::ExitCode {
    ipqbdb_runtime::signals::default_sigpipe();
    std::process::ExitCode::from(ipqbdb_admin::run(std::env::args_os()))
}
