//! The benchmark's own PostgreSQL, and the programs it runs against it.

use std::path::{Path, PathBuf};
use std::process::Command;

use rowtrail::local_pg::{LocalPgOptions, LocalPostgres};

/// How the server is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fsync` and `full_page_writes` off: for generating workloads quickly.
    Fast,
    /// PostgreSQL's defaults (`fsync`, `synchronous_commit`, `full_page_writes` on), as in
    /// production: for the source-overhead part.
    Production,
}

pub struct Server {
    pub pg: LocalPostgres,
}

impl Server {
    pub fn start(durability: Durability) -> Self {
        let mut settings = vec![
            ("max_wal_size".to_owned(), "8GB".to_owned()),
            ("checkpoint_timeout".to_owned(), "30min".to_owned()),
            ("shared_buffers".to_owned(), "512MB".to_owned()),
        ];
        if durability == Durability::Production {
            settings.extend([
                ("fsync".to_owned(), "on".to_owned()),
                ("full_page_writes".to_owned(), "on".to_owned()),
                ("synchronous_commit".to_owned(), "on".to_owned()),
            ]);
        }
        let pg = LocalPostgres::start(&LocalPgOptions {
            settings,
            ..LocalPgOptions::default()
        })
        .expect("start the benchmark's PostgreSQL");
        Self { pg }
    }

    /// Runs SQL (one or more statements) and returns psql's unaligned output.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        self.pg
            .psql(db, sql)
            .unwrap_or_else(|error| panic!("SQL failed in {db}: {error}\n{sql}"))
    }

    pub fn value(&self, db: &str, sql: &str) -> String {
        self.sql(db, sql).trim().to_owned()
    }

    pub fn create_database(&self, db: &str) {
        self.sql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
        self.pg.create_database(db).expect("create a database");
    }

    pub fn conninfo(&self, db: &str) -> String {
        self.pg.socket_conninfo(db)
    }

    pub fn program(&self, name: &str) -> Command {
        let mut command = Command::new(self.pg.bin_dir().join(name));
        clean_env(&mut command);
        command
    }
}

/// The PostgreSQL the benchmark runs, as `postgres --version` says it.
pub fn postgres_version() -> String {
    LocalPostgres::find_bin_dir()
        .ok()
        .and_then(|bin| {
            Command::new(bin.join("postgres"))
                .arg("--version")
                .output()
                .ok()
        })
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| "PostgreSQL (version unknown)".to_owned())
}

/// The `rowtrail` binary beside this benchmark's binary (both come from `cargo build --release`).
pub fn rowtrail_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let bin = exe.with_file_name("rowtrail");
    assert!(
        bin.is_file(),
        "{} is missing: build it with cargo build --release --bins",
        bin.display()
    );
    bin
}

pub fn rowtrail(args: &[&str]) -> Command {
    let mut command = Command::new(rowtrail_bin());
    command.args(args);
    clean_env(&mut command);
    command
}

fn clean_env(command: &mut Command) {
    for (name, _) in std::env::vars() {
        if name.starts_with("PG") {
            command.env_remove(name);
        }
    }
}

/// The size of a file, 0 if it does not exist.
pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |metadata| metadata.len())
}
