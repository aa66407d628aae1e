//! PaperTrail's `versions` table (Ruby on Rails): one row per record change, written by the
//! application.
//!
//! - `item_type` is the model's class (`OrderItem`), its table found by Rails' naming
//!   (`order_items`) or named with `--table-of`; `item_id` the record's id.
//! - `event` is `create`, `update` or `destroy`; `whodunnit` who (the context).
//! - `object` is the record *before* the change (NULL for a create); `object_changes`, where the
//!   table has it, each changed attribute's `[old, new]`. The state *after* a change is its
//!   `object_changes` over `object`, completed from the record's next version (its `object`) or,
//!   for its newest version, from the table as it is now.
//! - `object` and `object_changes` are YAML text (PaperTrail's default serializer, read in the
//!   plain form it writes; `!ruby/object:BigDecimal`, `ActiveSupport::TimeWithZone` and
//!   `HashWithIndifferentAccess` are read, any other Ruby-specific tag is an error of its row)
//!   or JSON (the JSON serializer, or json/jsonb columns).
//! - `transaction_id`, where the table has it, groups the versions of one transaction;
//!   otherwise each version is a transaction of its own. `created_at` is its time.
//!
//! Parsing (`document_of`, `change_of`) is pure; `import` walks the table by `id`.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDateTime, Utc};
use saphyr_parser::{Event, Parser, ScalarStyle, Tag};
use serde_json::{Map, Value as Json};
use tokio::sync::watch;
use tokio_postgres::types::ToSql;

use crate::model::{Context, RelationSchema, TableName};
use crate::store::SourceIdentity;

use super::debezium_values::{self, Kind};
use super::sequence::{NumberedRows, SequenceCursor, import_rounds};
use super::sink::{ImportedTransaction, Sink};
use super::{
    AuditFormat, Fields, ImportError, ImportOptions, ImportSummary, ImportedChange, ImportedOp,
    RowError, Store,
};

/// The store's table.
pub(super) const TABLE: &str = "versions";

/// Each audited model and how many versions the store holds for it, most first.
pub(super) const TABLES_SQL: &str =
    "SELECT item_type::text, count(*) FROM versions GROUP BY 1 ORDER BY 2 DESC, 1";

/// The columns the import reads, and their types.
pub(super) const COLUMNS: &[(&str, &str)] = &[
    ("id", "bigint|integer"),
    ("item_type", "character varying|text"),
    ("item_id", "bigint|integer|character varying|text|uuid"),
    ("event", "character varying|text"),
    ("whodunnit", "character varying|text"),
    ("object", "text|json|jsonb"),
    (
        "created_at",
        "timestamp without time zone|timestamp with time zone",
    ),
];

/// A value as a YAML or JSON document holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    /// A scalar's text; `plain` when it was written without quotes (so `true` or `12` are
    /// booleans and numbers, not strings).
    Scalar {
        text: String,
        plain: bool,
    },
    /// `!binary`: bytes, in base64.
    Binary(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

/// One row of `versions`, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub id: i64,
    pub item_type: String,
    pub item_id: String,
    pub event: String,
    pub whodunnit: Option<String>,
    pub object: Option<String>,
    pub object_changes: Option<String>,
    pub transaction_id: Option<i64>,
    /// `created_at`, microseconds since 1970.
    pub created_at: i64,
    /// The `object` of the record's next version, if it has one.
    pub next_object: Option<String>,
    /// The record as its table holds it now (`[[column, JSON type, text], ...]`), for its newest
    /// version.
    pub current: Option<String>,
}

/// A YAML (PaperTrail's default) or JSON document of attributes, as names and values.
pub fn document_of(text: &str) -> Result<Vec<(String, Node)>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return match serde_json::from_str::<Json>(trimmed) {
            Ok(Json::Object(object)) => Ok(object
                .into_iter()
                .map(|(name, value)| (name, node_of_json(value)))
                .collect()),
            Ok(_) => Err("is JSON, but not an object of attributes".to_owned()),
            Err(why) => Err(format!("is not valid JSON ({why})")),
        };
    }
    let mut events = Vec::new();
    for event in Parser::new_from_str(text) {
        let (event, _) = event.map_err(|why| format!("is not valid YAML ({why})"))?;
        events.push(event);
    }
    let mut position = 0;
    // Skip to the document's content.
    while position < events.len()
        && matches!(
            events[position],
            Event::StreamStart | Event::DocumentStart(_) | Event::Nothing
        )
    {
        position += 1;
    }
    if position >= events.len() || matches!(events[position], Event::StreamEnd) {
        return Ok(Vec::new());
    }
    match node_at(&events, &mut position)? {
        Node::Map(attributes) => Ok(attributes),
        Node::Null => Ok(Vec::new()),
        other => Err(format!("is not a mapping of attributes but {other:?}")),
    }
}

