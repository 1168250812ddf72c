//! Whitelist lines as `ibd white` reads them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    let _ = ipqbdb_admin::parse_white_line(line);
});
