//! Command-line definition of `ibd-xdp`, apart from the program so man pages can be generated.

use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser};
use ipqbdb_runtime::setup::DbArgs;

use crate::loader::AttachMode;

/// Where pins go unless --pin-dir says otherwise: one directory per interface.
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf/ipqbdb";

#[derive(Debug, Parser)]
#[command(
    name = "ibd-xdp",
    version,
    about = "Drop packets of banned sources in the kernel (XDP), each with its block probability",
    long_about = "Drop packets of banned sources in the kernel, each with its block probability.\n\n\
        ibd-xdp attaches an XDP program to IFACE (in the driver where it supports XDP, else in \
        generic mode; the log says which) and keeps its BPF maps in step with the database: every \
        record with a current probability above 0, the database's IPv6 prefix, and the whitelist's \
        never-blocked (decay 0) addresses. The program decays each probability itself, so verdicts \
        stay right while ibd-xdp is stopped or restarting. It sees incoming packets only, before \
        iptables; it drops, it cannot mark (use ibd-judge for marks and for outgoing traffic).\n\n\
        Program and maps stay attached and pinned under --pin-dir when ibd-xdp exits or is killed; \
        the next ibd-xdp adopts them without a gap. --detach-on-exit removes them on a clean exit.\n\n\
        When more records are live than --max-entries, the map holds those of highest current \
        probability; the rest get no kernel verdict (run ibd-judge beside it for them).\n\n\
        Signals: SIGUSR1 logs counters, SIGTERM and SIGINT exit cleanly."
)]
pub struct Cli {
    #[command(flatten)]
    pub db: DbArgs,
    /// Network interface to attach to
    #[arg(value_name = "IFACE")]
    pub iface: String,
    /// Directory on a BPF filesystem for the pinned link and maps [default: /sys/fs/bpf/ipqbdb/IFACE]
    #[arg(long, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,
    /// Most records the kernel map holds (its memory is reserved for all of them up front)
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub max_entries: u32,
    /// Most CIDR blocks for the whitelist's never-blocked addresses
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    pub max_white: u32,
    /// XDP mode: auto (native where the driver supports it), native or generic. An adopted
    /// program keeps its mode
    #[arg(long, value_name = "MODE", value_enum, default_value_t = AttachMode::Auto)]
    pub xdp_mode: AttachMode,
    /// Time between two passes over the database, in milliseconds: a ban reaches the map within
    /// about this (stretched to four times a pass's duration on large databases)
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub staleness_ms: u64,
    /// Detach the program and remove its maps on a clean exit (SIGTERM, SIGINT)
    #[arg(long)]
    pub detach_on_exit: bool,
    /// Stay in the foreground (as under systemd); otherwise detach and log to syslog
    #[arg(short = 'D', long, alias = "no-daemon")]
    pub foreground: bool,
    /// More messages: -v each synchronisation that changed the map
    #[arg(short, action = ArgAction::Count)]
    pub verbose: u8,
    /// Log to syslog even in the foreground
    #[arg(long)]
    pub log_syslog: bool,
}

impl Cli {
    pub fn pin_dir(&self) -> PathBuf {
        self.pin_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PIN_ROOT).join(&self.iface))
    }
}

pub fn command() -> clap::Command {
    Cli::command()
}
