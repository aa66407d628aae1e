//! The command-line face of rowtrail: argument definitions and one runner per command.
//!
//! This is the application shell: it turns arguments into library calls, prints results, and maps
//! failures to exit codes (0 done, 1 the doctor found blocking problems, 2 an error). It uses
//! `anyhow` to carry errors to `main`; library modules use their own error types.

mod capture;
mod demo;
mod history;
mod import;
mod json;
mod log;
mod related;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::capture::ConnectionSpec;
use crate::capture::conninfo::ProcessEnvironment;
use crate::model::TableName;

pub use json::change_json;

/// Explore the history of the data in a PostgreSQL database.
#[derive(Debug, Parser)]
#[command(name = "rowtrail", version, about, long_about = None)]
pub struct Cli {
    /// Print more about what happens (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Without a command, rowtrail opens its window.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the desktop app, optionally with a cache file.
    Open(OpenArgs),
    /// Start a private PostgreSQL with a small shop that keeps changing, capture it, and open the app.
    Demo(DemoArgs),
    /// Check that a database is ready for capture, and print the fix for each problem.
    Doctor(DoctorArgs),
    /// Capture row changes from a database's write-ahead log into a cache file.
    Capture(CaptureArgs),
    /// Drop the replication slot (and publication) capture created.
    Teardown(TeardownArgs),
    /// Copy a cache's history into a shared store on PostgreSQL (schema rowtrail), once or
    /// following the cache as it grows.
    Publish(PublishArgs),
    /// Import the history an audit store already keeps (the wiki's audit trigger, Bemi,
    /// supa_audit, pgMemento, PaperTrail, Debezium events) into a cache.
    Import(ImportArgs),
    /// List captured changes, newest first.
    Log(LogArgs),
    /// Show one change: what it changed, its transaction and context.
    Show(ShowArgs),
    /// List every version of one record, with what each change did.
    History(HistoryArgs),
    /// Show a record, or a whole table, as it was at a moment.
    At(AtArgs),
    /// Write the SQL script that undoes changes or a transaction.
    Undo(UndoArgs),
    /// Write the SQL script that puts a record back as it was at a moment.
    Restore(RestoreArgs),
    /// One record's story: its changes and those of the rows that point at it by foreign keys
    /// (its orders, their items, its tickets), judged at the moment of each change.
    Related(RelatedArgs),
    /// Add or remove a link between tables that the schema lacks, or list the links.
    Link(LinkArgs),
    /// Drop the history before a moment: each record's state then becomes the baseline the
    /// history begins with, and the file shrinks. Every later state, diff and restore is kept.
    Prune(PruneArgs),
    /// Erase one record's values (and with --related, its story's) from every change, keeping
    /// that each change happened, when and by whom; the erasure is logged.
    Forget(ForgetArgs),
    /// A view over a filtered set of rows: the changes that made rows enter it, leave it, or
    /// change inside it; or, with --time, the rows in it then.
    View(ViewArgs),
}

#[derive(Debug, Args)]
pub struct SourceArgs {
    /// The database: a URL (postgres://user@host:5432/db?sslmode=require) or key=value string.
    /// Left out, or for parts it leaves out, PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD,
    /// PGSSLMODE and ~/.pgpass are used, as in psql.
    #[arg(
        long,
        value_name = "URL",
        default_value = "",
        hide_default_value = true
    )]
    pub source: String,
}

impl SourceArgs {
    fn spec(&self) -> anyhow::Result<ConnectionSpec> {
        Ok(ConnectionSpec::resolve(&self.source, &ProcessEnvironment)?)
    }
}

/// What capture reads: which tables, through which slot and publication.
#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// Comma-separated tables (schema.table; unqualified means public). Default: all tables.
    #[arg(long, value_name = "LIST")]
    pub tables: Option<String>,
    /// The logical replication slot (capture creates it if missing, and resumes it otherwise).
    #[arg(long, value_name = "NAME", default_value = "rowtrail")]
    pub slot: String,
    /// The publication (capture creates it if missing).
    #[arg(long, value_name = "NAME", default_value = "rowtrail")]
    pub publication: String,
}

