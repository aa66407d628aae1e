//! Schema versions for imported changes. When the audited table sits beside the audit store,
//! its columns, types, key and foreign keys come from that database's catalog, so restore
//! scripts stay typed and records are found by key; a table the catalog no longer has gets its
//! columns from the store's values (all `text`, no key: records are then told apart by all
//! their values).

use std::collections::HashMap;

use crate::capture::CaptureError;
use crate::capture::catalog;
use crate::capture::session::SqlSession;
use crate::decode::build_schema;
use crate::model::{Column, Oid, RelationSchema, ReplicaIdentity, TableName};

/// The text type's oid: columns known only from a store's values are text.
const TEXT: Oid = 25;

/// The catalog's schema of each table met so far (`None`: not in the catalog).
#[derive(Debug, Default)]
pub struct CatalogSchemas {
    known: HashMap<TableName, Option<RelationSchema>>,
}

impl CatalogSchemas {
    /// The table as the catalog has it, if `get` looked it up before.
    pub fn known(&self, table: &TableName) -> Option<&RelationSchema> {
        self.known.get(table).and_then(Option::as_ref)
    }

    /// The table as the catalog has it now, looked up once.
    pub async fn get(
        &mut self,
        session: &SqlSession,
        server_version_num: i32,
        table: &TableName,
    ) -> Result<Option<&RelationSchema>, CaptureError> {
        if !self.known.contains_key(table) {
            let schema = lookup(session, server_version_num, table).await?;
            self.known.insert(table.clone(), schema);
        }
        Ok(self.known.get(table).and_then(Option::as_ref))
    }
}

async fn lookup(
    session: &SqlSession,
    server_version_num: i32,
    table: &TableName,
) -> Result<Option<RelationSchema>, CaptureError> {
    let oid: Option<Oid> = session
        .query_one(
            "looking up an audited table",
            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
             UNION ALL SELECT NULL LIMIT 1",
            &[&table.schema, &table.name],
        )
        .await?
        .get(0);
    let Some(oid) = oid else {
        return Ok(None);
    };
    let message = catalog::relation_message(session, oid, server_version_num).await?;
    // The catalog is read now, later than the changes: the key is marked so.
    let (details, _) = catalog::relation_details(session, &message, true).await?;
    Ok(Some(build_schema(&message, &details)))
}

/// The schema version of a row whose image has these columns: the catalog's (its columns the row
/// lacks are then unavailable in it, as the columns the audit trigger was told to ignore), with
/// the columns the catalog does not know added as `text` (a column dropped since). Without the
/// catalog, the row's columns, all `text`, keyed by the columns the store names as the key
/// (`key`, if the row has them all), else by none. Every column counts as sent whole: the store
/// keeps whole rows.
pub fn shape(
    table: &TableName,
    catalog: Option<&RelationSchema>,
    names: &[&str],
    key: &[String],
    types: &[(String, String)],
) -> RelationSchema {
    // A column the store gives a type (Debezium's schema part), else text.
    let text_column = |name: &str| {
        let type_name = types
            .iter()
            .find(|(column, _)| column == name)
            .map_or("text", |(_, type_name)| type_name.as_str());
        let oid = oid_of(type_name);
        Column {
            name: name.to_owned(),
            type_oid: oid,
            base_type_oid: oid,
            type_modifier: -1,
            type_name: if oid == TEXT { "text" } else { type_name }.to_owned(),
            in_replica_identity: true,
            identity: None,
            attnum: None,
        }
    };
    let Some(catalog) = catalog else {
        let key: Option<Vec<usize>> = key
            .iter()
            .map(|column| names.iter().position(|name| name == column))
            .collect();
        return RelationSchema {
            oid: synthetic_oid(table),
            table: table.clone(),
            replica_identity: ReplicaIdentity::Full,
            columns: names.iter().map(|name| text_column(name)).collect(),
            key: key.unwrap_or_default(),
            foreign_keys: Vec::new(),
            key_read_later: false,
        };
    };
    let mut schema = catalog.clone();
    schema.replica_identity = ReplicaIdentity::Full;
    for column in &mut schema.columns {
        column.in_replica_identity = true;
    }
    for name in names {
        if catalog.column_index(name).is_none() {
            schema.columns.push(text_column(name));
        }
    }
    schema
}