fn node_of_json(value: Json) -> Node {
    match value {
        Json::Null => Node::Null,
        Json::Bool(flag) => Node::Scalar {
            text: flag.to_string(),
            plain: true,
        },
        Json::Number(number) => Node::Scalar {
            text: number.to_string(),
            plain: true,
        },
        Json::String(text) => Node::Scalar { text, plain: false },
        Json::Array(items) => Node::Seq(items.into_iter().map(node_of_json).collect()),
        Json::Object(object) => Node::Map(
            object
                .into_iter()
                .map(|(name, value)| (name, node_of_json(value)))
                .collect(),
        ),
    }
}

/// The Ruby tags read (Hash subclasses and the objects whose fields say what they hold).
fn ruby_tag(tag: &Option<Cow<'_, Tag>>) -> Result<Option<String>, String> {
    let Some(tag) = tag else {
        return Ok(None);
    };
    let name = format!("{}{}", tag.handle, tag.suffix);
    let known = [
        "!ruby/object:BigDecimal",
        "!ruby/object:ActiveSupport::TimeWithZone",
        "!ruby/object:ActiveSupport::TimeZone",
        "!ruby/hash:ActiveSupport::HashWithIndifferentAccess",
        "!binary",
        "tag:yaml.org,2002:binary",
        "tag:yaml.org,2002:str",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:map",
        "tag:yaml.org,2002:seq",
        "tag:yaml.org,2002:timestamp",
    ];
    if known.contains(&name.as_str()) {
        Ok(Some(name))
    } else {
        Err(format!(
            "holds a value tagged {name}, which is Ruby's and cannot be read without Ruby: not guessed"
        ))
    }
}

fn node_at(events: &[Event<'_>], position: &mut usize) -> Result<Node, String> {
    let Some(event) = events.get(*position) else {
        return Err("ends too early".to_owned());
    };
    *position += 1;
    match event {
        Event::Scalar(text, style, _, tag) => {
            let tag = ruby_tag(tag)?;
            let plain = matches!(style, ScalarStyle::Plain);
            match tag.as_deref() {
                Some("!binary" | "tag:yaml.org,2002:binary") => Ok(Node::Binary(
                    text.chars().filter(|c| !c.is_whitespace()).collect(),
                )),
                Some("!ruby/object:BigDecimal") => {
                    // `18:0.105e2`: the precision, then the value in scientific notation.
                    let value = text
                        .split_once(':')
                        .map_or(text.as_ref(), |(_, value)| value);
                    Ok(Node::Scalar {
                        text: value.to_owned(),
                        plain: true,
                    })
                }
                _ if plain && matches!(text.as_ref(), "" | "~" | "null" | "Null" | "NULL") => {
                    Ok(Node::Null)
                }
                _ => Ok(Node::Scalar {
                    text: text.to_string(),
                    plain,
                }),
            }
        }
        Event::SequenceStart(_, tag) => {
            ruby_tag(tag)?;
            let mut items = Vec::new();
            while !matches!(events.get(*position), Some(Event::SequenceEnd) | None) {
                items.push(node_at(events, position)?);
            }
            *position += 1;
            Ok(Node::Seq(items))
        }
        Event::MappingStart(_, tag) => {
            let tag = ruby_tag(tag)?;
            let mut entries = Vec::new();
            while !matches!(events.get(*position), Some(Event::MappingEnd) | None) {
                let key = match node_at(events, position)? {
                    Node::Scalar { text, .. } => text,
                    Node::Null => String::new(),
                    other => return Err(format!("has a mapping key that is not text: {other:?}")),
                };
                let value = node_at(events, position)?;
                entries.push((key, value));
            }
            *position += 1;
            // A TimeWithZone is its `utc` time.
            if tag.as_deref() == Some("!ruby/object:ActiveSupport::TimeWithZone") {
                return entries
                    .into_iter()
                    .find(|(key, _)| key == "utc")
                    .map(|(_, utc)| utc)
                    .ok_or_else(|| "holds an ActiveSupport::TimeWithZone without utc".to_owned());
            }
            Ok(Node::Map(entries))
        }
        Event::Alias(_) => Err("uses a YAML alias, which PaperTrail does not write".to_owned()),
        other => Err(format!("has {other:?} where a value belongs")),
    }
}

/// A value as PostgreSQL prints it for a column of `kind` (`type_name` tells json apart).
fn text_of(node: &Node, kind: &Kind, type_name: &str) -> Result<Option<String>, String> {
    let text = match (node, kind) {
        (Node::Null, _) => return Ok(None),
        (Node::Binary(base64), _) => {
            match debezium_values::decode(&Json::String(base64.clone()), &Kind::Bytea)? {
                debezium_values::Decoded::Text(text) => text,
                _ => return Ok(None),
            }
        }
        (Node::Seq(_) | Node::Map(_), Kind::Array(element)) if matches!(node, Node::Seq(_)) => {
            array_text(node, element)?
        }
        (Node::Seq(_) | Node::Map(_), _) => {
            let json = json_of(node);
            if type_name == "json" || type_name == "jsonb" || *kind == Kind::Unknown {
                jsonb_text(&json)
            } else {
                json.to_string()
            }
        }
        (Node::Scalar { text, .. }, Kind::Numeric(scale)) => decimal_text(text, *scale),
        (Node::Scalar { text, .. }, Kind::Float4 | Kind::Float8) => match text.as_str() {
            // YAML's infinities and not-a-number, as PostgreSQL prints them.
            ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => "Infinity".to_owned(),
            "-.inf" | "-.Inf" | "-.INF" => "-Infinity".to_owned(),
            ".nan" | ".NaN" | ".NAN" => "NaN".to_owned(),
            _ => match text.parse::<f64>() {
                Ok(value) => debezium_values::float_text_of(kind, value),
                Err(_) => text.clone(),
            },
        },
        // Rails keeps a `time` column as a time on 2000-01-01 (in UTC): its time of day.
        (Node::Scalar { text, .. }, Kind::Time { .. }) => match parse_time(text) {
            Some(at) => format!(
                "{}{}",
                at.format("%H:%M:%S"),
                fraction(at.timestamp_subsec_micros())
            ),
            None => text.clone(),
        },
        (Node::Scalar { text, .. }, Kind::TimestampTz) => match parse_time(text) {
            Some(at) => format!(
                "{}{}+00",
                at.format("%Y-%m-%d %H:%M:%S"),
                fraction(at.timestamp_subsec_micros())
            ),
            None => text.clone(),
        },
        (Node::Scalar { text, .. }, Kind::Timestamp { .. }) => match parse_time(text) {
            Some(at) => format!(
                "{}{}",
                at.format("%Y-%m-%d %H:%M:%S"),
                fraction(at.timestamp_subsec_micros())
            ),
            None => text.clone(),
        },
        (Node::Scalar { text, .. }, _) => text.clone(),
    };
    Ok(Some(text))
}

fn fraction(micros: u32) -> String {
    if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}").trim_end_matches('0').to_owned()
    }
}

