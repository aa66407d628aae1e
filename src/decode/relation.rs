//! Builds a relation schema version from a pgoutput relation message plus the catalog facts the
//! message does not carry (type names, primary key, identity columns, foreign keys).

use crate::model::{
    Column, ForeignKey, IdentityKind, Oid, RelationSchema, ReplicaIdentity, TableName,
};

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
    /// The `attnum` of each column of the message, in its order, where known.
    pub attnums: Vec<Option<i16>>,
    /// The primary key was read from the catalog later than the change (see
    /// [`RelationSchema::key_read_later`]); it matters only where the stream does not say.
    pub key_read_later: bool,
}

/// Combines a relation message with catalog details into one schema version.
///
/// The record key is what the stream says identifies a row at the change: the columns flagged as
/// the replica identity under `DEFAULT` (the primary key then) or `USING INDEX` (the index's key
/// columns), in primary key order when they are the primary key. Under `FULL` every column is
/// flagged, so the key is the primary key the details name, which capture takes from its record
/// of schema changes or, failing that, from the catalog later (`key_read_later`).
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
            attnum: details.attnums.get(index).copied().flatten(),
        })
        .collect();
    let index_of = |name: &String| columns.iter().position(|column| &column.name == name);
    let primary_key: Option<Vec<usize>> = match details.primary_key.is_empty() {
        true => None,
        false => details.primary_key.iter().map(index_of).collect(),
    };
    let flagged: Vec<usize> = (0..columns.len())
        .filter(|&index| columns[index].in_replica_identity)
        .collect();
    let (key, key_read_later) = match message.replica_identity {
        ReplicaIdentity::Default | ReplicaIdentity::Index => {
            let key = match &primary_key {
                Some(primary) if same_set(primary, &flagged) => primary.clone(),
                _ => flagged,
            };
            (key, false)
        }
        ReplicaIdentity::Full | ReplicaIdentity::Nothing => {
            (primary_key.unwrap_or_default(), details.key_read_later)
        }
    };
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
        key_read_later,
    }
}

fn same_set(a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len() && a.iter().all(|index| b.contains(index))
}

/// The details a known schema version gives a relation message of the same shape: used instead
/// of the live catalog when that version is known to be current (see `capture::stream`).
pub fn details_from_schema(
    message: &RelationMessage,
    schema: &RelationSchema,
) -> Option<CatalogDetails> {
    let same_columns = message.columns.len() == schema.columns.len()
        && message
            .columns
            .iter()
            .zip(&schema.columns)
            .all(|(sent, known)| sent.name == known.name && sent.type_oid == known.type_oid);
    if !same_columns {
        return None;
    }
    Some(CatalogDetails {
        type_names: schema
            .columns
            .iter()
            .map(|column| column.type_name.clone())
            .collect(),
        base_type_oids: schema
            .columns
            .iter()
            .map(|column| column.base_type_oid)
            .collect(),
        primary_key: schema.key_column_names().map(str::to_owned).collect(),
        identity_columns: schema
            .columns
            .iter()
            .filter_map(|column| Some((column.name.clone(), column.identity?)))
            .collect(),
        foreign_keys: schema.foreign_keys.clone(),
        attnums: schema.columns.iter().map(|column| column.attnum).collect(),
        key_read_later: schema.key_read_later,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;
    use crate::decode::pgoutput::RelationColumn;

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
            attnums: vec![Some(1), Some(3), Some(4)],
            key_read_later: true,
        };
        let schema = build_schema(&message(ReplicaIdentity::Full, [true; 3]), &details);
        assert_eq!(schema.key, vec![1, 0]);
        assert!(
            schema.key_read_later,
            "under FULL the key comes from the details"
        );
        assert_eq!(schema.columns[1].identity, Some(IdentityKind::Always));
        assert_eq!(schema.columns[2].attnum, Some(4));
        assert_eq!(schema.table, TableName::new("shop", "items"));
    }

    #[test]
    fn the_stream_says_the_key_under_default_and_using_index() {
        // The catalog (read later) names a primary key the change did not have.
        let details = CatalogDetails {
            type_names: vec!["text".into(); 3],
            primary_key: vec!["label".into()],
            key_read_later: true,
            ..Default::default()
        };
        let keyless = build_schema(&message(ReplicaIdentity::Default, [false; 3]), &details);
        assert!(keyless.key.is_empty() && !keyless.key_read_later);
        let by_stream = build_schema(
            &message(ReplicaIdentity::Default, [true, true, false]),
            &details,
        );
        assert_eq!(by_stream.key, vec![0, 1]);
        // The stream's key in primary key order when it is the primary key.
        let details = CatalogDetails {
            primary_key: vec!["code".into(), "tenant".into()],
            ..details
        };
        let ordered = build_schema(
            &message(ReplicaIdentity::Default, [true, true, false]),
            &details,
        );
        assert_eq!(ordered.key, vec![1, 0]);
    }

    #[test]
    fn pg_catalog_tables_come_with_an_empty_namespace() {
        let mut sent = message(ReplicaIdentity::Full, [true; 3]);
        sent.namespace = String::new();
        let schema = build_schema(&sent, &CatalogDetails::default());
        assert_eq!(schema.table, TableName::new("pg_catalog", "items"));
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
