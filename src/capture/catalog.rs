//! Questions rowtrail asks the source's catalog: server settings and privileges, tables and their
//! keys, publications, slots, and the details a relation message leaves out.

use crate::decode::CatalogDetails;
use crate::decode::pgoutput::{RelationColumn, RelationMessage};
use crate::model::{ForeignKey, IdentityKind, Lsn, Oid, ReplicaIdentity, TableName};

use super::error::CaptureError;
use super::session::SqlSession;

/// Settings and privileges that decide whether capture can run.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    pub version_num: i32,
    pub version: String,
    pub wal_level: String,
    pub max_replication_slots: i32,
    pub used_replication_slots: i32,
    pub max_wal_senders: i32,
    pub used_wal_senders: i32,
    pub user: String,
    pub is_superuser: bool,
    pub has_replication: bool,
    /// Member of Amazon RDS's `rds_replication` role.
    pub via_rds_replication: bool,
    pub database: String,
    pub can_create_in_database: bool,
    /// `server_encoding`: the encoding the database stores text in.
    pub encoding: String,
}

impl ServerFacts {
    pub fn may_replicate(&self) -> bool {
        self.is_superuser || self.has_replication || self.via_rds_replication
    }
}

pub async fn server_facts(session: &SqlSession) -> Result<ServerFacts, CaptureError> {
    let row = session
        .query_one(
            "reading server settings",
            "SELECT current_setting('server_version_num')::int4,
                    current_setting('server_version'),
                    current_setting('wal_level'),
                    current_setting('max_replication_slots')::int4,
                    (SELECT count(*) FROM pg_replication_slots)::int4,
                    current_setting('max_wal_senders')::int4,
                    (SELECT count(*) FROM pg_stat_replication)::int4,
                    current_user::text, r.rolsuper, r.rolreplication,
                    coalesce((SELECT pg_has_role(current_user, g.oid, 'MEMBER')
                              FROM pg_roles g WHERE g.rolname = 'rds_replication'), false),
                    current_database()::text,
                    has_database_privilege(current_database(), 'CREATE'),
                    current_setting('server_encoding')
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await?;
    Ok(ServerFacts {
        version_num: row.get(0),
        version: row.get(1),
        wal_level: row.get(2),
        max_replication_slots: row.get(3),
        used_replication_slots: row.get(4),
        max_wal_senders: row.get(5),
        used_wal_senders: row.get(6),
        user: row.get(7),
        is_superuser: row.get(8),
        has_replication: row.get(9),
        via_rds_replication: row.get(10),
        database: row.get(11),
        can_create_in_database: row.get(12),
        encoding: row.get(13),
    })
}

/// A table in capture scope.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    pub oid: Oid,
    pub name: TableName,
    pub replica_identity: ReplicaIdentity,
    pub primary_key: Vec<String>,
    pub partitioned: bool,
    /// The partitioned table this one is a partition of.
    pub parent: Option<TableName>,
    pub can_select: bool,
    pub is_owner: bool,
    pub estimated_rows: f64,
    /// Neither `UNLOGGED` nor temporary: only such tables can be published.
    pub permanent: bool,
}

impl TableInfo {
    /// Once published, UPDATE and DELETE on such a table fail on the source: it has no replica
    /// identity to send.
    pub fn blocks_writes_when_published(&self) -> bool {
        match self.replica_identity {
            ReplicaIdentity::Full | ReplicaIdentity::Index => false,
            ReplicaIdentity::Default => self.primary_key.is_empty(),
            ReplicaIdentity::Nothing => true,
        }
    }
}

const TABLE_COLUMNS: &str = "c.oid, n.nspname::text, c.relname::text, c.relreplident::text,
    coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
              FROM pg_index i
              CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE i.indrelid = c.oid AND i.indisprimary AND k.ord <= coalesce((to_jsonb(i) ->> 'indnkeyatts')::int, i.indnatts)), '{}'),
    c.relkind = 'p', has_table_privilege(c.oid, 'SELECT'), pg_has_role(c.relowner, 'USAGE'),
    c.reltuples::float8,
    (SELECT pn.nspname::text FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
       JOIN pg_namespace pn ON pn.oid = p.relnamespace WHERE c.relispartition AND i.inhrelid = c.oid),
    (SELECT p.relname::text FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
       WHERE c.relispartition AND i.inhrelid = c.oid),
    c.relpersistence = 'p'";

