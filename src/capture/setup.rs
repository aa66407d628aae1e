//! Getting ready to stream: the publication, the slot, and the baseline snapshot taken at the
//! slot's consistent point.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::decode::copy_text;
use crate::decode::{build_schema, value_form};
use crate::model::{Lsn, RelationSchema, Value, quote_ident};
use crate::store::TxMeta;

use super::catalog::{self, PublicationInfo, ServerFacts, TableInfo};
use super::encoding::{self, ServerEncoding};
use super::error::CaptureError;
use super::session::SqlSession;
use super::sink::{WriteCommand, WriterHandle};
use super::walsender::CreatedSlot;
use super::{CaptureEvent, CaptureOptions, Observer};

/// Makes sure the publication exists and covers the requested tables; returns what it publishes.
pub(crate) async fn ensure_publication(
    sql: &SqlSession,
    options: &CaptureOptions,
    facts: &ServerFacts,
    observer: &Observer,
) -> Result<PublicationInfo, CaptureError> {
    let name = &options.publication;
    if let Some(existing) = catalog::publication(sql, name).await? {
        if let Some(requested) = &options.tables {
            let (found, missing) = catalog::tables(sql, Some(requested)).await?;
            if !missing.is_empty() {
                return Err(unknown_tables(&missing, &facts.database));
            }
            let not_published: Vec<String> = found
                .iter()
                .filter(|table| {
                    !table.partitioned && !existing.tables.iter().any(|t| t.oid == table.oid)
                })
                .map(|table| table.name.quoted())
                .collect();
            if !not_published.is_empty() {
                return Err(CaptureError::NotReady(format!(
                    "publication '{name}' exists but does not publish {}: run ALTER PUBLICATION {} ADD TABLE {}; or choose another --publication",
                    not_published.join(", "),
                    quote_ident(name),
                    not_published.join(", ")
                )));
            }
        }
        let [insert, update, delete, truncate] = existing.publishes;
        if !(insert && update && delete && truncate) {
            observer(CaptureEvent::Warning(format!(
                "publication '{name}' does not publish every kind of change (insert {insert}, update {update}, delete {delete}, truncate {truncate}); the missing kinds are not captured"
            )));
        }
        observer(CaptureEvent::PublicationReused {
            name: name.clone(),
            tables: existing.tables.len(),
        });
        return Ok(existing);
    }

    let (found, missing) = catalog::tables(sql, options.tables.as_deref()).await?;
    if !missing.is_empty() {
        return Err(unknown_tables(&missing, &facts.database));
    }
    if found.is_empty() {
        return Err(CaptureError::NotReady(format!(
            "database {} has no tables to capture: create tables first, or check --tables",
            facts.database
        )));
    }
    let unpublishable: Vec<String> = found
        .iter()
        .filter(|table| !table.permanent)
        .map(|table| table.name.quoted())
        .collect();
    if !unpublishable.is_empty() {
        return Err(CaptureError::NotReady(format!(
            "{} unlogged or temporary, and PostgreSQL cannot publish such tables: leave {} out of --tables, or run ALTER TABLE ... SET LOGGED;",
            match unpublishable.as_slice() {
                [one] => format!("table {one} is"),
                many => format!("tables {} are", many.join(", ")),
            },
            match unpublishable.len() {
                1 => "it",
                _ => "them",
            }
        )));
    }
    let blocking: Vec<&TableInfo> = found
        .iter()
        .filter(|table| table.blocks_writes_when_published())
        .collect();
    if !blocking.is_empty() {
        let fixes: Vec<String> = blocking
            .iter()
            .map(|table| format!("ALTER TABLE {} REPLICA IDENTITY FULL;", table.name.quoted()))
            .collect();
        return Err(CaptureError::NotReady(format!(
            "once published, UPDATE and DELETE would fail on tables without a primary key or replica identity ({}): run {}",
            blocking
                .iter()
                .map(|table| table.name.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            fixes.join(" ")
        )));
    }
    if !facts.can_create_in_database && !facts.is_superuser {
        return Err(CaptureError::NotReady(format!(
            "user {} may not create the publication '{name}' in database {}: run GRANT CREATE ON DATABASE {} TO {}; or create it as its owner",
            facts.user,
            facts.database,
            quote_ident(&facts.database),
            quote_ident(&facts.user)
        )));
    }
    let all_tables = options.tables.is_none() && facts.is_superuser;
    let sql_text = match all_tables {
        true => format!("CREATE PUBLICATION {} FOR ALL TABLES", quote_ident(name)),
        false => format!(
            "CREATE PUBLICATION {} FOR TABLE {}",
            quote_ident(name),
            found
                .iter()
                .map(|table| table.name.quoted())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    sql.execute("creating the publication", &sql_text).await?;
    if options.tables.is_none() && !all_tables {
        observer(CaptureEvent::Warning(format!(
            "user {} is not a superuser, so publication '{name}' lists the {} tables that exist now; tables created later are captured only after ALTER PUBLICATION {} ADD TABLE name;",
            facts.user,
            found.len(),
            quote_ident(name)
        )));
    }
    let created = catalog::publication(sql, name).await?.ok_or_else(|| {
        CaptureError::NotReady(format!("publication '{name}' vanished after creation"))
    })?;
    observer(CaptureEvent::PublicationCreated {
        name: name.clone(),
        all_tables,
        tables: created.tables.len(),
    });
    Ok(created)
}

fn unknown_tables(missing: &[crate::model::TableName], database: &str) -> CaptureError {
    CaptureError::UnknownTables {
        tables: missing.iter().map(ToString::to_string).collect(),
        database: database.to_owned(),
    }
}

/// Stores every row of `tables` as of the exported snapshot, as one baseline transaction at the
/// slot's consistent point; after a gap (`gap_from`, where the cache's history ends), it first
/// marks every table the cache knows as missing its history from there. Uses its own transaction on `sql`; the walsender connection that
/// exported the snapshot must stay idle until this returns.
pub(crate) async fn take_baseline(
    sql: &SqlSession,
    slot: &CreatedSlot,
    tables: &[TableInfo],
    facts: &ServerFacts,
    writer: &mut WriterHandle,
    observer: &Observer,
    (transcoder, gap_from): (Option<&SqlSession>, Option<Lsn>),
) -> Result<Vec<RelationSchema>, CaptureError> {
    let (snapshot_name, consistent_point) = (&slot.snapshot_name, slot.consistent_point);
    let encoding = ServerEncoding::from_name(&facts.encoding);
    let source = CopySource {
        server_version_num: facts.version_num,
        encoding: &encoding,
        transcoder,
    };
    sql.execute(
        "opening the baseline snapshot",
        &format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}';",
            snapshot_name.replace('\'', "''")
        ),
    )
    .await?;
    let started_micros: i64 = sql
        .query_one(
            "reading the snapshot time",
            "SELECT (extract(epoch FROM now()) * 1000000)::int8",
            &[],
        )
        .await?
        .get(0);
    let committed_at =
        chrono::DateTime::from_timestamp_micros(started_micros).unwrap_or_else(chrono::Utc::now);
    writer
        .push(WriteCommand::Begin(TxMeta {
            xid: None,
            commit_lsn: consistent_point,
            committed_at,
            is_baseline: true,
        }))
        .await?;
    if let Some(from) = gap_from {
        // Everything the cache knew ends here; the rows that follow are the tables now.
        writer.push(WriteCommand::Gap { from }).await?;
    }
    let tables: Vec<&TableInfo> = tables.iter().filter(|table| !table.partitioned).collect();
    observer(CaptureEvent::BaselineStarted {
        tables: tables.len(),
    });
    let mut total = 0u64;
    let mut schemas = Vec::new();
    for table in &tables {
        let (rows, schema) =
            copy_table(sql, table, &source, consistent_point, writer, observer).await?;
        total += rows;
        schemas.push(schema);
    }
    writer
        .push(WriteCommand::Commit {
            end_lsn: consistent_point,
        })
        .await?;
    sql.execute("closing the baseline snapshot", "COMMIT")
        .await?;
    observer(CaptureEvent::BaselineDone {
        rows: total,
        tables: tables.len(),
    });
    Ok(schemas)
}

/// What copying a table needs to know of the server.
struct CopySource<'a> {
    server_version_num: i32,
    encoding: &'a ServerEncoding,
    /// The SQL session that converts raw text (for encodings other than UTF8 and SQL_ASCII).
    transcoder: Option<&'a SqlSession>,
}