/// A time as Ruby writes it: `2024-01-02 03:04:05.123456789 Z`, `... +02:00`, or ISO 8601.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    if let Some(local) = text
        .strip_suffix(" Z")
        .or_else(|| text.strip_suffix(" UTC"))
    {
        return NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S%.f")
            .ok()
            .map(|at| at.and_utc());
    }
    DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f %:z")
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f %z"))
        .ok()
        .map(|at| at.with_timezone(&Utc))
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(|at| at.and_utc())
        })
}

/// A decimal (`10.5`, `0.105e2`) with the column's scale, as `numeric(p,s)` prints it.
fn decimal_text(text: &str, scale: Option<u32>) -> String {
    let (negative, body) = match text.trim().strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.trim()),
    };
    let (mantissa, exponent) = match body.split_once(['e', 'E']) {
        // Beyond numeric's range (131,072 digits before the point, 16,383 after): as written.
        Some((mantissa, exponent)) => match exponent.parse::<i64>() {
            Ok(exponent) if exponent.abs() <= 140_000 => (mantissa, exponent),
            _ => return text.to_owned(),
        },
        None => (body, 0),
    };
    let (whole, part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !whole
        .chars()
        .chain(part.chars())
        .all(|c| c.is_ascii_digit())
    {
        return text.to_owned();
    }
    // All digits, and where the point goes among them.
    let digits = format!("{whole}{part}");
    let point = whole.len() as i64 + exponent;
    let (mut whole, mut part) = if point <= 0 {
        (
            "0".to_owned(),
            format!("{}{digits}", "0".repeat(point.unsigned_abs() as usize)),
        )
    } else if point as usize >= digits.len() {
        (
            format!("{digits}{}", "0".repeat(point as usize - digits.len())),
            String::new(),
        )
    } else {
        let (one, two) = digits.split_at(point as usize);
        (one.to_owned(), two.to_owned())
    };
    let trimmed = whole.trim_start_matches('0');
    whole = if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    };
    match scale {
        Some(scale) => {
            let scale = scale as usize;
            while part.len() < scale {
                part.push('0');
            }
            part.truncate(scale.max(part.trim_end_matches('0').len()));
        }
        None => part = part.trim_end_matches('0').to_owned(),
    }
    let sign = if negative && (whole != "0" || part.chars().any(|c| c != '0')) {
        "-"
    } else {
        ""
    };
    if part.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{part}")
    }
}