/// The tables `FOR ALL TABLES` publishes (PostgreSQL's `is_publishable_class`): ordinary and
/// partitioned tables that are permanent (not unlogged or temporary) and not part of the system,
/// which were all created before the first user object id (16384). `INCLUDE` columns of a key
/// index are not part of the key: `indnkeyatts` (PostgreSQL 11+; `indnatts` before) counts the key
/// columns.
const PUBLISHABLE: &str = "c.relkind IN ('r', 'p') AND c.relpersistence = 'p' AND c.oid >= 16384";

/// Reads `relreplident` as text (`d`, `n`, `f`, `i`).
fn replica_identity(code: &str) -> ReplicaIdentity {
    code.bytes()
        .next()
        .and_then(ReplicaIdentity::from_code)
        .unwrap_or(ReplicaIdentity::Default)
}

fn table_info(row: &tokio_postgres::Row) -> TableInfo {
    TableInfo {
        oid: row.get(0),
        name: TableName::new(row.get::<_, String>(1), row.get::<_, String>(2)),
        replica_identity: replica_identity(row.get(3)),
        primary_key: row.get(4),
        partitioned: row.get(5),
        can_select: row.get(6),
        is_owner: row.get(7),
        estimated_rows: row.get(8),
        parent: match (
            row.get::<_, Option<String>>(9),
            row.get::<_, Option<String>>(10),
        ) {
            (Some(schema), Some(name)) => Some(TableName::new(schema, name)),
            _ => None,
        },
        permanent: row.get(11),
    }
}

/// The named tables, or every user table (not partitions, whose parent stands for them) when
/// `names` is `None`. Returns the tables found and the names that were not.
pub async fn tables(
    session: &SqlSession,
    names: Option<&[TableName]>,
) -> Result<(Vec<TableInfo>, Vec<TableName>), CaptureError> {
    let rows = match names {
        Some(names) => {
            let schemas: Vec<&str> = names.iter().map(|name| name.schema.as_str()).collect();
            let tables: Vec<&str> = names.iter().map(|name| name.name.as_str()).collect();
            session
                .query(
                    "looking up tables",
                    &format!(
                        "SELECT {TABLE_COLUMNS} FROM pg_class c
                         JOIN pg_namespace n ON n.oid = c.relnamespace
                         JOIN unnest($1::text[], $2::text[]) AS wanted(s, t)
                           ON wanted.s = n.nspname AND wanted.t = c.relname
                         WHERE c.relkind IN ('r', 'p') ORDER BY 2, 3"
                    ),
                    &[&schemas, &tables],
                )
                .await?
        }
        None => {
            session
                .query(
                    "listing tables",
                    &format!(
                        "SELECT {TABLE_COLUMNS} FROM pg_class c
                         JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE {PUBLISHABLE} AND NOT c.relispartition
                         ORDER BY 2, 3"
                    ),
                    &[],
                )
                .await?
        }
    };
    let found: Vec<TableInfo> = rows.iter().map(table_info).collect();
    let missing = names
        .unwrap_or_default()
        .iter()
        .filter(|name| !found.iter().any(|table| &table.name == *name))
        .cloned()
        .collect();
    Ok((found, missing))
}

/// A publication as the catalog describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicationInfo {
    pub all_tables: bool,
    /// Whether inserts, updates, deletes and truncates are published.
    pub publishes: [bool; 4],
    /// The tables whose changes it sends (leaf partitions, not their parents).
    pub tables: Vec<TableInfo>,
}

