//! `rowtrail doctor`: checks whether capture can run against a source and says, for each problem,
//! the SQL or configuration change that fixes it.

use std::fmt;

use crate::model::{ColumnRule, Oid, ReplicaIdentity, TableName, quote_ident, suggest_rule};

use super::catalog::{self, PublicationInfo, ServerFacts, SlotInfo, TableInfo};
use super::conninfo::ConnectionSpec;
use super::encoding::Reception;
use super::error::CaptureError;
use super::schema_log::{self, SchemaLogState};
use super::session::SqlSession;
use super::walsender::WalSender;
use super::{tls, validate_slot_name};

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Capture runs, but something is lost or at risk.
    Warn,
    /// Capture cannot run until this is fixed.
    Fail,
}

/// One line of the doctor's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub status: Status,
    /// What was checked (`wal_level`, `public.orders`).
    pub topic: String,
    pub message: String,
    /// The exact SQL or configuration change that fixes a warning or failure.
    pub fix: Option<String>,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        write!(f, "{status}  {}: {}", self.topic, self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, " -- fix: {fix}")?;
        }
        Ok(())
    }
}

/// All checks, in the order they were made, and the tables capture would cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
    pub tables: Vec<TableName>,
    /// The slot checked is in use by this server process (another capture reads it).
    pub slot_busy: Option<i32>,
    /// Rules suggested for columns whose names or types look sensitive (`model::suggest_rule`).
    pub sensitive: Vec<ColumnRule>,
}

impl Report {
    pub fn can_capture(&self) -> bool {
        self.checks.iter().all(|check| check.status != Status::Fail)
    }
}

fn check(
    status: Status,
    topic: impl Into<String>,
    message: impl Into<String>,
    fix: Option<String>,
) -> Check {
    Check {
        status,
        topic: topic.into(),
        message: message.into(),
        fix,
    }
}

/// Runs every check. Errors only when the source cannot be reached at all.
pub async fn run(
    spec: &ConnectionSpec,
    tables: Option<&[TableName]>,
    slot: &str,
    publication: &str,
) -> Result<Report, CaptureError> {
    validate_slot_name(slot)?;
    let tls = tls::client_config(&spec.tls)?;
    let sql = SqlSession::connect(spec, tls.clone()).await?;
    let facts = catalog::server_facts(&sql).await?;
    let mut checks = vec![check(
        Status::Ok,
        "connection",
        format!("connected to {spec} as {}", facts.user),
        None,
    )];
    checks.extend(server_checks(&facts));
    checks.push(schema_log_check(schema_log::state(&sql).await?, &facts));
    if facts.may_replicate() && facts.wal_level == "logical" {
        checks.push(match WalSender::connect(spec, tls, Reception::Converted).await {
            Ok(mut connection) => match connection.identify_system().await {
                Ok(_) => check(Status::Ok, "replication connection", "accepted", None),
                Err(error) => check(Status::Fail, "replication connection", error.to_string(), None),
            },
            Err(error) => {
                let hba = error.to_string().contains("pg_hba.conf");
                check(
                    Status::Fail,
                    "replication connection",
                    error.to_string(),
                    hba.then(|| {
                        format!(
                            "add 'host replication {} <client address>/32 scram-sha-256' to pg_hba.conf, then SELECT pg_reload_conf();",
                            facts.user
                        )
                    }),
                )
            }
        });
    }
    let existing_slot = catalog::slot(&sql, slot).await?;
    checks.extend(slot_checks(&facts, slot, existing_slot.as_ref()));
    let existing_publication = catalog::publication(&sql, publication).await?;
    let (found, missing) = catalog::tables(&sql, tables).await?;
    checks.extend(publication_checks(
        &facts,
        publication,
        existing_publication.as_ref(),
        tables.is_none(),
        &found,
    ));
    for name in &missing {
        checks.push(check(
            Status::Fail,
            name.to_string(),
            format!("no such table in database {}", facts.database),
            Some(
                "check the name (schema.table; double quotes for capitals), or create the table"
                    .into(),
            ),
        ));
    }
    let scope: Vec<&TableInfo> = match (&existing_publication, tables) {
        (Some(existing), None) => existing.tables.iter().collect(),
        _ => found.iter().collect(),
    };
    if scope.is_empty() && missing.is_empty() {
        checks.push(check(
            Status::Fail,
            "tables",
            format!("database {} has no tables to capture", facts.database),
            Some("create tables first, or name them with --tables".into()),
        ));
    }
    let tables = scope.iter().map(|table| table.name.clone()).collect();
    let oids: Vec<Oid> = scope.iter().map(|table| table.oid).collect();
    let mut sensitive = Vec::new();
    for (oid, column, type_name, is_key) in catalog::columns(&sql, &oids).await? {
        let (Some(table), Some(protection)) = (
            scope.iter().find(|table| table.oid == oid),
            suggest_rule(&column, &type_name, is_key),
        ) else {
            continue;
        };
        sensitive.push(ColumnRule {
            pattern: format!("{}.{}.{column}", table.name.schema, table.name.name),
            protection,
        });
    }
    checks.extend(scope.into_iter().map(|table| table_check(table, &facts)));
    Ok(Report {
        checks,
        tables,
        slot_busy: existing_slot.as_ref().and_then(|slot| slot.active_pid),
        sensitive,
    })
}

