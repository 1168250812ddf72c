//! A fail2ban filter file of arbitrary text, loaded and run as ibd-parse runs imported filters:
//! an error naming the file, or a filter that matches lines, never a panic (includes, `%(name)s`
//! interpolation, `<tag>` substitution, Python regex translation, both regex engines).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("ipqbdb-fuzz-f2b-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temporary directory");
        d
    });
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The first line names the filter with its options; the rest is the filter file.
    let (spec, body) = text.split_once('\n').unwrap_or(("f", text));
    let Ok(mut spec) = spec.replace(['/', '.'], "").parse::<ipqbdb_fail2ban::FilterSpec>() else {
        return;
    };
    spec.name = "f".into();
    if std::fs::write(dir.join("f.conf"), body).is_err() {
        return;
    }
    if let Ok(f) = ipqbdb_parse::fail2ban_filters::ImportedFilter::load(dir, &spec) {
        for line in [
            "Nov 21 10:00:00 gw svc[7]: bad user x from 192.0.2.1",
            "2026-11-21T10:00:00+01:00 gw sshd[8]: Failed password for root from 2001:db8::1 port 22 ssh2",
            body,
        ] {
            let _ = f.check(line);
        }
    }
});