pub async fn publication(
    session: &SqlSession,
    name: &str,
) -> Result<Option<PublicationInfo>, CaptureError> {
    let Some(row) = session
        .query_opt(
            "reading the publication",
            "SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate
             FROM pg_publication WHERE pubname = $1",
            &[&name],
        )
        .await?
    else {
        return Ok(None);
    };
    let tables = session
        .query(
            "listing published tables",
            &format!(
                "SELECT {TABLE_COLUMNS} FROM pg_publication_tables pt
                 JOIN pg_namespace n ON n.nspname = pt.schemaname
                 JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
                 WHERE pt.pubname = $1 ORDER BY 2, 3"
            ),
            &[&name],
        )
        .await?;
    Ok(Some(PublicationInfo {
        all_tables: row.get(0),
        publishes: [row.get(1), row.get(2), row.get(3), row.get(4)],
        tables: tables.iter().map(table_info).collect(),
    }))
}

/// Where `capture --once` stops: the server's current WAL insert position, which lies after
/// every commit that is visible, including those of `synchronous_commit = off` that are not yet
/// flushed (`IDENTIFY_SYSTEM` reports only the flush position). A transactional marker message
/// committed with a local flush then pushes the flushed WAL past it, so the walsender can send
/// everything up to it without waiting for the WAL writer; if the marker cannot be written (a
/// read-only session), the WAL writer flushes asynchronous commits by itself.
pub async fn once_target(session: &SqlSession) -> Result<Lsn, CaptureError> {
    let row = session
        .query_one(
            "reading the server's WAL position",
            "SELECT pg_current_wal_insert_lsn()::text,
                    current_setting('wal_block_size')::int8,
                    pg_size_bytes(current_setting('wal_segment_size'))",
            &[],
        )
        .await?;
    let insert: Lsn = row
        .get::<_, String>(0)
        .parse()
        .map_err(|_| CaptureError::Protocol {
            what: "pg_current_wal_insert_lsn() returned something that is not a WAL position"
                .into(),
        })?;
    let marker = session
        .execute(
            "marking the end of capture --once",
            "BEGIN; SET LOCAL synchronous_commit = local;
             SELECT pg_logical_emit_message(true, 'rowtrail.once', ''); COMMIT;",
        )
        .await;
    if let Err(error) = marker {
        tracing::debug!("no --once marker: {error}");
        // The session may be left in an aborted transaction.
        let _ = session.execute("ending the marker", "ROLLBACK").await;
    }
    Ok(page_start_if_empty(insert, row.get(1), row.get(2)))
}

/// The insert position right after a WAL page header means nothing is on that page yet; the
/// flushed WAL may end at the page boundary before it, so that is the position to wait for.
fn page_start_if_empty(position: Lsn, block_size: i64, segment_size: i64) -> Lsn {
    const SHORT_HEADER: u64 = 24;
    const LONG_HEADER: u64 = 40;
    let (block, segment) = (block_size.max(1) as u64, segment_size.max(1) as u64);
    let header = match position.0 % segment < block {
        true => LONG_HEADER,
        false => SHORT_HEADER,
    };
    match position.0 % block == header {
        true => Lsn(position.0 - header),
        false => position,
    }
}

/// A replication slot as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    pub plugin: Option<String>,
    pub slot_type: String,
    pub database: Option<String>,
    pub active_pid: Option<i32>,
    pub confirmed_flush: Option<Lsn>,
    /// WAL the server keeps for this slot: from its restart position to the current position.
    pub retained_wal_bytes: Option<i64>,
    /// The server gave up the WAL this slot still needed (`wal_status = 'lost'`, PostgreSQL 13+,
    /// when the slot fell behind `max_slot_wal_keep_size`): it can no longer stream.
    pub invalidated: bool,
}

pub async fn slot(session: &SqlSession, name: &str) -> Result<Option<SlotInfo>, CaptureError> {
    let row = session
        .query_opt(
            "reading the replication slot",
            "SELECT plugin::text, slot_type, database::text, active_pid, confirmed_flush_lsn::text,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8,
                    coalesce(to_jsonb(s) ->> 'wal_status' = 'lost', false)
             FROM pg_replication_slots s WHERE slot_name = $1",
            &[&name],
        )
        .await?;
    Ok(row.map(|row| SlotInfo {
        plugin: row.get(0),
        slot_type: row.get(1),
        database: row.get(2),
        active_pid: row.get(3),
        confirmed_flush: row
            .get::<_, Option<String>>(4)
            .and_then(|text| text.parse().ok()),
        retained_wal_bytes: row.get(5),
        invalidated: row.get(6),
    }))
}