fn server_checks(facts: &ServerFacts) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(match facts.version_num {
        140_000.. => check(Status::Ok, "server version", format!("PostgreSQL {}", facts.version), None),
        100_000..140_000 => check(
            Status::Warn,
            "server version",
            format!(
                "PostgreSQL {}: capture works, but application context messages need PostgreSQL 14 or newer",
                facts.version
            ),
            Some("upgrade to PostgreSQL 14 or newer to record who made each change".into()),
        ),
        _ => check(
            Status::Fail,
            "server version",
            format!("PostgreSQL {} has no logical replication", facts.version),
            Some("upgrade to PostgreSQL 10 or newer (14+ recommended)".into()),
        ),
    });
    checks.push(match facts.wal_level.as_str() {
        "logical" => check(Status::Ok, "wal_level", "logical", None),
        other => check(
            Status::Fail,
            "wal_level",
            format!("is '{other}'; logical capture needs 'logical'"),
            Some(
                "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL (Amazon RDS: set rds.logical_replication = 1 in the parameter group and reboot)"
                    .into(),
            ),
        ),
    });
    let user = quote_ident(&facts.user);
    checks.push(if facts.is_superuser {
        check(Status::Ok, "replication privilege", format!("{} is a superuser", facts.user), None)
    } else if facts.has_replication {
        check(Status::Ok, "replication privilege", format!("{} has REPLICATION", facts.user), None)
    } else if facts.via_rds_replication {
        check(Status::Ok, "replication privilege", format!("{} is a member of rds_replication", facts.user), None)
    } else {
        check(
            Status::Fail,
            "replication privilege",
            format!("{} may not use replication", facts.user),
            Some(format!(
                "ALTER ROLE {user} REPLICATION; (as a superuser; Amazon RDS/Aurora: GRANT rds_replication TO {user};)"
            )),
        )
    });
    let free_senders = facts.max_wal_senders - facts.used_wal_senders;
    checks.push(match free_senders {
        1.. => check(
            Status::Ok,
            "WAL senders",
            format!("{free_senders} of {} free", facts.max_wal_senders),
            None,
        ),
        _ => check(
            Status::Fail,
            "WAL senders",
            format!("all {} WAL senders are in use", facts.max_wal_senders),
            Some(format!(
                "ALTER SYSTEM SET max_wal_senders = {}; then restart PostgreSQL",
                facts.max_wal_senders + 2
            )),
        ),
    });
    checks
}

/// Whether schema changes will be recorded as they happen (see `capture::schema_log`).
fn schema_log_check(state: SchemaLogState, facts: &ServerFacts) -> Check {
    const TOPIC: &str = "schema changes";
    match (state, facts.is_superuser) {
        (SchemaLogState::Current, _) => check(
            Status::Ok,
            TOPIC,
            "recorded as they happen (rowtrail's schema log: event triggers rowtrail_ddl and rowtrail_drop)",
            None,
        ),
        (_, true) => check(
            Status::Ok,
            TOPIC,
            "capture installs rowtrail's schema log (event triggers that write each schema change into the WAL), so keys, schema changes and dropped tables are known as they were at each change",
            None,
        ),
        (state, false) => check(
            Status::Warn,
            TOPIC,
            format!(
                "not recorded as they happen (rowtrail's schema log is {}, and installing it takes a superuser): keys of REPLICA IDENTITY FULL tables are read from the catalog when capture reads their changes and marked 'read later', so a key added or dropped while capture lags is applied to earlier changes; a dropped table is noticed only when its name comes back",
                match state {
                    SchemaLogState::Missing => "not installed",
                    _ => "outdated or disabled",
                }
            ),
            Some(
                "run rowtrail capture once as a superuser (it installs the event triggers rowtrail_ddl and rowtrail_drop and the schema rowtrail)"
                    .into(),
            ),
        ),
    }
}

