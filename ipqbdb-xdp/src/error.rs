//! `XdpError`: what can stop ibd-xdp, each naming the interface, map or pin involved.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("{0}: not on a BPF filesystem (mount one: mount -t bpf bpf /sys/fs/bpf)")]
    NotBpffs(PathBuf),
    #[error("{path}: {source}")]
    Pin {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the kernel's verifier refused program {program}: {reason}")]
    Verifier { program: String, reason: String },
    #[error("loading the XDP program: {0}")]
    Load(String),
    #[error("interface {iface}: {reason}")]
    Attach { iface: String, reason: String },
    #[error("map {map}: {reason}")]
    Map { map: &'static str, reason: String },
    #[error("{0}")]
    Store(#[from] ipqbdb_store::StoreError),
}

/// An error with its sources on one line (aya's errors nest the reason two or three levels down).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}