async fn copy_table(
    sql: &SqlSession,
    table: &TableInfo,
    source: &CopySource<'_>,
    lsn: Lsn,
    writer: &mut WriterHandle,
    observer: &Observer,
) -> Result<(u64, RelationSchema), CaptureError> {
    let message = catalog::relation_message(sql, table.oid, source.server_version_num).await?;
    let (details, _) = catalog::relation_details(sql, &message, false).await?;
    let schema = build_schema(&message, &details);
    let columns: Vec<String> = schema
        .columns
        .iter()
        .map(|column| quote_ident(&column.name))
        .collect();
    let base_types: Vec<u32> = schema
        .columns
        .iter()
        .map(|column| column.base_type_oid)
        .collect();
    let width = schema.columns.len();
    writer
        .push(WriteCommand::Relation {
            schema: schema.clone(),
            lsn,
        })
        .await?;
    let estimate = table.estimated_rows.max(0.0) as u64;
    let statement = format!(
        "COPY (SELECT {} FROM ONLY {}) TO STDOUT",
        columns.join(", "),
        table.name.quoted()
    );
    let action = format!("copying {}", table.name);
    // Outside UTF8, take the server's own bytes: its conversion could stop at a value it cannot
    // map, and the snapshot could not be read again (see capture::encoding).
    let raw = *source.encoding != ServerEncoding::Utf8;
    if raw {
        sql.execute(
            "reading raw text",
            "SET LOCAL client_encoding = 'SQL_ASCII'",
        )
        .await?;
    }
    let stream = sql
        .client
        .copy_out(statement.as_str())
        .await
        .map_err(|error| CaptureError::sql(&action, &sql.endpoint, error))?;
    futures_util::pin_mut!(stream);
    let mut buffer = Vec::new();
    let mut rows = 0u64;
    let mut last_report = Instant::now();
    observer(CaptureEvent::BaselineProgress {
        table: table.name.clone(),
        rows: 0,
        estimated_rows: estimate,
    });
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| CaptureError::sql(&action, &sql.endpoint, error))?;
        buffer.extend_from_slice(&chunk);
        let mut parsed = Vec::new();
        for line in copy_text::take_lines(&mut buffer) {
            let values = match width {
                0 => Vec::new(),
                _ => copy_text::parse_row(&line)?,
            };
            if values.len() != width {
                return Err(CaptureError::Protocol {
                    what: format!(
                        "a COPY row of {} has {} columns, expected {width}",
                        table.name,
                        values.len()
                    ),
                });
            }
            parsed.push(values);
        }
        for values in text_values(parsed, source.encoding, source.transcoder).await? {
            let row = values
                .into_iter()
                .zip(&base_types)
                .map(|(value, base)| value_form(*base, value))
                .collect();
            writer
                .push(WriteCommand::Snapshot {
                    lsn,
                    oid: table.oid,
                    row,
                })
                .await?;
            rows += 1;
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            observer(CaptureEvent::BaselineProgress {
                table: table.name.clone(),
                rows,
                estimated_rows: estimate.max(rows),
            });
        }
    }
    if raw {
        sql.execute("reading text", "SET LOCAL client_encoding = 'UTF8'")
            .await?;
    }
    observer(CaptureEvent::BaselineProgress {
        table: table.name.clone(),
        rows,
        estimated_rows: rows,
    });
    Ok((rows, schema))
}