fn slot_checks(facts: &ServerFacts, name: &str, slot: Option<&SlotInfo>) -> Vec<Check> {
    let topic = format!("slot {name}");
    let Some(slot) = slot else {
        let free = facts.max_replication_slots - facts.used_replication_slots;
        return vec![match free {
            1.. => check(
                Status::Ok,
                topic,
                format!(
                    "does not exist yet; capture will create it ({free} of {} replication slots free)",
                    facts.max_replication_slots
                ),
                None,
            ),
            _ => check(
                Status::Fail,
                topic,
                format!(
                    "all {} replication slots are in use",
                    facts.max_replication_slots
                ),
                Some(format!(
                    "drop an unused slot with SELECT pg_drop_replication_slot('name'); or ALTER SYSTEM SET max_replication_slots = {}; then restart PostgreSQL",
                    facts.max_replication_slots + 2
                )),
            ),
        }];
    };
    if slot.slot_type != "logical" || slot.plugin.as_deref() != Some("pgoutput") {
        return vec![check(
            Status::Fail,
            topic,
            format!(
                "exists with output plugin {}, not pgoutput",
                slot.plugin.as_deref().unwrap_or("none")
            ),
            Some(format!(
                "choose another --slot, or drop it if unused: SELECT pg_drop_replication_slot('{name}');"
            )),
        )];
    }
    if slot
        .database
        .as_deref()
        .is_some_and(|database| database != facts.database)
    {
        return vec![check(
            Status::Fail,
            topic,
            format!(
                "belongs to database {}",
                slot.database.as_deref().unwrap_or_default()
            ),
            Some("choose another --slot".into()),
        )];
    }
    if slot.invalidated {
        return vec![check(
            Status::Warn,
            topic,
            "was invalidated by the server (it fell behind max_slot_wal_keep_size): the changes since the cache's last position are lost to it",
            Some(format!(
                "go on after a gap with a new baseline: rowtrail capture --slot {name} --new-baseline (the app offers it when capture stops), or remove the slot: rowtrail teardown --slot {name}"
            )),
        )];
    }
    let retained = slot.retained_wal_bytes.unwrap_or(0);
    let state = match slot.active_pid {
        Some(pid) => format!("in use by server process {pid}"),
        None => "not in use".to_owned(),
    };
    let message = format!("exists ({state}), retains {} of WAL", human_bytes(retained));
    vec![match (retained > 1 << 30, slot.active_pid) {
        (_, Some(pid)) => check(
            Status::Warn,
            topic,
            format!(
                "{message}; another capture is reading it, and a capture started now waits for it to stop"
            ),
            Some(format!(
                "stop the capture that uses it (server process {pid}) first, or choose another slot"
            )),
        ),
        (true, None) => check(
            Status::Warn,
            topic,
            format!("{message}; an idle slot keeps WAL forever"),
            Some(format!(
                "resume capture, or remove the slot: rowtrail teardown --slot {name}"
            )),
        ),
        _ => check(Status::Ok, topic, message, None),
    }]
}