/// The columns of these tables as the column rules see them: table oid, name, type, and whether
/// the column is part of the primary key.
pub async fn columns(
    session: &SqlSession,
    oids: &[Oid],
) -> Result<Vec<(Oid, String, String, bool)>, CaptureError> {
    let oids: Vec<i64> = oids.iter().map(|&oid| i64::from(oid)).collect();
    let rows = session
        .query(
            "reading the tables' columns",
            "SELECT a.attrelid::int8, a.attname::text, format_type(a.atttypid, a.atttypmod),
                    coalesce(a.attnum = ANY (i.indkey), false)
             FROM pg_attribute a
             LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
             WHERE a.attrelid = ANY ($1::int8[]::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                row.get::<_, i64>(0) as Oid,
                row.get(1),
                row.get(2),
                row.get(3),
            )
        })
        .collect())
}

/// Everything a relation message leaves out, looked up by the table oid. `read_later` says the
/// session reads the catalog as it is now, later than the change (not the baseline's snapshot).
/// Also says whether the catalog still has the table.
pub async fn relation_details(
    session: &SqlSession,
    message: &RelationMessage,
    read_later: bool,
) -> Result<(CatalogDetails, bool), CaptureError> {
    let exists: bool = session
        .query_one(
            "looking up a table",
            "SELECT EXISTS (SELECT 1 FROM pg_class WHERE oid = $1)",
            &[&message.oid],
        )
        .await?
        .get(0);
    let type_oids: Vec<Oid> = message
        .columns
        .iter()
        .map(|column| column.type_oid)
        .collect();
    let modifiers: Vec<i32> = message
        .columns
        .iter()
        .map(|column| column.type_modifier)
        .collect();
    let types = session
        .query(
            "reading column types",
            "WITH RECURSIVE base(start, oid, parent) AS (
                 SELECT t.oid, t.oid, t.typbasetype FROM pg_type t WHERE t.oid = ANY($1::oid[])
               UNION ALL
                 SELECT base.start, t.oid, t.typbasetype FROM base JOIN pg_type t ON t.oid = base.parent
             )
             SELECT format_type(u.t, u.m), coalesce((SELECT b.oid FROM base b
                                                      WHERE b.start = u.t AND b.parent = 0), u.t)
             FROM unnest($1::oid[], $2::int4[]) WITH ORDINALITY AS u(t, m, ord) ORDER BY u.ord",
            &[&type_oids, &modifiers],
        )
        .await?;
    let primary_key: Vec<String> = session
        .query_one(
            "reading the primary key",
            "SELECT coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                     FROM pg_index i
                     CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                     WHERE i.indrelid = $1 AND i.indisprimary AND k.ord <= coalesce((to_jsonb(i) ->> 'indnkeyatts')::int, i.indnatts)), '{}')",
            &[&message.oid],
        )
        .await?
        .get(0);
    let identity_columns = session
        .query(
            "reading identity columns",
            "SELECT attname::text, attidentity::text FROM pg_attribute
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attidentity <> ''",
            &[&message.oid],
        )
        .await?
        .iter()
        .map(|row| {
            let kind = match row.get::<_, String>(1).as_str() {
                "a" => IdentityKind::Always,
                _ => IdentityKind::ByDefault,
            };
            (row.get::<_, String>(0), kind)
        })
        .collect();
    let foreign_keys = session
        .query(
            "reading foreign keys",
            "SELECT con.conname::text,
                    array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(n, ord)
                          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
                          ORDER BY k.ord),
                    fn.nspname::text, fc.relname::text,
                    array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k(n, ord)
                          JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
                          ORDER BY k.ord)
             FROM pg_constraint con
             JOIN pg_class fc ON fc.oid = con.confrelid
             JOIN pg_namespace fn ON fn.oid = fc.relnamespace
             WHERE con.conrelid = $1 AND con.contype = 'f' ORDER BY con.conname",
            &[&message.oid],
        )
        .await?
        .iter()
        .map(|row| ForeignKey {
            name: row.get(0),
            columns: row.get(1),
            referenced_table: TableName::new(row.get::<_, String>(2), row.get::<_, String>(3)),
            referenced_columns: row.get(4),
        })
        .collect();
    let attnums: Vec<(String, i16)> = session
        .query(
            "reading column numbers",
            "SELECT attname::text, attnum FROM pg_attribute
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped",
            &[&message.oid],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let details = CatalogDetails {
        type_names: types.iter().map(|row| row.get(0)).collect(),
        base_type_oids: types.iter().map(|row| row.get(1)).collect(),
        primary_key,
        identity_columns,
        foreign_keys,
        attnums: message
            .columns
            .iter()
            .map(|column| {
                attnums
                    .iter()
                    .find(|(name, _)| *name == column.name)
                    .map(|(_, attnum)| *attnum)
            })
            .collect(),
        key_read_later: read_later,
    };
    Ok((details, exists))
}