fn array_text(node: &Node, element: &Kind) -> Result<String, String> {
    let Node::Seq(items) = node else {
        return Err("is not a list".to_owned());
    };
    let mut parts = Vec::with_capacity(items.len());
    for item in items {
        parts.push(match item {
            Node::Seq(_) => array_text(item, element)?,
            item => match text_of(item, element, "")? {
                None => "NULL".to_owned(),
                Some(text) => {
                    debezium_values::quoted_element(&debezium_values::element_text(element, text))
                }
            },
        });
    }
    Ok(format!("{{{}}}", parts.join(",")))
}

fn json_of(node: &Node) -> Json {
    match node {
        Node::Null => Json::Null,
        Node::Binary(text) => Json::String(text.clone()),
        Node::Scalar { text, plain: true } => match text.as_str() {
            "true" => Json::Bool(true),
            "false" => Json::Bool(false),
            _ => serde_json::from_str::<serde_json::Number>(text)
                .map(Json::Number)
                .unwrap_or_else(|_| Json::String(text.clone())),
        },
        Node::Scalar { text, .. } => Json::String(text.clone()),
        Node::Seq(items) => Json::Array(items.iter().map(json_of).collect()),
        Node::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(key, value)| (key.clone(), json_of(value)))
                .collect::<Map<String, Json>>(),
        ),
    }
}

