//! Command-line definitions of `ibd` and its link names. Kept apart from the actions so that man
//! pages and completions can be generated from [`command`] alone.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};
use ipqbdb_runtime::connkill::ConnKillArgs;
use ipqbdb_runtime::setup::DbArgs;

#[derive(Debug, Parser)]
#[command(
    name = "ibd",
    version,
    // `ibd-ban --version`, as every program of ipqbdb 2.x answered it.
    propagate_version = true,
    // popt aliases expand to options the command line may give too (`-l -l --log-category`).
    args_override_self = true,
    about = "Administer the ipqbdb database of abusive IP addresses",
    long_about = "Administer the ipqbdb database of abusive IP addresses.\n\n\
        Each subcommand is also available as a program of its own through links named \
        ibd-ban, ibd-del, ibd-white, ibd-config, ibd-category (also ibd-descr) and ibd-report \
        (see `ibd install-links`).\n\n\
        Option aliases: lines `PROGRAM alias OPTION EXPANSION...` of the popt option file \
        (/etc/ipqbdb.popt, or --option-file, or $IPQBDB_OPTION_FILE) are applied to the program \
        named (ibd-ban, ibd-del, ...) before its command line is read, beside the TOML \
        configuration file. See docs/UPGRADING.md for the spellings of ipqbdb 2.x.\n\n\
        Exit status: 0 success, 1 failure (for ban and white: some input refused), 2 usage error, \
        3 (ban) every ban applied but a connection kill failed."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: DbArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ban addresses (double their block probability), or with no address insert a reason
    Ban(BanArgs),
    /// List, delete or expire block records; show per-reason statistics
    Del(DelArgs),
    /// Read whitelist entries (ADDRESS, a-b or CIDR, then a decay), list or delete them
    White(WhiteArgs),
    /// Print settings as `NAME value` lines, or change the database's IPv6 prefix
    Config(ConfigArgs),
    /// Show, set or clear the report category of a reason
    Category(CategoryArgs),
    /// Report banned addresses whose reason has a category to an AbuseIPDB-compatible database
    #[command(long_about = REPORT_ABOUT)]
    Report(ReportArgs),
    /// Create the ibd-ban, ibd-del, ibd-white, ibd-config, ibd-category, ibd-descr and ibd-report
    /// links in DIR
    InstallLinks(InstallLinksArgs),
    /// Print the database's figures: records (by probability band), reasons, whitelist entries
    ///
    /// Prints the records, the records by current probability band, the reasons, the whitelist
    /// entries and the size on disk as `NAME value` lines.
    ///
    /// With --prometheus they are gauges in the Prometheus text format, for a cron job or a timer
    /// writing into node_exporter's textfile directory, e.g. `ibd stats --prometheus --output
    /// /var/lib/prometheus/node-exporter/ipqbdb-db.prom` (the daemons export their own counters with
    /// --metrics-listen or --metrics-file).
    Stats(StatsArgs),
    /// Write every table of the database (records, whitelist, reasons, settings, read positions)
    /// to FILE or standard output, to move it to another engine with `ibd import`
    #[command(
        long_about = "Write every table of the database (block records, whitelist, reasons and \
            their statistics, the IPv6 prefix, the parser's read positions) to FILE or standard \
            output, from one consistent snapshot.\n\n\
            To move a database to another engine (another ipqbdb-* package, or to a shared \
            PostgreSQL server): stop ibd-parse, `ibd export > dump`, then \
            `ibd import --db-dir NEWDIR --backend ENGINE dump` (a new, empty database), and \
            point db-dir (and backend) at it. The dump is text: a header line, then one \
            `TABLE<TAB>KEY<TAB>VALUE` line per entry, key and value in hex."
    )]
    Export(ExportArgs),
    /// Read a dump written by `ibd export` into a new, empty database, in one transaction
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where to write the dump [default: standard output]
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    long_about = "Read a dump written by `ibd export` into a new, empty database, in one \
        transaction.\n\n\
        With --old-white and --old-reasons, read instead what can come across from ipqbdb 2.x \
        (see docs/UPGRADING.md): its whitelist as ibd-white read it (`RANGE DECAY` lines, decays \
        in seconds with a fraction), and its reasons with their categories as `ID CATEGORY \
        REASON` lines. Block records are not imported: their probabilities are re-earned at the \
        next offence."
)]
pub struct ImportArgs {
    /// The dump; - for standard input
    #[arg(
        value_name = "FILE",
        required_unless_present_any = ["old_white", "old_reasons"],
        conflicts_with_all = ["old_white", "old_reasons"]
    )]
    pub file: Option<PathBuf>,
    /// ipqbdb 2.x's whitelist, as the `RANGE DECAY` lines ibd-white read
    #[arg(long, value_name = "FILE")]
    pub old_white: Option<PathBuf>,
    /// ipqbdb 2.x's reasons, as `ID CATEGORY REASON` lines (category 0: none); into a new database
    /// they keep their numbers, which numeric reasons in rule files refer to
    #[arg(long, value_name = "FILE")]
    pub old_reasons: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BanArgs {
    /// Addresses to ban: IPv4, IPv6 or IPv4-mapped IPv6
    #[arg(value_name = "ADDRESS")]
    pub addresses: Vec<String>,
    /// Reason recorded with a new ban [default: "banned by ibd ban"]
    #[arg(short, long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Doublings from the initial probability to 100 %: 0 bans at once, 5 starts at 1/32 [default: 5]
    #[arg(short = 'c', long, value_name = "0-31")]
    pub initial_count: Option<u32>,
    /// Half-life of the probability of a new record, e.g. 30m, 4h, 2d, 86400.5 (seconds, rounded
    /// to whole ones) [default: 1h]
    #[arg(short = 't', long, value_name = "DURATION", alias = "initial-decay")]
    pub decay: Option<String>,
    #[command(flatten)]
    pub connkill: ConnKillArgs,
    /// Also log each ban to syslog
    #[arg(long, short_alias = 'l')]
    pub log_syslog: bool,
    /// Append the reason's report category to each ban's line (`, category N` on standard output,
    /// `, N` in the syslog line), for reporting with one's own scripts
    #[arg(long)]
    pub log_category: bool,
    /// Print nothing on success
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct DelArgs {
    /// Only records within these addresses, a-b ranges or CIDR blocks
    #[arg(value_name = "SELECTION")]
    pub selection: Vec<String>,
    /// List records (the default action)
    #[arg(long, short_alias = 'L')]
    pub ls: bool,
    /// Delete the selected records; with --ls, list what was deleted
    #[arg(long)]
    pub del: bool,
    /// Only records not updated for at least this long, e.g. 4w
    #[arg(long, value_name = "DURATION")]
    pub min_time: Option<String>,
    /// With --del --min-time: delete only the oldest, just enough to leave this many, e.g. 100k
    #[arg(long, value_name = "COUNT", requires = "min_time")]
    pub max_records: Option<String>,
    /// Show per-reason statistics and categories instead of records
    #[arg(long, short_alias = 'S', conflicts_with_all = ["ls", "del"])]
    pub stats: bool,
    /// Print column headers
    #[arg(short, long)]
    pub verbose: bool,
    /// Print JSON instead of columns
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WhiteArgs {
    /// Files of `RANGE [DECAY]` lines to read; `-` or none reads standard input
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// List the whitelist
    #[arg(long, conflicts_with_all = ["files", "del"])]
    pub ls: bool,
    /// Delete these entries (exactly as listed)
    #[arg(long, value_name = "RANGE", num_args = 1.., conflicts_with = "files")]
    pub del: Vec<String>,
    /// Print column headers with --ls
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Change the IPv6 prefix length the database bans by (1-128), rewriting its IPv6 records in one
    /// transaction (records that fall under one prefix are merged); creates the database if missing.
    /// Then remove or change ipv6-prefix in the configuration, or programs will refuse to start
    #[arg(long, value_name = "BITS")]
    pub set_ipv6_prefix: Option<u32>,
}

#[derive(Debug, Args)]
pub struct CategoryArgs {
    /// The reason, by its text (or by its number with --id)
    #[arg(value_name = "REASON")]
    pub reason: String,
    /// New category, 1 to 255 (0 clears); none shows the current one
    #[arg(value_name = "CATEGORY", value_parser = clap::value_parser!(u8))]
    pub category: Option<u8>,
    /// REASON is a reason number, as listed by `ibd del --stats`
    #[arg(long)]
    pub id: bool,
    /// Clear the category
    #[arg(long, conflicts_with = "category")]
    pub clear: bool,
}

const REPORT_ABOUT: &str = "Report banned addresses whose reason has a category (see `ibd category`) \
to an AbuseIPDB-compatible endpoint: POST report-url with the API key (read from report-key-file, \
never given on the command line) in the Key header and the form fields ip, categories and comment.\n\n\
A ban is reported when it left the address at report-min-probability or more (default 0 %), at most \
once per address per report-cooldown (15m) and report-daily-quota reports per UTC day (1000), if it \
is not older than report-max-age (1h). Whitelisted addresses and special-purpose ones (private, \
loopback, link-local, documentation, carrier-grade NAT, multicast, unspecified, reserved) are never \
reported, nor IPv6 networks of a database that bans by a prefix shorter than /128. The comment is \
report-comment with the fields {address}, {reason}, {category}, {caught}, {probability} and {time}; \
the database holds no log text, so none can be sent.\n\n\
Exactly once: each attempt is recorded as sent in the database before the request goes out, and its \
answer after; a ban is never reported twice. A report whose request went out without an answer (a \
crash or a timeout) is not sent again and shows as sent or in-doubt in --status. 429 and 5xx answers \
and unreachable endpoints are retried with exponential backoff (1 s doubling to 1 h, at least \
Retry-After) by --follow; a one-shot run stops there and exits 1.\n\n\
Settings come from the [report] section of the configuration file.";

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Keep running: look for new bans every report-interval (10s) until SIGTERM or SIGINT
    #[arg(short, long, conflicts_with = "status")]
    pub follow: bool,
    /// Print the requests that would be sent (method, URL, form body) and change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// List what was reported for each address, and today's count
    #[arg(long, conflicts_with = "dry_run")]
    pub status: bool,
    /// Log to syslog instead of standard error (with --follow)
    #[arg(long)]
    pub log_syslog: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print gauges in the Prometheus text format
    #[arg(long)]
    pub prometheus: bool,
    /// Replace FILE atomically (mode 0644) instead of printing, as node_exporter's textfile
    /// collector needs
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InstallLinksArgs {
    /// Directory for the links
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Replace existing files of those names
    #[arg(short, long)]
    pub force: bool,
}

/// The program names that dispatch to a subcommand, with that subcommand. `ibd-descr` is the name
/// ipqbdb 1.07 gave `ibd-category`.
pub const LINKS: [(&str, &str); 7] = [
    ("ibd-ban", "ban"),
    ("ibd-del", "del"),
    ("ibd-white", "white"),
    ("ibd-config", "config"),
    ("ibd-category", "category"),
    ("ibd-descr", "category"),
    ("ibd-report", "report"),
];

/// The clap command, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}