/// Columns whose values never reach the cache as they are. Patterns are table.column or
/// schema.table.column with * and ? wildcards. Rules are stored in the cache when its history
/// begins and apply to every later capture or import into it.
#[derive(Debug, Args, Default)]
pub struct RulesArgs {
    /// Leave this column out of every image (repeat for more; e.g. customers.password_hash,
    /// '*.ssn'); diffs say it was excluded
    #[arg(long, value_name = "PATTERN", value_parser = parse_exclude)]
    pub exclude: Vec<crate::model::ColumnRule>,
    /// Store a mask instead of this column's values: PATTERN=hash (a keyed hash: equal values
    /// stay equal) or PATTERN=last4 (the last four characters)
    #[arg(long, value_name = "PATTERN=HOW", value_parser = parse_mask)]
    pub mask: Vec<crate::model::ColumnRule>,
    /// A TOML file of rules: exclude = ["t.c", ...] and a [mask] table of "t.c" = "hash" or
    /// "last4"
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// The key of hash masks (64 hex digits; made when missing). Default:
    /// ~/.config/rowtrail/mask.key. Keep it apart from the cache, and keep it: a cache's hashes
    /// are only comparable under the key it was made with
    #[arg(long, value_name = "FILE")]
    pub mask_key: Option<PathBuf>,
}

fn parse_exclude(text: &str) -> Result<crate::model::ColumnRule, String> {
    crate::model::ColumnRule::exclude(text).map_err(|error| error.to_string())
}

fn parse_mask(text: &str) -> Result<crate::model::ColumnRule, String> {
    crate::model::ColumnRule::mask(text).map_err(|error| error.to_string())
}

