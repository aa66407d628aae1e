//! Planning a restore: which record goes from which state to which, and in what order.
//!
//! Undoing changes collapses each record's changes into one step (from the state after its newest
//! undone change back to the state before its oldest), and orders the steps so foreign keys hold:
//! re-inserts first (parents before children), then updates, then deletes (children before
//! parents), each newest first.

use std::collections::{HashMap, HashSet};

use crate::model::{
    ChangeId, Image, LoggedChange, Op, RecordChanges, Row, TableName, Value, key_of,
};

use super::HistoryError;

/// `public.orders (id)=(7)`, for messages; the whole row for tables without a key.
pub fn describe(image: &Image) -> String {
    let (names, values): (Vec<&str>, Vec<&Value>) = match image.schema.has_key() {
        true => image
            .schema
            .key
            .iter()
            .filter_map(|&index| {
                Some((
                    image.schema.columns.get(index)?.name.as_str(),
                    image.row.get(index)?,
                ))
            })
            .unzip(),
        false => image
            .schema
            .columns
            .iter()
            .map(|column| column.name.as_str())
            .zip(&image.row)
            .unzip(),
    };
    let values: Vec<String> = values
        .iter()
        .map(|value| super::diff::show_value(value))
        .collect();
    format!(
        "{} ({})=({})",
        image.schema.table,
        names.join(", "),
        values.join(", ")
    )
}

/// Brings one record from `current` (what the cache last saw) to `target`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub table: TableName,
    /// `None`: the record does not exist now.
    pub current: Option<Image>,
    /// `None`: the record must not exist afterwards.
    pub target: Option<Image>,
    /// What the step is for, e.g. `undo change 42 (update)`.
    pub reason: String,
    /// The newest change involved, for ordering.
    pub newest: ChangeId,
}

/// What an undo will do.
#[derive(Debug, Clone)]
pub struct UndoPlan {
    pub steps: Vec<Step>,
    /// Changes the plan undoes, oldest first.
    pub undone: Vec<ChangeId>,
    /// Later changes to the same records that are not undone, oldest first.
    pub later: Vec<LoggedChange>,
    /// Of those, the ones the script's guards will stop at: they left a row other than the script
    /// expects to find it. The others changed nothing the script checks, and are kept.
    pub stopping: Vec<ChangeId>,
}

fn image(change: &LoggedChange, row: &Option<Row>) -> Option<Image> {
    row.as_ref().map(|row| Image {
        schema: change.schema.clone(),
        row: row.clone(),
    })
}

/// Plans undoing the `selected` changes. `records` holds, per record they touch, its changes from
/// the oldest selected on; with `cascade`, the later ones are undone too.
pub fn plan_undo(
    records: &[RecordChanges],
    selected: &HashSet<ChangeId>,
    cascade: bool,
) -> Result<UndoPlan, HistoryError> {
    let mut steps = Vec::new();
    let mut undone = Vec::new();
    let mut later = Vec::new();
    let mut stopping = Vec::new();
    for RecordChanges(changes) in records {
        let newest_selected = changes
            .iter()
            .filter(|change| selected.contains(&change.id))
            .map(|change| change.id)
            .max();
        let Some(newest_selected) = newest_selected else {
            continue;
        };
        let (mut chosen, mut others): (Vec<&LoggedChange>, Vec<&LoggedChange>) = changes
            .iter()
            .partition(|change| cascade || selected.contains(&change.id));
        if let Some(between) = others.iter().find(|change| change.id < newest_selected) {
            return Err(HistoryError::Interleaved {
                change: between.id,
                record: describe_change(between),
            });
        }
        chosen.sort_by_key(|change| change.id);
        for change in &chosen {
            match change.change.op {
                Op::Snapshot | Op::Gap => {
                    return Err(HistoryError::BaselineChange { change: change.id });
                }
                Op::Truncate => {
                    return Err(HistoryError::TruncateUndo {
                        change: change.id,
                        table: change.table.to_string(),
                    });
                }
                _ => {}
            }
        }
        let (Some(oldest), Some(newest)) = (chosen.first(), chosen.last()) else {
            continue;
        };
        let ids: Vec<String> = chosen.iter().map(|change| change.id.to_string()).collect();
        let ops: Vec<&str> = chosen
            .iter()
            .map(|change| change.change.op.as_str())
            .collect();
        let step = Step {
            table: newest.table.clone(),
            current: image(newest, &newest.change.after),
            target: image(oldest, &oldest.change.before),
            reason: format!(
                "undo change{} {} ({})",
                if ids.len() > 1 { "s" } else { "" },
                ids.join(", "),
                ops.join(", ")
            ),
            newest: newest.id,
        };
        others.sort_by_key(|change| change.id);
        stopping.extend(guard_stoppers(&step, &others));
        later.extend(others.drain(..).cloned());
        steps.push(step);
        undone.extend(chosen.iter().map(|change| change.id));
    }
    if steps.is_empty() {
        return Err(HistoryError::NothingToUndo);
    }
    undone.sort();
    later.sort_by_key(|change| change.id);
    stopping.sort();
    order_steps(&mut steps);
    Ok(UndoPlan {
        steps,
        undone,
        later,
        stopping,
    })
}