/// JSON as `jsonb` prints it: keys shortest first (then by their bytes), `", "` and `": "`.
fn jsonb_text(value: &Json) -> String {
    match value {
        Json::Array(items) => format!(
            "[{}]",
            items.iter().map(jsonb_text).collect::<Vec<_>>().join(", ")
        ),
        Json::Object(object) => {
            let mut entries: Vec<(&String, &Json)> = object.iter().collect();
            entries
                .sort_by(|(one, _), (two, _)| one.len().cmp(&two.len()).then_with(|| one.cmp(two)));
            let parts: Vec<String> = entries
                .into_iter()
                .map(|(key, value)| format!("{}: {}", Json::String(key.clone()), jsonb_text(value)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        other => other.to_string(),
    }
}

/// The record's attributes as text, each by its column's type in the catalog.
fn fields_of(
    attributes: &[(String, Node)],
    catalog: Option<&RelationSchema>,
) -> Result<Fields, String> {
    let mut fields = Vec::with_capacity(attributes.len());
    for (name, node) in attributes {
        let column =
            catalog.and_then(|schema| schema.column_index(name).map(|i| &schema.columns[i]));
        let kind = column.map_or(Kind::Unknown, Kind::of_column);
        let type_name = column.map_or("", |column| column.type_name.as_str());
        let text =
            text_of(node, &kind, type_name).map_err(|why| format!("attribute {name} {why}"))?;
        fields.push((name.clone(), text));
    }
    Ok(fields)
}

/// The change one version records, in `table` (its schema from the catalog, if it has it).
pub fn change_of(
    version: &Version,
    table: &TableName,
    catalog: Option<&RelationSchema>,
) -> Result<ImportedChange, RowError> {
    let error = |field: &str, reason: String| RowError {
        row: format!("versions id {}", version.id),
        field: field.to_owned(),
        reason,
    };
    let op = match version.event.as_str() {
        "create" => ImportedOp::Insert,
        "update" => ImportedOp::Update,
        "destroy" => ImportedOp::Delete,
        other => {
            return Err(error(
                "event",
                format!("is {other:?}, not create, update or destroy"),
            ));
        }
    };
    let document = |field: &str, text: &Option<String>| -> Result<Option<Fields>, RowError> {
        let Some(text) = text else {
            return Ok(None);
        };
        let attributes = document_of(text).map_err(|why| error(field, why))?;
        fields_of(&attributes, catalog)
            .map(Some)
            .map_err(|why| error(field, why))
    };
    let before = document("object", &version.object)?;
    // Each changed attribute's new value.
    let changed: Option<Fields> = match &version.object_changes {
        None => None,
        Some(text) => {
            let attributes = document_of(text).map_err(|why| error("object_changes", why))?;
            let mut news = Vec::with_capacity(attributes.len());
            for (name, pair) in attributes {
                let Node::Seq(pair) = pair else {
                    return Err(error(
                        "object_changes",
                        format!("attribute {name} is not an [old, new] pair"),
                    ));
                };
                let new = pair.get(1).cloned().unwrap_or(Node::Null);
                news.push((name, new));
            }
            Some(fields_of(&news, catalog).map_err(|why| error("object_changes", why))?)
        }
    };
    // The state after: the changes over the state before, completed from the next version or
    // the table as it is now.
    // A next version that cannot be read is reported as its own row's error, not this one's.
    let next = document("next version's object", &version.next_object)
        .ok()
        .flatten();
    let current = match &version.current {
        None => None,
        Some(pairs) => Some(
            super::supa_audit::fields_of(pairs, catalog)
                .map_err(|why| error("current row", why))?,
        ),
    };
    let after = match op {
        ImportedOp::Delete => None,
        _ => {
            let mut after: Fields = match (&changed, &before) {
                (Some(_), Some(before)) => before.clone(),
                (Some(_), None) => Vec::new(),
                (None, _) => next.clone().or_else(|| current.clone()).unwrap_or_default(),
            };
            for (name, value) in changed.iter().flatten() {
                match after.iter_mut().find(|(own, _)| own == name) {
                    Some(slot) => slot.1 = value.clone(),
                    None => after.push((name.clone(), value.clone())),
                }
            }
            // A create's unchanged (nil) attributes are not in its changes: the rest of the row
            // comes from what followed it.
            if op == ImportedOp::Insert && changed.is_some() {
                let rest = next.as_ref().or(current.as_ref());
                for (name, value) in rest.into_iter().flatten() {
                    if !after.iter().any(|(own, _)| own == name) {
                        after.push((name.clone(), value.clone()));
                    }
                }
                if rest.is_none()
                    && let Some(schema) = catalog
                {
                    for column in &schema.columns {
                        if !after.iter().any(|(own, _)| *own == column.name) {
                            after.push((column.name.clone(), None));
                        }
                    }
                }
            }
            if after.is_empty() {
                return Err(error(
                    "object_changes",
                    "is missing, and nothing else says what the record became".to_owned(),
                ));
            }
            Some(after)
        }
    };
    if matches!(op, ImportedOp::Update | ImportedOp::Delete) && before.is_none() {
        return Err(error("object", format!("is NULL for an {}", version.event)));
    }
    Ok(ImportedChange {
        table: table.clone(),
        op,
        before: if op == ImportedOp::Insert {
            None
        } else {
            before
        },
        after,
        key: vec!["id".to_owned()],
        types: Vec::new(),
    })
}

/// Who made the change: `whodunnit`.
pub fn context_of(version: &Version) -> Option<Context> {
    let whodunnit = version.whodunnit.as_ref().filter(|who| !who.is_empty())?;
    let mut context = Context::new();
    context.insert("whodunnit".to_owned(), Json::String(whodunnit.clone()));
    Some(context)
}

/// Rails' table name for a model class: `OrderItem` → `order_items`, `Admin::User` →
/// `admin_users`, `Category` → `categories`, `Person` → `people`.
pub fn table_for_model(model: &str) -> String {
    let mut snake = String::with_capacity(model.len() + 4);
    let flat = model.replace("::", "_");
    let mut previous_lower = false;
    for c in flat.chars() {
        if c.is_ascii_uppercase() {
            if previous_lower {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
            previous_lower = false;
        } else {
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            snake.push(c);
        }
    }
    let (stem, last) = match snake.rsplit_once('_') {
        Some((stem, last)) => (format!("{stem}_"), last.to_owned()),
        None => (String::new(), snake.clone()),
    };
    let irregular = [
        ("person", "people"),
        ("man", "men"),
        ("woman", "women"),
        ("child", "children"),
        ("mouse", "mice"),
    ];
    let plural = if let Some((_, plural)) = irregular.iter().find(|(one, _)| *one == last) {
        (*plural).to_owned()
    } else if last.ends_with('y')
        && !last.ends_with("ay")
        && !last.ends_with("ey")
        && !last.ends_with("oy")
        && !last.ends_with("uy")
    {
        format!("{}ies", &last[..last.len() - 1])
    } else if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|end| last.ends_with(end))
    {
        format!("{last}es")
    } else {
        format!("{last}s")
    };
    format!("{stem}{plural}")
}

/// Imports `versions` into the cache, round after round with `--follow`.
pub(super) async fn import(
    store: &Store,
    options: &ImportOptions,
    source: &SourceIdentity,
    stop: watch::Receiver<bool>,
    progress: &(dyn Fn(&ImportSummary) + Sync),
) -> Result<ImportSummary, ImportError> {
    store
        .check_table(AuditFormat::PaperTrail, TABLE, COLUMNS)
        .await?;
    let optional: Vec<String> = store
        .session
        .query(
            "looking for PaperTrail's optional columns",
            "SELECT attname::text FROM pg_attribute
             WHERE attrelid = to_regclass('versions')
               AND attname IN ('object_changes', 'transaction_id') AND NOT attisdropped",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut reader = Reader {
        store,
        changes: optional.iter().any(|name| name == "object_changes"),
        transactions: optional.iter().any(|name| name == "transaction_id"),
        options,
        tables: Vec::new(),
    };
    let mut sink = Sink::open(options, source)?;
    import_rounds(&mut reader, store, &mut sink, options, stop, progress).await?;
    Ok(sink.summary)
}

struct Reader<'a> {
    store: &'a Store,
    /// The table has `object_changes`, `transaction_id`.
    changes: bool,
    transactions: bool,
    options: &'a ImportOptions,
    /// Each model's table, once found (`None`: no table found).
    tables: Vec<(String, Option<TableName>)>,
}

impl NumberedRows for Reader<'_> {
    type Row = Version;
    const ID: &'static str = "v.id";
    const PAGE_ROWS: i64 = 2_000;

    async fn rows(
        &mut self,
        filter: &str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Version>, ImportError> {
        let changes = if self.changes {
            "v.object_changes::text"
        } else {
            "NULL::text"
        };
        let transaction = if self.transactions {
            "v.transaction_id::int8"
        } else {
            "NULL::int8"
        };
        let sql = format!(
            "SELECT v.id::int8, v.item_type::text, v.item_id::text, v.event::text,
                    v.whodunnit::text, v.object::text, {changes}, {transaction},
                    (extract(epoch FROM v.created_at) * 1000000)::int8,
                    (SELECT n.object::text FROM versions n
                     WHERE n.item_type = v.item_type AND n.item_id = v.item_id AND n.id > v.id
                     ORDER BY n.id LIMIT 1)
             FROM versions v {filter}"
        );
        let rows = self
            .store
            .session
            .query("reading PaperTrail's versions", &sql, parameters)
            .await?;
        let mut versions: Vec<Version> = rows
            .iter()
            .map(|row| Version {
                id: row.get(0),
                item_type: row.get::<_, Option<String>>(1).unwrap_or_default(),
                item_id: row.get::<_, Option<String>>(2).unwrap_or_default(),
                event: row.get::<_, Option<String>>(3).unwrap_or_default(),
                whodunnit: row.get(4),
                object: row.get(5),
                object_changes: row.get(6),
                transaction_id: row.get(7),
                created_at: row.get::<_, Option<i64>>(8).unwrap_or(i64::MIN),
                next_object: row.get(9),
                current: None,
            })
            .collect();
        versions.sort_by_key(|version| version.id);
        Ok(versions)
    }

    async fn write(
        &mut self,
        sink: &mut Sink,
        cursor: &mut SequenceCursor,
        versions: Vec<Version>,
    ) -> Result<(), ImportError> {
        write_rows(self, sink, cursor, versions).await
    }
}

impl Reader<'_> {
    /// The table of a model: named with `--table-of`, else by Rails' naming, if the catalog
    /// has it.
    async fn table_of(&mut self, model: &str) -> Result<Option<TableName>, ImportError> {
        if let Some((_, table)) = self.tables.iter().find(|(known, _)| known == model) {
            return Ok(table.clone());
        }
        let named = self
            .options
            .table_of
            .iter()
            .find(|(known, _)| known == model)
            .map(|(_, table)| table.clone());
        let wanted = named.unwrap_or_else(|| table_for_model(model));
        let found = self
            .store
            .session
            .query_opt(
                "looking up a model's table",
                "SELECT n.nspname::text, c.relname::text FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.oid = to_regclass($1)",
                &[&wanted],
            )
            .await?
            .map(|row| TableName::new(row.get::<_, String>(0), row.get::<_, String>(1)));
        self.tables.push((model.to_owned(), found.clone()));
        Ok(found)
    }

    /// The record as its table holds it now, as `[[column, JSON type, text], ...]`. The id is
    /// cast to the key's type (`key_type`, as the catalog names it), so the key's index finds it.
    async fn current(
        &self,
        table: &TableName,
        key: &str,
        key_type: &str,
        id: &str,
    ) -> Result<Option<String>, ImportError> {
        let sql = format!(
            "SELECT (SELECT json_agg(json_build_array(e.key, json_typeof(e.value), e.value #>> '{{}}'))
                     FROM json_each(row_to_json(t)) e)::text
             FROM {} t WHERE t.{} = $1::text::{key_type}",
            quote_table(table),
            quote_ident(key)
        );
        Ok(self
            .store
            .session
            .query_opt("reading a record as it is now", &sql, &[&id])
            .await?
            .and_then(|row| row.get(0)))
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_table(table: &TableName) -> String {
    format!(
        "{}.{}",
        quote_ident(&table.schema),
        quote_ident(&table.name)
    )
}

/// Writes versions in `id` order: the versions of one `transaction_id` as one transaction (in
/// the order of their last version), else each version as a transaction of its own.
async fn write_rows(
    reader: &mut Reader<'_>,
    sink: &mut Sink,
    cursor: &mut SequenceCursor,
    versions: Vec<Version>,
) -> Result<(), ImportError> {
    // Groups: a transaction's versions, in the order of each group's last version.
    let mut groups: Vec<(Option<i64>, Vec<Version>)> = Vec::new();
    for version in versions {
        match version.transaction_id {
            Some(id) => match groups.iter_mut().find(|(group, _)| *group == Some(id)) {
                Some((_, members)) => members.push(version),
                None => groups.push((Some(id), vec![version])),
            },
            None => groups.push((None, vec![version])),
        }
    }
    groups.sort_by_key(|(_, members)| members.last().map_or(0, |version| version.id));
    for (_, mut members) in groups {
        let mut changes = Vec::with_capacity(members.len());
        let mut time = i64::MIN;
        for version in &mut members {
            time = time.max(version.created_at);
            let Some(table) = reader.table_of(&version.item_type).await? else {
                let error = RowError {
                    row: format!("versions id {}", version.id),
                    field: "item_type".to_owned(),
                    reason: format!(
                        "is {:?}, and no table {} was found: name its table with --table-of {}=SCHEMA.TABLE",
                        version.item_type,
                        table_for_model(&version.item_type),
                        version.item_type
                    ),
                };
                if let Err(error) = sink.bad_row(error) {
                    sink.save(cursor)?;
                    return Err(error);
                }
                continue;
            };
            let catalog = sink
                .catalog_schema(
                    &reader.store.session,
                    reader.store.server_version_num,
                    &table,
                )
                .await?
                .cloned();
            if version.next_object.is_none()
                && version.event != "destroy"
                && let Some(schema) = &catalog
                && let [key] = schema.key.as_slice()
            {
                let column = &schema.columns[*key];
                version.current = reader
                    .current(&table, &column.name, &column.type_name, &version.item_id)
                    .await?;
            }
            match change_of(version, &table, catalog.as_ref()) {
                Ok(change) => changes.push((change, context_of(version))),
                Err(error) => {
                    if let Err(error) = sink.bad_row(error) {
                        sink.save(cursor)?;
                        return Err(error);
                    }
                }
            }
        }
        sink.write(ImportedTransaction::new(None, time, changes))?;
        for version in &members {
            cursor.imported(version.id);
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    const OBJECT: &str = "---\nid: 1\nname: \"Ann\"\nvip: true\nnote:\nbalance: !ruby/object:BigDecimal 18:0.105e2\nsince: 2024-01-02 03:04:05.120000000 Z\ntags:\n- x\n- \"a b\"\nprofile:\n  a:\n  - 1\n  - 2\nraw: !binary |-\n  3q2+7w==\n";

    #[test]
    fn paper_trails_yaml_reads_as_attributes() {
        let attributes = document_of(OBJECT).unwrap();
        let get = |name: &str| {
            attributes
                .iter()
                .find(|(own, _)| own == name)
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(get("note"), Node::Null);
        assert_eq!(
            get("balance"),
            Node::Scalar {
                text: "0.105e2".into(),
                plain: true
            }
        );
        assert_eq!(get("raw"), Node::Binary("3q2+7w==".into()));
        let text = |name: &str, type_name: &str| {
            text_of(&get(name), &Kind::of_type_name(type_name), type_name)
                .unwrap()
                .unwrap()
        };
        assert_eq!(text("balance", "numeric(12,2)"), "10.50");
        assert_eq!(
            text("since", "timestamp with time zone"),
            "2024-01-02 03:04:05.12+00"
        );
        assert_eq!(
            text("since", "timestamp without time zone"),
            "2024-01-02 03:04:05.12"
        );
        assert_eq!(text("tags", "text[]"), r#"{x,"a b"}"#);
        assert_eq!(text("profile", "jsonb"), r#"{"a": [1, 2]}"#);
        assert_eq!(text("raw", "bytea"), "\\xdeadbeef");
        assert_eq!(text("vip", "boolean"), "true");
    }

    #[test]
    fn times_of_day_and_float_specials_take_postgresqls_form() {
        let scalar = |text: &str| Node::Scalar {
            text: text.to_owned(),
            plain: true,
        };
        let time = Kind::Time { millis: false };
        assert_eq!(
            text_of(&scalar("2000-01-01 09:30:05.250000000 Z"), &time, "time").unwrap(),
            Some("09:30:05.25".to_owned())
        );
        for (yaml, shown) in [
            (".inf", "Infinity"),
            ("-.inf", "-Infinity"),
            (".nan", "NaN"),
        ] {
            assert_eq!(
                text_of(&scalar(yaml), &Kind::Float8, "double precision").unwrap(),
                Some(shown.to_owned())
            );
        }
    }

    #[test]
    fn decimals_take_the_columns_scale() {
        assert_eq!(decimal_text("0.105e2", Some(2)), "10.50");
        assert_eq!(decimal_text("-0.5e-1", Some(3)), "-0.050");
        assert_eq!(decimal_text("0.0", Some(2)), "0.00");
        assert_eq!(decimal_text("0.1125e2", None), "11.25");
        assert_eq!(decimal_text("12", Some(0)), "12");
        assert_eq!(
            decimal_text("0.1e9223372036854775807", Some(2)),
            "0.1e9223372036854775807"
        );
    }

    #[test]
    fn ruby_objects_it_cannot_read_are_errors_not_guesses() {
        let error = document_of("---\nitem: !ruby/object:Money\n  cents: 100\n").unwrap_err();
        assert!(error.contains("!ruby/object:Money"), "{error}");
        let zoned = document_of(
            "---\nat: !ruby/object:ActiveSupport::TimeWithZone\n  utc: 2024-01-02 03:04:05.000000000 Z\n  zone: !ruby/object:ActiveSupport::TimeZone\n    name: UTC\n  time: 2024-01-02 03:04:05.000000000 Z\n",
        )
        .unwrap();
        assert_eq!(
            zoned[0].1,
            Node::Scalar {
                text: "2024-01-02 03:04:05.000000000 Z".into(),
                plain: true
            }
        );
        assert!(document_of("---\n- not: attributes\n").is_err());
        assert!(document_of("{\"id\": 1, \"name\": \"Ann\"}").is_ok());
    }

    #[test]
    fn versions_map_to_changes() {
        let table = TableName::new("public", "customers");
        let version = |event: &str, object: Option<&str>, changes: Option<&str>| Version {
            id: 9,
            item_type: "Customer".into(),
            item_id: "1".into(),
            event: event.into(),
            whodunnit: Some("ann".into()),
            object: object.map(str::to_owned),
            object_changes: changes.map(str::to_owned),
            transaction_id: None,
            created_at: 0,
            next_object: None,
            current: None,
        };
        let update = change_of(
            &version(
                "update",
                Some("---\nid: 1\nname: Ann\nplan: free\n"),
                Some("---\nplan:\n- free\n- pro\n"),
            ),
            &table,
            None,
        )
        .unwrap();
        assert_eq!(
            update.after.unwrap(),
            vec![
                ("id".to_owned(), Some("1".to_owned())),
                ("name".to_owned(), Some("Ann".to_owned())),
                ("plan".to_owned(), Some("pro".to_owned()))
            ]
        );
        let destroy = change_of(
            &version("destroy", Some("---\nid: 1\n"), None),
            &table,
            None,
        )
        .unwrap();
        assert!(destroy.after.is_none() && destroy.before.is_some());
        let unknown = change_of(&version("touch", None, None), &table, None).unwrap_err();
        assert_eq!(unknown.field, "event");
        assert!(
            unknown.to_string().starts_with("versions id 9"),
            "{unknown}"
        );
        let bad = change_of(
            &version("update", Some("---\nid: [1\n"), None),
            &table,
            None,
        )
        .unwrap_err();
        assert_eq!(bad.field, "object");
        assert_eq!(
            context_of(&version("create", None, None)).unwrap()["whodunnit"],
            "ann"
        );
    }

    #[test]
    fn rails_names_tables_after_models() {
        assert_eq!(table_for_model("Customer"), "customers");
        assert_eq!(table_for_model("OrderItem"), "order_items");
        assert_eq!(table_for_model("Category"), "categories");
        assert_eq!(table_for_model("Person"), "people");
        assert_eq!(table_for_model("Address"), "addresses");
        assert_eq!(table_for_model("Admin::User"), "admin_users");
        assert_eq!(table_for_model("Key"), "keys");
    }
}