impl RulesArgs {
    /// The rules and key these flags give. A key file is made (and said so on stderr) when a
    /// rule given hashes values and there is none yet.
    pub fn protection(&self) -> anyhow::Result<crate::model::ColumnProtection> {
        let mut rules: Vec<crate::model::ColumnRule> =
            self.exclude.iter().chain(&self.mask).cloned().collect();
        if let Some(path) = &self.rules {
            let text = std::fs::read_to_string(path).map_err(|error| {
                anyhow::anyhow!(
                    "could not read the rules file {}: {error} (hint: check --rules)",
                    path.display()
                )
            })?;
            let file = crate::model::ColumnRules::from_toml(&text)
                .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
            rules.extend(file.rules().iter().cloned());
        }
        let rules = crate::model::ColumnRules::new(rules);
        let (key, made) =
            crate::capture::mask_key::resolve(self.mask_key.as_deref(), rules.needs_key())?;
        if let Some(path) = made {
            eprintln!(
                "made the mask key {} (keep it, apart from the cache: later captures into this cache need it)",
                path.display()
            );
        }
        Ok(crate::model::ColumnProtection { rules, key })
    }
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// The cache file to write (created if missing).
    #[arg(long, value_name = "FILE")]
    pub cache: PathBuf,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Capture up to the server's current WAL position, then exit.
    #[arg(long)]
    pub once: bool,
    /// Also keep a shared store on PostgreSQL (a URL or key=value string): the cache file is
    /// its journal, and each transaction is copied into schema rowtrail of that database once
    /// it is in the cache.
    #[arg(long, value_name = "URL")]
    pub into: Option<String>,
    /// When the slot that fed the cache was invalidated or dropped, take a new baseline into the
    /// same cache; its history then has a gap from where it ended
    #[arg(long)]
    pub new_baseline: bool,
    /// Have the server send each transaction only once it commits. By default (PostgreSQL 14 and
    /// later) it streams large transactions while they run, and capture keeps them in a file
    /// beside the cache until they commit; without it the server keeps them on its own disk
    #[arg(long)]
    pub no_streaming: bool,
    #[command(flatten)]
    pub rules: RulesArgs,
    /// Keep only this much history (30d, 12h, 1w): older changes are folded into the baseline
    /// the history begins with, as rowtrail prune does, at start and then hourly.
    #[arg(long, value_name = "AGE")]
    pub retain: Option<String>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The cache to copy (it is the store's journal: publish from the same cache each time).
    #[arg(long, value_name = "FILE")]
    pub cache: PathBuf,
    /// The database that keeps the store: a URL or key=value string, as --source of capture.
    /// The store's tables are created in schema rowtrail when missing.
    #[arg(long, value_name = "URL")]
    pub into: String,
    /// Keep copying what the cache gains, until stopped (Ctrl-C).
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The database that holds the audit store: a URL or key=value string, as --source of
    /// capture (PG* variables and ~/.pgpass fill what it leaves out). For debezium, a file of
    /// events, or - for standard input.
    #[arg(
        long,
        value_name = "URL|FILE",
        default_value = "",
        hide_default_value = true
    )]
    pub from: String,
    /// The store's format: pg-audit-trigger (the PostgreSQL wiki's audit.logged_actions),
    /// bemi (Bemi's changes table), supa-audit (supa_audit's audit.record_version),
    /// pgmemento (pgMemento's row_log), paper-trail (PaperTrail's versions), or debezium
    /// (Debezium's change events, one JSON object per line).
    #[arg(long, value_name = "FORMAT", value_parser = parse_audit_format)]
    pub format: crate::import::AuditFormat,
    /// The cache file to write (created if missing; an import goes on where it stopped).
    #[arg(long, value_name = "FILE")]
    pub cache: PathBuf,
    /// Keep importing new rows as they appear, until stopped (Ctrl-C).
    #[arg(long)]
    pub follow: bool,
    /// A row that cannot be read: stop there (what came before stays), or skip it and count it.
    #[arg(long, value_enum, value_name = "WHAT", default_value = "stop")]
    pub on_error: OnErrorArg,
    /// For paper-trail: the table of a model whose table Rails' naming does not find
    /// (MODEL=SCHEMA.TABLE; repeat for more).
    #[arg(long, value_name = "MODEL=TABLE", value_parser = parse_table_of)]
    pub table_of: Vec<(String, String)>,
    /// For debezium: a database whose catalog has the events' tables (the source, or a copy of
    /// its schema): keys, column types and foreign keys come from it, as for the stores in a
    /// database.
    #[arg(long, value_name = "URL")]
    pub catalog: Option<String>,
    #[command(flatten)]
    pub rules: RulesArgs,
}

fn parse_table_of(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((model, table)) if !model.trim().is_empty() && !table.trim().is_empty() => {
            Ok((model.trim().to_owned(), table.trim().to_owned()))
        }
        _ => Err(format!(
            "{text:?} is not MODEL=TABLE: write it as --table-of OrderLine=public.order_lines"
        )),
    }
}