/// The later changes of one record (oldest first) that the guard of its step will stop at.
///
/// The guard of an update checks the columns it sets, of a delete every known value, and of a
/// re-insert that no row has the key. Later changes stop it when the row they leave fails that
/// check; then the ones listed are those that touched what is checked (or removed or re-created
/// the row). A value the cache does not know counts as changed.
fn guard_stoppers(step: &Step, later: &[&LoggedChange]) -> Vec<ChangeId> {
    let Some(last) = later.last() else {
        return Vec::new();
    };
    let now = image(last, &last.change.after);
    let key_of_image = |image: &Image| -> Vec<Option<Value>> {
        image
            .schema
            .key_column_names()
            .map(|name| image.value(name).cloned())
            .collect()
    };
    match (&step.current, &step.target) {
        // Undoing a delete: the row must not exist.
        (None, Some(target)) => {
            let exists = now.as_ref().is_some_and(|now| {
                !target.schema.has_key() || key_of_image(now) == key_of_image(target)
            });
            if !exists {
                return Vec::new();
            }
            let from = later
                .iter()
                .rposition(|change| change.change.op == Op::Insert)
                .unwrap_or(0);
            later[from..].iter().map(|change| change.id).collect()
        }
        (Some(current), target) => {
            let checked: Vec<&str> = current
                .schema
                .columns
                .iter()
                .zip(&current.row)
                .filter(|(column, value)| {
                    value.is_available()
                        && match target {
                            // An update checks the columns it sets.
                            Some(target) => target.value(&column.name) != Some(value),
                            // A delete checks every known value.
                            None => true,
                        }
                })
                .map(|(column, _)| column.name.as_str())
                .collect();
            let key: Vec<&str> = current.schema.key_column_names().collect();
            let located = |row: &Image| match current.schema.has_key() {
                true => key_of_image(row) == key_of_image(current),
                false => true,
            };
            let holds = now.as_ref().is_some_and(|now| {
                located(now)
                    && checked.iter().all(|name| {
                        now.value(name).is_some() && now.value(name) == current.value(name)
                    })
            });
            if holds {
                return Vec::new();
            }
            later
                .iter()
                .filter(
                    |change| match (&change.change.before, &change.change.after) {
                        (Some(before), Some(after)) => {
                            let touched = |name: &str| {
                                let index = change.schema.column_index(name);
                                let value =
                                    |row: &Row| index.and_then(|index| row.get(index)).cloned();
                                let (old, new) = (value(before), value(after));
                                old != new || !new.as_ref().is_some_and(Value::is_available)
                            };
                            checked.iter().chain(&key).any(|name| touched(name))
                        }
                        _ => true,
                    },
                )
                .map(|change| change.id)
                .collect()
        }
        (None, None) => Vec::new(),
    }
}

/// One step that brings a record from its newest known state to its state at a moment.
pub fn plan_restore(
    table: TableName,
    current: Option<Image>,
    target: Option<Image>,
    reason: String,
    newest: ChangeId,
) -> Step {
    Step {
        table,
        current,
        target,
        reason,
        newest,
    }
}

/// `update of public.orders (id)=(7)`; `ALTER TABLE of public.orders` for a schema change.
pub fn describe_change(change: &LoggedChange) -> String {
    let schema = &change.schema;
    if let Some(schema_change) = &change.schema_change {
        return format!("{} of {}", schema_change.command, schema.table);
    }
    let key = key_of(
        schema,
        change.change.identifying_row().unwrap_or(&Vec::new()),
    );
    let row = change.change.identifying_row().cloned().unwrap_or_default();
    let described = match schema.has_key() {
        true => {
            let names: Vec<&str> = schema.key_column_names().collect();
            let values: Vec<String> = key.iter().map(super::diff::show_value).collect();
            format!(
                "{} ({})=({})",
                schema.table,
                names.join(", "),
                values.join(", ")
            )
        }
        false => describe(&Image {
            schema: schema.clone(),
            row,
        }),
    };
    format!("{} of {described}", change.change.op)
}

/// Orders steps so foreign keys hold at every statement.
fn order_steps(steps: &mut [Step]) {
    let depth = foreign_key_depths(steps);
    let table_depth = |step: &Step| depth.get(&step.table).copied().unwrap_or(0);
    steps.sort_by(|a, b| {
        let phase = |step: &Step| match (&step.current, &step.target) {
            (None, Some(_)) => 0,
            (Some(_), Some(_)) => 1,
            _ => 2,
        };
        phase(a).cmp(&phase(b)).then_with(|| match phase(a) {
            0 => table_depth(a)
                .cmp(&table_depth(b))
                .then(b.newest.cmp(&a.newest)),
            2 => table_depth(b)
                .cmp(&table_depth(a))
                .then(b.newest.cmp(&a.newest)),
            _ => b.newest.cmp(&a.newest),
        })
    });
}

/// For each table in the steps, how many foreign-key hops separate it from a table that references
/// no other table among them (parents 0, their children 1, ...). Self-references and cycles are
/// ignored.
fn foreign_key_depths(steps: &[Step]) -> HashMap<TableName, usize> {
    let mut references: HashMap<TableName, Vec<TableName>> = HashMap::new();
    for step in steps {
        for image in [&step.current, &step.target].into_iter().flatten() {
            let entry = references.entry(step.table.clone()).or_default();
            for key in &image.schema.foreign_keys {
                if key.referenced_table != step.table && !entry.contains(&key.referenced_table) {
                    entry.push(key.referenced_table.clone());
                }
            }
        }
    }
    fn depth(
        table: &TableName,
        references: &HashMap<TableName, Vec<TableName>>,
        visiting: &mut HashSet<TableName>,
    ) -> usize {
        if !visiting.insert(table.clone()) {
            return 0;
        }
        let result = references
            .get(table)
            .into_iter()
            .flatten()
            .filter(|parent| references.contains_key(*parent))
            .map(|parent| 1 + depth(parent, references, visiting))
            .max()
            .unwrap_or(0);
        visiting.remove(table);
        result
    }
    references
        .keys()
        .map(|table| {
            (
                table.clone(),
                depth(table, &references, &mut HashSet::new()),
            )
        })
        .collect()
}
