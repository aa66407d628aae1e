//! The demo without a server: the same shop and story, written straight into a cache through the
//! cache writer, with commit times spread over the last two hours.

use std::path::Path;

use chrono::{Duration, Utc};

use crate::decode::image::RowChange;
use crate::decode::pgoutput::{OldRow, TupleData, TupleValue};
use crate::model::{
    Column, ForeignKey, Lsn, Oid, RelationSchema, ReplicaIdentity, TableName, Value, Xid,
};
use crate::store::{BaselineState, CacheWriter, CaptureState, SourceIdentity, StoreError, TxMeta};

use super::shop::{Row, Shop, Step, Table};

/// How many transactions of the story the offline cache holds.
const TRANSACTIONS: usize = 120;

fn type_oid(sql_type: &str) -> Oid {
    match sql_type {
        "integer" => 23,
        "jsonb" => 3802,
        "numeric(10,2)" => 1700,
        "timestamp with time zone" => 1184,
        _ => 25,
    }
}

fn schema(table: Table, oid: Oid) -> RelationSchema {
    let identity = match table.full_identity() {
        true => ReplicaIdentity::Full,
        false => ReplicaIdentity::Default,
    };
    RelationSchema {
        oid,
        table: TableName::new("public", table.name()),
        replica_identity: identity,
        columns: table
            .columns()
            .iter()
            .enumerate()
            .map(|(index, (name, sql_type))| Column {
                name: (*name).to_owned(),
                type_oid: type_oid(sql_type),
                base_type_oid: type_oid(sql_type),
                type_modifier: -1,
                type_name: (*sql_type).to_owned(),
                in_replica_identity: table.full_identity() || index < table.key_width(),
                identity: None,
                attnum: None,
            })
            .collect(),
        key: (0..table.key_width()).collect(),
        foreign_keys: table
            .foreign_keys()
            .iter()
            .map(|(column, referenced)| ForeignKey {
                name: format!("{}_{column}_fkey", table.name()),
                columns: vec![(*column).to_owned()],
                referenced_table: TableName::new("public", referenced.name()),
                referenced_columns: vec!["id".to_owned()],
            })
            .collect(),
        key_read_later: false,
    }
}

fn tuple(row: &Row) -> TupleData {
    TupleData(
        row.iter()
            .map(|value| match value {
                Some(text) => TupleValue::Text(text.clone()),
                None => TupleValue::Null,
            })
            .collect(),
    )
}

/// The key columns of a row, the rest NULL: what the server sends under the default identity.
fn key_only(table: Table, row: &Row) -> TupleData {
    TupleData(
        row.iter()
            .enumerate()
            .map(|(index, value)| match (index < table.key_width(), value) {
                (true, Some(text)) => TupleValue::Text(text.clone()),
                _ => TupleValue::Null,
            })
            .collect(),
    )
}

/// Writes the demo's shop and story into a new cache at `path`.
pub fn write(path: &Path, seed: u64) -> Result<(), StoreError> {
    let started = Utc::now() - Duration::hours(2);
    let source = SourceIdentity {
        system_identifier: "rowtrail-demo-offline".into(),
        database: "shop".into(),
        display: "demo shop (written offline: no PostgreSQL server was found)".into(),
        server_version: "none".into(),
    };
    let mut writer = CacheWriter::open(path, &source)?;
    writer.set_capture_state(&CaptureState {
        slot: "rowtrail_demo".into(),
        publication: "rowtrail".into(),
        baseline: BaselineState::Pending,
        position: Lsn::ZERO,
    })?;
    let oid = |table: Table| {
        20_000
            + Table::ALL
                .iter()
                .position(|known| *known == table)
                .unwrap_or(0) as Oid
    };
    let mut lsn = 0x0100_0000u64;
    for table in Table::ALL {
        writer.register_relation(schema(table, oid(table)), Lsn(lsn))?;
    }
    let mut time = started;
    let clock_text = move || started.to_rfc3339();
    let mut shop = Shop::new(seed, &clock_text);
    writer.begin(TxMeta {
        xid: None,
        commit_lsn: Lsn(lsn),
        committed_at: started,
        is_baseline: true,
    })?;
    for (table, row) in shop.rows() {
        let values = row
            .iter()
            .map(|value| Value::from(value.as_deref()))
            .collect();
        writer.snapshot_row(Lsn(lsn), oid(table), values)?;
    }
    writer.commit(Lsn(lsn))?;
    let step = Duration::seconds(7200 / TRANSACTIONS as i64);
    for index in 0..TRANSACTIONS {
        time += step;
        lsn += 0x1000;
        let now_text = time.to_rfc3339();
        let transaction = shop.next_transaction(&move || now_text.clone());
        writer.begin(TxMeta {
            xid: Some(Xid(5000 + index as u32)),
            commit_lsn: Lsn(lsn),
            committed_at: time,
            is_baseline: false,
        })?;
        writer.set_context(&transaction.context)?;
        for step in &transaction.steps {
            lsn += 0x40;
            let (table, change) = match step {
                Step::Insert { table, row } => (*table, RowChange::Insert { new: tuple(row) }),
                Step::Update { table, old, new } => (
                    *table,
                    RowChange::Update {
                        old: table.full_identity().then(|| OldRow::Full(tuple(old))),
                        new: tuple(new),
                    },
                ),
                Step::Delete { table, old } => (
                    *table,
                    RowChange::Delete {
                        old: match table.full_identity() {
                            true => OldRow::Full(tuple(old)),
                            false => OldRow::Key(key_only(*table, old)),
                        },
                    },
                ),
            };
            writer.row_change(Lsn(lsn), oid(table), &change)?;
        }
        lsn += 0x40;
        writer.commit(Lsn(lsn))?;
    }
    writer.flush()?;
    Ok(())
}