fn parse_audit_format(text: &str) -> Result<crate::import::AuditFormat, String> {
    text.parse()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnErrorArg {
    Stop,
    Skip,
}

#[derive(Debug, Args)]
pub struct TeardownArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// The replication slot to drop. An unused slot makes the server keep WAL forever.
    #[arg(long, value_name = "NAME")]
    pub slot: String,
    /// The publication to drop as well.
    #[arg(long, value_name = "NAME")]
    pub publication: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// The cache file to read.
    #[arg(long, value_name = "FILE")]
    pub cache: PathBuf,
    /// Only this table (schema.table; unqualified means public).
    #[arg(long, value_name = "T")]
    pub table: Option<String>,
    /// Only this record of --table: its key as JSON, e.g. '{"id": 7}' (strings or numbers).
    #[arg(long, value_name = "JSON", requires = "table")]
    pub key: Option<String>,
    /// Only this operation: insert, update, delete, truncate, snapshot or ddl (schema changes).
    #[arg(long, value_name = "OP")]
    pub op: Option<String>,
    /// Only changes committed at or after TIME: RFC 3339, local 'YYYY-MM-DD HH:MM[:SS]', or 15m, 2h, 3d ago.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only changes committed at or before TIME (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only changes whose context has this field value, e.g. user=ann (repeatable; dots reach into objects).
    #[arg(long, value_name = "KEY=VALUE")]
    pub context: Vec<String>,
    /// Only changes of this source transaction id.
    #[arg(long, value_name = "XID")]
    pub tx: Option<u32>,
    /// Only changes matching every term: COLUMN:VALUE or TABLE.COLUMN:VALUE (a value, exactly), a key as shown (id=42, order_id=7,line=2), or text a key or value contains (quote text with : or =).
    #[arg(long, value_name = "TERMS")]
    pub search: Option<String>,
    /// At most N changes (0 for all).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
    /// Print JSON lines instead of a table (the same as --format jsonl).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    #[command(flatten)]
    pub export: ExportArgs,
}

/// How a timeline is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for the terminal.
    Table,
    /// One JSON object per change.
    Jsonl,
    /// One row per change, for spreadsheets.
    Csv,
    /// A readable report: grouped by transaction, who, what changed in words.
    Markdown,
    /// The same report as one HTML page.
    Html,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<OutputFormat>,
    /// With --format markdown or html: attach the script that undoes this change.
    #[arg(long, value_name = "ID")]
    pub undo_sql: Option<i64>,
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    /// The cache file to show.
    #[arg(value_name = "CACHE")]
    pub cache: Option<PathBuf>,
    /// A view's rowtrail://view?… link (Copy link in the app, rowtrail view --save or --list):
    /// opens that view. Without CACHE, the most recent cache of the link's database is opened.
    #[arg(value_name = "LINK")]
    pub link: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's server data and cache in this new or empty directory instead of removing them.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Start everything without a window, wait until 100 simulated changes are captured, print a
    /// summary and exit (non-zero with the reason if that fails).
    #[arg(long)]
    pub check: bool,
    /// Write the demo's story into a cache without a server, even when PostgreSQL is installed.
    #[arg(long)]
    pub offline: bool,
}

/// Where a command reads history from.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// The cache file to read.
    #[arg(long, value_name = "FILE")]
    pub cache: PathBuf,
}

/// One record: a table and its key.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The table (schema.table; unqualified means public).
    #[arg(long, value_name = "T")]
    pub table: String,
    /// The record's key as JSON, e.g. '{"id": 7}' (values as strings or numbers).
    #[arg(long, value_name = "JSON")]
    pub key: String,
}

const MOMENT_HELP: &str = "A time (RFC 3339, local 'YYYY-MM-DD HH:MM[:SS]', 15m, 2h, 3d ago, or now), lsn:X/Y, change:ID (right after it) or change:ID-1 (right before it)";

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
    /// The change id (as `log` prints it).
    #[arg(value_name = "ID")]
    pub id: i64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub record: RecordArgs,
    /// Print JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RelatedArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub record: RecordArgs,
    /// How many foreign keys to follow: 1 for the rows that point at the record, 2 for the rows
    /// that point at those, and so on (1 to 10).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=10))]
    pub depth: u8,
    /// Also the rows the record itself points at (one level).
    #[arg(long)]
    pub up: bool,
    /// Only changes committed at or after TIME (same forms as log --since).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only changes committed at or before TIME.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// At most N changes, newest first (0 for all).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
    /// Print JSON lines (as log --json, with each change's path) instead of a table (the same
    /// as --format jsonl).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    #[command(flatten)]
    pub export: ExportArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("ends").multiple(true).requires_all(["from", "to"]).args(["from", "to"])))]
