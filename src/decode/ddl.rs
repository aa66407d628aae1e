//! Reads the messages of rowtrail's schema log (see `capture::schema_log`): a table's definition
//! as it is right after a schema change, a dropped table, or the mark where recording began.

use serde::Deserialize;

use crate::model::{ForeignKey, IdentityKind, Oid, RelationSchema, ReplicaIdentity, TableName};

use super::pgoutput::{RelationColumn, RelationMessage};
use super::relation::{CatalogDetails, build_schema};

/// One message of the schema log.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaLogMessage {
    /// Schema changes are recorded from this point of the stream on.
    Tracking,
    Table(Box<TableEvent>),
}

/// A schema change of one table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableEvent {
    /// The command tag (`ALTER TABLE`, `DROP TABLE`, `CREATE INDEX`, ...).
    pub command: String,
    /// The statement, as far as the server reported it.
    pub statement: Option<String>,
    pub oid: Oid,
    pub table: TableName,
    /// The table's schema right after the command; `None` when it was dropped.
    pub schema: Option<RelationSchema>,
}

/// A column as `rowtrail.describe_table` lists it: attnum, name, type oid, type modifier, type
/// name (`format_type`), base type oid (under domains), identity kind (`a`, `d` or empty).
type MessageColumn = (i16, String, Oid, i32, String, Option<Oid>, String);

#[derive(Deserialize)]
struct Message {
    v: u32,
    #[serde(default)]
    tracking: bool,
    tag: Option<String>,
    query: Option<String>,
    oid: Option<Oid>,
    schema: Option<String>,
    name: Option<String>,
    #[serde(default)]
    dropped: bool,
    replident: Option<String>,
    #[serde(default)]
    columns: Vec<MessageColumn>,
    #[serde(default)]
    pk: Vec<String>,
    #[serde(default)]
    ri: Vec<String>,
    #[serde(default)]
    fks: Vec<MessageForeignKey>,
}

#[derive(Deserialize)]
struct MessageForeignKey {
    name: String,
    #[serde(default)]
    columns: Vec<String>,
    schema: String,
    table: String,
    #[serde(default)]
    refcolumns: Vec<String>,
}

/// Parses one schema log message; an error says what is wrong with it.
pub fn parse_schema_log(content: &[u8]) -> Result<SchemaLogMessage, String> {
    let message: Message = serde_json::from_slice(content)
        .map_err(|error| format!("not a schema log message: {error}"))?;
    if message.v != 1 {
        return Err(format!(
            "schema log message version {} is unknown",
            message.v
        ));
    }
    if message.tracking {
        return Ok(SchemaLogMessage::Tracking);
    }
    let (Some(oid), Some(schema_name), Some(name)) = (message.oid, &message.schema, &message.name)
    else {
        return Err("schema log message without a table".to_owned());
    };
    // pg_event_trigger_dropped_objects names pg_catalog tables with their schema; keep it.
    let table = TableName::new(schema_name.clone(), name.clone());
    let command = message
        .tag
        .clone()
        .unwrap_or_else(|| "schema change".to_owned());
    let statement = message.query.clone().filter(|query| !query.is_empty());
    if message.dropped {
        return Ok(SchemaLogMessage::Table(Box::new(TableEvent {
            command,
            statement,
            oid,
            table,
            schema: None,
        })));
    }
    let replica_identity = message
        .replident
        .as_deref()
        .and_then(|code| code.bytes().next())
        .and_then(ReplicaIdentity::from_code)
        .ok_or("schema log message without a replica identity")?;
    let is_key = |name: &String| match replica_identity {
        ReplicaIdentity::Full => true,
        ReplicaIdentity::Default => message.pk.contains(name),
        ReplicaIdentity::Index => message.ri.contains(name),
        ReplicaIdentity::Nothing => false,
    };
    let relation = RelationMessage {
        oid,
        namespace: schema_name.clone(),
        name: name.clone(),
        replica_identity,
        columns: message
            .columns
            .iter()
            .map(|(_, name, type_oid, type_modifier, ..)| RelationColumn {
                is_key: is_key(name),
                name: name.clone(),
                type_oid: *type_oid,
                type_modifier: *type_modifier,
            })
            .collect(),
    };
    let details = CatalogDetails {
        type_names: message
            .columns
            .iter()
            .map(|column| column.4.clone())
            .collect(),
        base_type_oids: message
            .columns
            .iter()
            .map(|column| column.5.unwrap_or(column.2))
            .collect(),
        primary_key: message.pk.clone(),
        identity_columns: message
            .columns
            .iter()
            .filter_map(|column| {
                let kind = match column.6.as_str() {
                    "a" => IdentityKind::Always,
                    "d" => IdentityKind::ByDefault,
                    _ => return None,
                };
                Some((column.1.clone(), kind))
            })
            .collect(),
        foreign_keys: message
            .fks
            .iter()
            .map(|key| ForeignKey {
                name: key.name.clone(),
                columns: key.columns.clone(),
                referenced_table: TableName::new(key.schema.clone(), key.table.clone()),
                referenced_columns: key.refcolumns.clone(),
            })
            .collect(),
        attnums: message
            .columns
            .iter()
            .map(|column| Some(column.0))
            .collect(),
        key_read_later: false,
    };
    Ok(SchemaLogMessage::Table(Box::new(TableEvent {
        command,
        statement,
        oid,
        table,
        schema: Some(build_schema(&relation, &details)),
    })))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn a_definition_becomes_a_schema_version_with_its_key() {
        let content = br#"{"v":1,"tag":"ALTER TABLE","query":"alter table t add primary key (id)",
            "oid":16400,"schema":"public","name":"t","replident":"f",
            "columns":[[1,"id",23,-1,"integer",23,"a"],[3,"note",25,-1,"text",25,""]],
            "pk":["id"],"ri":[],
            "fks":[{"name":"t_fk","columns":["id"],"schema":"public","table":"p","refcolumns":["id"]}]}"#;
        let SchemaLogMessage::Table(event) = parse_schema_log(content).unwrap() else {
            panic!("a table event");
        };
        assert_eq!(event.command, "ALTER TABLE");
        assert_eq!(event.table, TableName::new("public", "t"));
        let schema = event.schema.unwrap();
        assert_eq!(schema.key, vec![0]);
        assert!(!schema.key_read_later);
        assert_eq!(schema.columns[1].attnum, Some(3));
        assert_eq!(schema.columns[0].identity, Some(IdentityKind::Always));
        assert!(
            schema
                .columns
                .iter()
                .all(|column| column.in_replica_identity)
        );
        assert_eq!(
            schema.foreign_keys[0].referenced_table,
            TableName::new("public", "p")
        );
    }

    #[test]
    fn drops_tracking_marks_and_garbage() {
        let dropped =
            br#"{"v":1,"tag":"DROP TABLE","oid":5,"schema":"s","name":"t","dropped":true}"#;
        let SchemaLogMessage::Table(event) = parse_schema_log(dropped).unwrap() else {
            panic!("a table event");
        };
        assert!(event.schema.is_none());
        assert_eq!(
            parse_schema_log(br#"{"v":1,"tracking":true}"#).unwrap(),
            SchemaLogMessage::Tracking
        );
        for bad in [
            &b"not json"[..],
            br#"{"v":2}"#,
            br#"{"v":1,"tag":"x"}"#,
            br#"{"v":1,"oid":1,"schema":"s","name":"t"}"#,
        ] {
            assert!(parse_schema_log(bad).is_err());
        }
    }
}