fn publication_checks(
    facts: &ServerFacts,
    name: &str,
    publication: Option<&PublicationInfo>,
    all_tables: bool,
    requested: &[TableInfo],
) -> Vec<Check> {
    let topic = format!("publication {name}");
    let quoted = quote_ident(name);
    if let Some(publication) = publication {
        let missing: Vec<String> = requested
            .iter()
            .filter(|table| !all_tables && !table.partitioned)
            .filter(|table| !publication.tables.iter().any(|t| t.oid == table.oid))
            .map(|table| table.name.quoted())
            .collect();
        let scope = match publication.all_tables {
            true => "all tables".to_owned(),
            false => format!("{} tables", publication.tables.len()),
        };
        return vec![match missing.is_empty() {
            true => check(Status::Ok, topic, format!("exists ({scope})"), None),
            false => check(
                Status::Fail,
                topic,
                format!("exists but does not publish {}", missing.join(", ")),
                Some(format!(
                    "ALTER PUBLICATION {quoted} ADD TABLE {};",
                    missing.join(", ")
                )),
            ),
        }];
    }
    if !facts.is_superuser && !facts.can_create_in_database {
        return vec![check(
            Status::Fail,
            topic,
            format!("does not exist and {} may not create it", facts.user),
            Some(format!(
                "GRANT CREATE ON DATABASE {} TO {};",
                quote_ident(&facts.database),
                quote_ident(&facts.user)
            )),
        )];
    }
    let not_owned: Vec<String> = requested
        .iter()
        .filter(|table| !table.is_owner && !facts.is_superuser)
        .map(|table| table.name.quoted())
        .collect();
    if !not_owned.is_empty() {
        return vec![check(
            Status::Fail,
            topic,
            format!(
                "does not exist, and {} must own a table to publish it: {}",
                facts.user,
                not_owned.join(", ")
            ),
            Some(format!(
                "as a superuser: CREATE PUBLICATION {quoted} FOR TABLE {};",
                not_owned.join(", ")
            )),
        )];
    }
    vec![match all_tables && !facts.is_superuser {
        true => check(
            Status::Warn,
            topic,
            format!(
                "does not exist; {} is not a superuser, so capture will publish the tables that exist now, and tables created later need adding",
                facts.user
            ),
            Some(format!(
                "after creating a table: ALTER PUBLICATION {quoted} ADD TABLE name;"
            )),
        ),
        false => check(
            Status::Ok,
            topic,
            "does not exist yet; capture will create it",
            None,
        ),
    }]
}

fn table_check(table: &TableInfo, facts: &ServerFacts) -> Check {
    let topic = table.name.to_string();
    let quoted = table.name.quoted();
    if !table.can_select {
        return check(
            Status::Fail,
            topic,
            format!(
                "{} may not read it, so the baseline cannot be taken",
                facts.user
            ),
            Some(format!(
                "GRANT SELECT ON {quoted} TO {};",
                quote_ident(&facts.user)
            )),
        );
    }
    if !table.permanent {
        return check(
            Status::Fail,
            topic,
            "unlogged or temporary: PostgreSQL does not publish such tables",
            Some(format!(
                "ALTER TABLE {quoted} SET LOGGED; or leave it out of --tables"
            )),
        );
    }
    let key = match table.primary_key.is_empty() {
        true => "no primary key".to_owned(),
        false => format!("primary key ({})", table.primary_key.join(", ")),
    };
    match (table.replica_identity, table.primary_key.is_empty()) {
        (ReplicaIdentity::Full, false) => check(
            Status::Ok,
            topic,
            format!("{key}, REPLICA IDENTITY FULL: complete before-images"),
            None,
        ),
        (ReplicaIdentity::Full, true) => check(
            Status::Warn,
            topic,
            "no primary key: records are told apart by all their values, and restores match one row with equal values",
            Some(format!(
                "ALTER TABLE {quoted} ADD PRIMARY KEY (column, ...);"
            )),
        ),
        (ReplicaIdentity::Index, _) => check(
            Status::Warn,
            topic,
            format!(
                "{key}, REPLICA IDENTITY USING INDEX: old values outside the index are not sent; rowtrail fills them from its own history, values it never saw stay unavailable"
            ),
            Some(format!("ALTER TABLE {quoted} REPLICA IDENTITY FULL;")),
        ),
        (ReplicaIdentity::Default, false) => check(
            Status::Warn,
            topic,
            format!(
                "{key}, REPLICA IDENTITY DEFAULT: the server sends no old values for updates and only the key for deletes; rowtrail fills before-images from its own history, but values it never saw (large unchanged TOASTed values) stay unavailable"
            ),
            Some(format!("ALTER TABLE {quoted} REPLICA IDENTITY FULL;")),
        ),
        (ReplicaIdentity::Default | ReplicaIdentity::Nothing, _) => check(
            Status::Fail,
            topic,
            format!(
                "{key} and REPLICA IDENTITY {}: once published, UPDATE and DELETE on it fail",
                table.replica_identity.as_sql()
            ),
            Some(format!("ALTER TABLE {quoted} REPLICA IDENTITY FULL;")),
        ),
    }
}

/// `1.2 GB`-style sizes.
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 kB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GB");
    }

    #[test]
    fn lines_carry_the_fix() {
        let line = check(
            Status::Fail,
            "wal_level",
            "is 'replica'",
            Some("ALTER SYSTEM ...".into()),
        );
        assert_eq!(
            line.to_string(),
            "FAIL  wal_level: is 'replica' -- fix: ALTER SYSTEM ..."
        );
    }
}