/// The oid of a built-in type a store may name (text for any other).
fn oid_of(type_name: &str) -> Oid {
    match type_name {
        "boolean" => 16,
        "bytea" => 17,
        "bigint" => 20,
        "smallint" => 21,
        "integer" => 23,
        "real" => 700,
        "double precision" => 701,
        "numeric" => 1700,
        "date" => 1082,
        "time" => 1083,
        "timestamp" => 1114,
        "timestamptz" => 1184,
        "interval" => 1186,
        "timetz" => 1266,
        "uuid" => 2950,
        "jsonb" => 3802,
        "text[]" => 1009,
        _ => TEXT,
    }
}

/// An oid for a table the catalog does not have: stable for its name, and in the upper half of
/// the oid space, which a cluster reaches only after billions of objects.
fn synthetic_oid(table: &TableName) -> Oid {
    // FNV-1a: small, stable across builds and platforms (std's hasher is neither promised).
    let mut hash: u32 = 0x811c_9dc5;
    for byte in table.to_string().bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash | 0x8000_0000
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;
    use crate::model::ForeignKey;

    fn catalog() -> RelationSchema {
        let column = |name: &str, attnum: i16| Column {
            name: name.into(),
            type_oid: 23,
            base_type_oid: 23,
            type_modifier: -1,
            type_name: "integer".into(),
            in_replica_identity: false,
            identity: None,
            attnum: Some(attnum),
        };
        RelationSchema {
            oid: 16_400,
            table: TableName::new("public", "orders"),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![column("id", 1), column("customer_id", 2), column("qty", 3)],
            key: vec![0],
            foreign_keys: vec![ForeignKey {
                name: "orders_customer_id_fkey".into(),
                columns: vec!["customer_id".into()],
                referenced_table: TableName::new("public", "customers"),
                referenced_columns: vec!["id".into()],
            }],
            key_read_later: true,
        }
    }

    #[test]
    fn a_row_with_the_catalogs_columns_has_its_types_and_key() {
        let table = TableName::new("public", "orders");
        let schema = shape(
            &table,
            Some(&catalog()),
            &["qty", "id", "customer_id"],
            &[],
            &[],
        );
        assert_eq!(schema.columns.len(), 3);
        assert_eq!(schema.key, vec![0]);
        assert_eq!(schema.columns[2].type_name, "integer");
        assert_eq!(schema.replica_identity, ReplicaIdentity::Full);
    }

    #[test]
    fn a_row_of_another_shape_keeps_the_catalogs_columns_and_adds_its_own() {
        let table = TableName::new("public", "orders");
        // `customer_id` ignored by the trigger, `gone` dropped since.
        let schema = shape(&table, Some(&catalog()), &["id", "qty", "gone"], &[], &[]);
        let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "customer_id", "qty", "gone"]);
        assert_eq!(schema.columns[3].type_name, "text");
        assert_eq!(schema.key, vec![0]);
        assert_eq!(schema.foreign_keys.len(), 1);
    }

    #[test]
    fn without_the_catalog_columns_are_text_and_the_oid_is_stable() {
        let table = TableName::new("public", "dropped");
        let one = shape(&table, None, &["a", "b"], &[], &[]);
        let two = shape(&table, None, &["a", "b"], &[], &[]);
        assert_eq!(one.oid, two.oid);
        assert!(one.oid >= 0x8000_0000);
        assert!(one.key.is_empty());
        assert!(one.columns.iter().all(|column| column.type_oid == TEXT));
        let keyed = shape(&table, None, &["a", "id"], &["id".to_owned()], &[]);
        assert_eq!(keyed.key, vec![1]);
        let unkeyed = shape(&table, None, &["a"], &["id".to_owned()], &[]);
        assert!(unkeyed.key.is_empty(), "a key the row lacks is no key");
        let typed = shape(
            &table,
            None,
            &["n"],
            &[],
            &[("n".to_owned(), "integer".to_owned())],
        );
        assert_eq!(
            (
                typed.columns[0].type_oid,
                typed.columns[0].type_name.as_str()
            ),
            (23, "integer")
        );
    }
}
