//! Command-line definition of `ibd-judge`, apart from the program so man pages can be generated.

use clap::{ArgAction, CommandFactory, Parser};
use ipqbdb_metrics::MetricsArgs;
use ipqbdb_runtime::setup::{DbArgs, MaintenanceArgs};

use crate::qspec::QSpec;

#[derive(Debug, Parser)]
#[command(
    name = "ibd-judge",
    version,
    about = "Give each queued packet a verdict from the block probability of its address",
    long_about = "Give each queued packet a verdict from the block probability of its address.\n\n\
        QSPEC is Q<num>[S|D][M<mark>]: the NFQUEUE number, whether the Source (default) or the \
        Destination address is judged, and with M a guilty packet is accepted with that mark instead \
        of dropped (so a rule in a later table can REJECT it). Innocent packets are accepted.\n\n\
        Example: iptables -A INPUT -m conntrack --ctstate NEW -j NFQUEUE --queue-num 0; ibd-judge Q0 \
        (Q0 is also what ibd-judge judges when no QSPEC is given)\n\n\
        Without --fail-open, packets are dropped while the queue is full (fail-closed); with it the \
        kernel accepts them unjudged. While no judge listens at all, the kernel drops queued packets \
        unless the iptables rule has --queue-bypass.\n\n\
        Each queue is served by a thread of its own. The innocent packets of a receive burst are \
        accepted by one batch verdict, after the guilty ones got theirs; nothing waits past the end \
        of its burst. With several queues, --queue-balance 0:1 (and --queue-cpu-fanout) in the rule \
        spreads packets over them: ibd-judge Q0 Q1. On SIGTERM every packet received is answered \
        and what the queue still holds is accepted before the socket closes.\n\n\
        Signals: SIGUSR1 logs counters per queue, SIGUSR2 reopens the database, SIGHUP is logged \
        (nothing to reload), SIGTERM and SIGINT exit cleanly.\n\n\
        Metrics: --metrics-listen serves the Prometheus text format at /metrics (packets by queue \
        and verdict, unjudged packets by cause, receive errors, packets per verdict send, snapshot \
        age, cache hits, counter write-backs); --metrics-file writes it for node_exporter's \
        textfile collector."
)]
pub struct Cli {
    #[command(flatten)]
    pub db: DbArgs,
    /// Queues to judge, e.g. Q0 Q1D Q2SM4 [default: Q0, queue 0 by source address]
    #[arg(value_name = "QSPEC", default_value = "Q0", hide_default_value = true)]
    pub specs: Vec<QSpec>,
    /// Stay in the foreground (as under systemd); otherwise detach and log to syslog
    #[arg(short = 'D', long, alias = "no-daemon")]
    pub foreground: bool,
    /// More messages: -vv each guilty packet, -vvv every packet with its probability and draw
    /// (ipqbdb 2.x's `-v N` and `--verbose=N` are N+1 of these)
    #[arg(short, action = ArgAction::Count)]
    pub verbose: u8,
    /// Maximum packets waiting in each kernel queue
    #[arg(long, value_name = "N", default_value_t = 8192)]
    pub queue_maxlen: u32,
    /// Netlink receive buffer, e.g. 16M (bursts of 100,000 packets/s need megabytes)
    #[arg(long, value_name = "BYTES", default_value = "16M")]
    pub rcvbuf: String,
    /// Accept packets unjudged while a queue is full, instead of dropping them
    #[arg(long)]
    pub fail_open: bool,
    /// Bytes of each packet copied to the judge (the IP header is enough), at least 40: an IPv6
    /// header's length, or IPv6 packets could not be judged
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = crate::packet::COPY_RANGE,
        value_parser = clap::value_parser!(u16).range(MIN_COPY_RANGE..)
    )]
    pub copy_range: u16,
    /// Longest time a verdict may use a database snapshot, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub staleness_ms: u64,
    #[command(flatten)]
    pub maintenance: MaintenanceArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// Log to syslog even in the foreground
    #[arg(long)]
    pub log_syslog: bool,
}

/// The smallest `--copy-range`: an IPv6 header (an IPv4 one is at most 60 bytes, but its addresses
/// are within the first 20).
pub const MIN_COPY_RANGE: i64 = 40;

pub fn command() -> clap::Command {
    Cli::command()
}