pub struct LinkArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
    /// The pointing side: TABLE.COLUMN, or TABLE(COLUMN,…) for several columns.
    #[arg(long, value_name = "TABLE.COLUMN")]
    pub from: Option<String>,
    /// The side pointed at: TABLE.COLUMN, or TABLE(COLUMN,…).
    #[arg(long, value_name = "TABLE.COLUMN")]
    pub to: Option<String>,
    /// Remove the link instead of adding it.
    #[arg(long, requires = "from")]
    pub remove: bool,
}

#[derive(Debug, Args)]
pub struct ViewArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
    /// A table of the view (schema.table; unqualified means public); repeat for several.
    #[arg(long, value_name = "T", required_unless_present_any = ["name", "list", "remove"])]
    pub table: Vec<String>,
    /// Which rows are in the view, e.g. "plan = 'pro' and balance > 100": comparisons (=, <>, <,
    /// <=, >, >=) typed by the column, IN (…), LIKE '…', IS [NOT] NULL, and, or, not, ( ).
    #[arg(long = "where", value_name = "EXPR", required_unless_present_any = ["name", "list", "remove"])]
    pub predicate: Option<String>,
    /// Only changes whose context has this field value, e.g. user=ann (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub context: Vec<String>,
    /// Of the updates inside the view, only those that changed one of these columns (repeatable).
    #[arg(long, value_name = "COLUMN")]
    pub changed: Vec<String>,
    /// Save the view in the cache under this name and print its rowtrail:// link.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["name", "list", "remove"])]
    pub save: Option<String>,
    /// Show the view saved under this name.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["table", "predicate", "list", "remove"])]
    pub name: Option<String>,
    /// List the saved views with their links.
    #[arg(long, conflicts_with_all = ["table", "predicate", "remove"])]
    pub list: bool,
    /// Remove the view saved under this name.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["table", "predicate"])]
    pub remove: Option<String>,
    /// Print the rows in the view at this moment instead of its timeline.
    #[arg(long, value_name = "MOMENT", help = MOMENT_HELP)]
    pub time: Option<String>,
    /// At most N changes, newest first (0 for all).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
    /// Print JSON lines (as log --json, with "view": "enter" | "leave" | "update").
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    #[command(flatten)]
    pub export: ExportArgs,
}

#[derive(Debug, Args)]
pub struct AtArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
    /// The table (schema.table; unqualified means public).
    #[arg(long, value_name = "T")]
    pub table: String,
    /// One record's key as JSON, e.g. '{"id": 7}'; without it, every row of the table as JSON lines.
    #[arg(long, value_name = "JSON")]
    pub key: Option<String>,
    #[arg(long, value_name = "MOMENT", help = MOMENT_HELP)]
    pub time: String,
    /// With --key: also every related row then (see rowtrail related), one JSON object per row
    /// with its table and path.
    #[arg(long, requires = "key")]
    pub related: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Keep the history from this moment on (e.g. 90d for 90 days ago). A moment inside a
    /// transaction keeps that transaction.
    #[arg(long, value_name = "MOMENT", help = MOMENT_HELP)]
    pub before: String,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub record: RecordArgs,
    /// Also erase the changes of its story: the rows that point at it by foreign keys or links,
    /// as rowtrail related shows them (see it first: what is erased cannot come back).
    #[arg(long)]
    pub related: bool,
    /// With --related: how many foreign keys to follow from the record (1: the rows that point
    /// at it; 2: also the rows that point at those; up to 10).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "related", value_parser = clap::value_parser!(u8).range(1..=10))]
    pub depth: u8,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["change", "tx"])))]
