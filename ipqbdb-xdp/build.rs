//! Compiles the XDP program (`bpf/verdict.bpf.c`) with clang for the BPF target, and its decay
//! function (`bpf/decay.h`) for the host, where the tests compare it with ipqbdb-core's model; also
//! `bpf/refused.bpf.c`, which the verifier refuses, for the test of that error.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    for f in [
        "bpf/verdict.bpf.c",
        "bpf/refused.bpf.c",
        "bpf/decay.h",
        "bpf/decay_host.c",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=BPF_CLANG");
    let clang = env::var("BPF_CLANG").unwrap_or_else(|_| "clang".into());
    // <asm/types.h> lives under the multiarch directory, which clang -target bpf does not search.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("target arch");
    let multiarch = match arch.as_str() {
        "x86" => "i386-linux-gnu".to_string(),
        "arm" => "arm-linux-gnueabihf".to_string(),
        "powerpc64" => "powerpc64le-linux-gnu".to_string(),
        a => format!("{a}-linux-gnu"),
    };
    for name in ["verdict", "refused"] {
        let src = format!("bpf/{name}.bpf.c");
        let status = Command::new(&clang)
            .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
            .arg(format!("-I/usr/include/{multiarch}"))
            .args(["-c", &src, "-o"])
            .arg(out.join(format!("{name}.bpf.o")))
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("{clang} failed to compile {src} ({s})"),
            Err(e) => panic!(
                "cannot run {clang} ({e}): building the XDP program needs clang and libbpf-dev \
                 (apt-get install clang libbpf-dev)"
            ),
        }
    }
    cc::Build::new()
        .file("bpf/decay_host.c")
        .warnings(true)
        .compile("ipqbdb_decay_host");
}