/// Turns the bytes of COPY rows into values: UTF-8 as it came, `SQL_ASCII` as text where it is
/// valid UTF-8, and other encodings converted by the server (`transcoder`) value by value.
async fn text_values(
    rows: Vec<Vec<Option<Vec<u8>>>>,
    encoding: &ServerEncoding,
    transcoder: Option<&SqlSession>,
) -> Result<Vec<Vec<Value>>, CaptureError> {
    let plain = |value: Option<Vec<u8>>| value.map_or(Value::Null, Value::from_bytes);
    let (name, transcoder) = match (encoding, transcoder) {
        (ServerEncoding::Other(name), Some(transcoder)) => (name, transcoder),
        _ => {
            return Ok(rows
                .into_iter()
                .map(|row| row.into_iter().map(plain).collect())
                .collect());
        }
    };
    let raw: Vec<Vec<u8>> = rows.iter().flatten().flatten().cloned().collect();
    let count = raw.len();
    let converted = encoding::transcode(transcoder, name, raw).await?;
    if converted.len() != count {
        return Err(CaptureError::Protocol {
            what: format!(
                "converting {count} values from {name} gave {}",
                converted.len()
            ),
        });
    }
    let mut converted = converted.into_iter();
    Ok(rows
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|value| match value {
                    Some(_) => converted.next().unwrap_or(Value::Unavailable),
                    None => Value::Null,
                })
                .collect()
        })
        .collect())
}