pub struct UndoArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Change ids to undo (repeatable, or several after one --change).
    #[arg(long, value_name = "ID", num_args = 1.., action = clap::ArgAction::Append)]
    pub change: Vec<i64>,
    /// Undo every change of this source transaction.
    #[arg(long, value_name = "XID")]
    pub tx: Option<u32>,
    /// Also undo later changes to the same records, newest first.
    #[arg(long)]
    pub cascade: bool,
    /// Change rows whatever they hold now, instead of stopping when they changed since.
    #[arg(long)]
    pub no_guard: bool,
    /// Write the other columns and leave those the cache's column rules exclude or mask as they
    /// are (without it, a script that would need one of their values stops and names it)
    #[arg(long)]
    pub leave_protected: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub record: RecordArgs,
    #[arg(long, value_name = "MOMENT", help = MOMENT_HELP)]
    pub time: String,
    /// Change the row whatever it holds now, instead of stopping when it changed since.
    #[arg(long)]
    pub no_guard: bool,
    /// Write the other columns and leave those the cache's column rules exclude or mask as they
    /// are (without it, a script that would need one of their values stops and names it)
    #[arg(long)]
    pub leave_protected: bool,
    /// Put back the record with every related row (see rowtrail related): undo every change of
    /// its story after the moment, in an order that keeps foreign keys valid.
    #[arg(long)]
    pub related: bool,
}

/// Parses a `--tables` list.
fn table_list(text: Option<&str>) -> anyhow::Result<Option<Vec<TableName>>> {
    match text {
        None => Ok(None),
        Some(text) => {
            let tables = TableName::parse_list(text)?;
            anyhow::ensure!(
                !tables.is_empty(),
                "--tables is empty: name at least one table, or leave it out for all"
            );
            Ok(Some(tables))
        }
    }
}

fn open(args: OpenArgs) -> anyhow::Result<ExitCode> {
    let OpenArgs {
        mut cache,
        mut link,
    } = args;
    // `rowtrail open LINK`: the one argument is the link.
    if link.is_none()
        && let Some(text) = cache.as_ref().and_then(|path| path.to_str())
        && crate::model::SavedView::is_link(text)
    {
        link = Some(text.to_owned());
        cache = None;
    }
    let view = link
        .as_deref()
        .map(crate::model::SavedView::parse_link)
        .transpose()?;
    if let Some(path) = &cache {
        // Refuse a bad cache before opening a window, with the same message as the other commands.
        let opened = crate::shared::open_cache(path)?;
        if let Some((view, wanted)) = &view {
            let known = opened.link_source()?;
            anyhow::ensure!(
                known == *wanted,
                "the view '{}' is for database {} of the server with system id {}, but {} holds the history of database {} of {}: open it with a cache of that database",
                view.name,
                wanted.database,
                wanted.system_identifier,
                path.display(),
                known.database,
                known.system_identifier
            );
        }
    }
    crate::ui::run(crate::ui::AppOptions {
        cache,
        demo: None,
        clock: crate::ui::Clock::default(),
        view,
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Sets up logging to stderr: warnings by default, more with -v, or as RUST_LOG says.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// True when the error is only that whoever read the output stopped reading (`rowtrail log |
/// head`): what they wanted was printed, so it is no failure.
pub fn output_closed(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Some(command) = cli.command else {
        return open(OpenArgs {
            cache: None,
            link: None,
        });
    };
    match command {
        Command::Open(args) => open(args),
        Command::Demo(args) => demo::demo(args),
        Command::Doctor(args) => capture::doctor(args),
        Command::Capture(args) => capture::capture(args),
        Command::Import(args) => import::import(args),
        Command::Publish(args) => capture::publish(args),
        Command::Teardown(args) => capture::teardown(args),
        Command::Log(args) => log::log(args),
        Command::Show(args) => history::show(args),
        Command::History(args) => history::history(args),
        Command::At(args) => history::at(args),
        Command::Undo(args) => history::undo(args),
        Command::Restore(args) => history::restore(args),
        Command::Related(args) => related::related(args),
        Command::Link(args) => related::link(args),
        Command::View(args) => related::view(args),
        Command::Prune(args) => history::prune(args),
        Command::Forget(args) => history::forget(args),
    }
}