/// Describes a table the way a pgoutput relation message would, from the catalog (as of the
/// session's snapshot): used for the baseline, before the stream has described anything.
pub async fn relation_message(
    session: &SqlSession,
    oid: Oid,
    server_version_num: i32,
) -> Result<RelationMessage, CaptureError> {
    let head = session
        .query_one(
            "describing a table",
            "SELECT n.nspname::text, c.relname::text, c.relreplident::text
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
            &[&oid],
        )
        .await?;
    let replica_identity = replica_identity(head.get(2));
    // pgoutput leaves out generated columns (a column kind since PostgreSQL 12).
    let not_generated = match server_version_num >= 120_000 {
        true => "AND a.attgenerated = ''",
        false => "",
    };
    let columns = session
        .query(
            "describing columns",
            &format!(
                "SELECT a.attname::text, a.atttypid, a.atttypmod,
                        CASE c.relreplident
                          WHEN 'f' THEN true
                          WHEN 'n' THEN false
                          ELSE coalesce(a.attnum = ANY((ri.indkey::int2[])[0:ri.key_atts - 1]), false)
                        END
                 FROM pg_class c
                 JOIN pg_attribute a ON a.attrelid = c.oid
                 LEFT JOIN LATERAL (
                     SELECT i.indkey, coalesce((to_jsonb(i) ->> 'indnkeyatts')::int, i.indnatts) AS key_atts FROM pg_index i
                     WHERE i.indrelid = c.oid
                       AND CASE c.relreplident WHEN 'i' THEN i.indisreplident
                                               WHEN 'd' THEN i.indisprimary
                                               ELSE false END
                     LIMIT 1) ri ON true
                 WHERE c.oid = $1 AND a.attnum > 0 AND NOT a.attisdropped {not_generated}
                 ORDER BY a.attnum"
            ),
            &[&oid],
        )
        .await?;
    Ok(RelationMessage {
        oid,
        namespace: head.get(0),
        name: head.get(1),
        replica_identity,
        columns: columns
            .iter()
            .map(|row| RelationColumn {
                name: row.get(0),
                type_oid: row.get(1),
                type_modifier: row.get(2),
                is_key: row.get(3),
            })
            .collect(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn once_target_steps_back_over_an_empty_page_header() {
        let (block, segment) = (8192, 16 * 1024 * 1024);
        let cases = [
            (0x0100_2018, 0x0100_2000), // right after a short header
            (0x0100_0028, 0x0100_0000), // right after the long header of a segment
            (0x0100_2019, 0x0100_2019), // inside a page
            (0x0100_2028, 0x0100_2028), // 40 bytes into a page that is not a segment's first
            (0x0100_0018, 0x0100_0018), // 24 bytes into a segment's first page
        ];
        for (position, expected) in cases {
            assert_eq!(
                page_start_if_empty(Lsn(position), block, segment),
                Lsn(expected),
                "{position:#x}"
            );
        }
    }
}
