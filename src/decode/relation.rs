//! Builds a relation schema version from a pgoutput relation message plus the catalog facts the
//! message does not carry (type names, primary key, identity columns, foreign keys).

use crate::model::{Column, ForeignKey, IdentityKind, Oid, RelationSchema, TableName};

use super::pgoutput::RelationMessage;

/// What the catalog knows about a table that a relation message does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogDetails {
    /// The SQL type name of each column of the message, in the message's column order.
    pub type_names: Vec<String>,
    /// The base type of each column (through domains), in the message's column order.
    pub base_type_oids: Vec<Oid>,
    /// Primary key column names in key order; empty when the table has none.
    pub primary_key: Vec<String>,
    pub identity_columns: Vec<(String, IdentityKind)>,
    pub foreign_keys: Vec<ForeignKey>,
}

/// Combines a relation message with catalog details into one schema version.
///
/// The record key is the primary key when every primary key column is in the message, else the
/// replica identity columns (a `USING INDEX` identity, or the key under `DEFAULT`), else none.
/// Under `FULL` every column is flagged as identity, so that flag alone never makes a key.
pub fn build_schema(message: &RelationMessage, details: &CatalogDetails) -> RelationSchema {
    let columns: Vec<Column> = message
        .columns
        .iter()
        .enumerate()
        .map(|(index, column)| Column {
            name: column.name.clone(),
            type_oid: column.type_oid,
            base_type_oid: details
                .base_type_oids
                .get(index)
                .copied()
                .unwrap_or(column.type_oid),
            type_modifier: column.type_modifier,
            type_name: details
                .type_names
                .get(index)
                .cloned()
                .unwrap_or_else(|| format!("oid:{}", column.type_oid)),
            in_replica_identity: column.is_key,
            identity: details
                .identity_columns
                .iter()
                .find(|(name, _)| *name == column.name)
                .map(|(_, kind)| *kind),
        })
        .collect();
    let index_of = |name: &String| columns.iter().position(|column| &column.name == name);
    let primary_key: Option<Vec<usize>> = match details.primary_key.is_empty() {
        true => None,
        false => details.primary_key.iter().map(index_of).collect(),
    };
    let key = primary_key.unwrap_or_else(|| match message.replica_identity {
        crate::model::ReplicaIdentity::Full => Vec::new(),
        _ => (0..columns.len())
            .filter(|&index| columns[index].in_replica_identity)
            .collect(),
    });
    RelationSchema {
        oid: message.oid,
        // pgoutput sends an empty namespace for `pg_catalog` (where a superuser may create tables).
        table: TableName::new(
            match message.namespace.as_str() {
                "" => "pg_catalog",
                namespace => namespace,
            },
            message.name.clone(),
        ),
        replica_identity: message.replica_identity,
        columns,
        key,
        foreign_keys: details.foreign_keys.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;
    use crate::decode::pgoutput::RelationColumn;
    use crate::model::ReplicaIdentity;

    fn message(identity: ReplicaIdentity, flags: [bool; 3]) -> RelationMessage {
        let names = ["tenant", "code", "label"];
        RelationMessage {
            oid: 42,
            namespace: "shop".into(),
            name: "items".into(),
            replica_identity: identity,
            columns: names
                .iter()
                .zip(flags)
                .map(|(name, is_key)| RelationColumn {
                    is_key,
                    name: (*name).into(),
                    type_oid: 25,
                    type_modifier: -1,
                })
                .collect(),
        }
    }

    #[test]
    fn primary_key_wins_even_under_full_identity() {
        let details = CatalogDetails {
            type_names: vec!["text".into(); 3],
            base_type_oids: vec![25; 3],
            primary_key: vec!["code".into(), "tenant".into()],
            identity_columns: vec![("code".into(), IdentityKind::Always)],
            foreign_keys: Vec::new(),
        };
        let schema = build_schema(&message(ReplicaIdentity::Full, [true; 3]), &details);
        assert_eq!(schema.key, vec![1, 0]);
        assert_eq!(schema.columns[1].identity, Some(IdentityKind::Always));
        assert_eq!(schema.table, TableName::new("shop", "items"));
    }

    #[test]
    fn without_primary_key_uses_identity_index_or_nothing() {
        let details = CatalogDetails {
            type_names: vec!["text".into(); 3],
            ..Default::default()
        };
        let by_index = build_schema(
            &message(ReplicaIdentity::Index, [false, true, false]),
            &details,
        );
        assert_eq!(by_index.key, vec![1]);
        let full = build_schema(&message(ReplicaIdentity::Full, [true; 3]), &details);
        assert!(full.key.is_empty());
    }
}
