//! Restore scripts and the cache's column rules: a script never writes a masked or excluded
//! value, and never checks a row against one.
//!
//! Run over a plan's steps once their rows are in the table's newest schema version (both sides
//! of a step then name the same columns), before they are rendered. A protected column the script would have to
//! write (a value that differs between the row now and the row wanted, or any value of a row put
//! back by an insert) is an error naming the column and its rule, unless the user asked to leave
//! protected columns as they are; then the step writes the other columns, and the script says
//! which it left alone. A masked NULL is a real NULL and is written as one.

use std::sync::Arc;

use crate::model::{ColumnRule, ColumnRules, Image, Protection, RelationSchema, Value};

use super::HistoryError;
use super::plan::{Step, describe};

/// Makes each step safe to render under `rules`; returns the notes the script's header carries.
pub fn protect_steps(
    rules: &ColumnRules,
    steps: &mut [Step],
    leave_protected: bool,
) -> Result<Vec<String>, HistoryError> {
    let mut notes = Vec::new();
    if rules.is_empty() {
        return Ok(notes);
    }
    for step in steps.iter_mut() {
        let Some(schema) = step
            .current
            .as_ref()
            .or(step.target.as_ref())
            .map(|image| image.schema.clone())
        else {
            continue;
        };
        for (index, column) in schema.columns.iter().enumerate() {
            let Some(rule) = rules.rule_for(&schema.table, &column.name) else {
                continue;
            };
            let record = step
                .current
                .as_ref()
                .or(step.target.as_ref())
                .map(describe)
                .unwrap_or_default();
            // Without a key the row is found by all its values: one that is not known would
            // leave the match too loose to be sure of the row.
            if schema.key.contains(&index) || (!schema.has_key() && step.current.is_some()) {
                return Err(HistoryError::ProtectedKey {
                    record,
                    column: column.name.clone(),
                    rule: rule.to_string(),
                });
            }
            let value_of = |image: &Option<Image>| {
                image
                    .as_ref()
                    .and_then(|image| image.value(&column.name))
                    .cloned()
            };
            let (now, wanted) = (value_of(&step.current), value_of(&step.target));
            let must_write = match (&step.current, &now, &wanted) {
                // A delete writes nothing.
                (_, _, None) => false,
                // An insert writes every column; a masked NULL is NULL.
                (None, _, Some(wanted)) => *wanted != Value::Null,
                // An update writes what differs (equal masks of a hash are equal values).
                // Only a hash tells equal values: four characters or nothing say too little.
                (Some(_), now, Some(wanted)) => {
                    rule.protection != Protection::Hash || now.as_ref() != Some(wanted)
                }
            };
            if must_write && !leave_protected {
                return Err(HistoryError::Protected {
                    record,
                    column: column.name.clone(),
                    rule: rule.to_string(),
                    reason: step.reason.clone(),
                    what: what_it_holds(rule),
                });
            }
            if must_write {
                let note = format!(
                    "column {} of {} is left as it is ({}: {}); --leave-protected",
                    column.name,
                    schema.table,
                    rule,
                    what_it_holds(rule)
                );
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
            // From here the column is neither written nor checked by a guard: unknown on both
            // sides of an update or delete, left out of an insert (the table's default applies).
            let blank = |image: &mut Image| {
                if let Some(slot) = image
                    .schema
                    .column_index(&column.name)
                    .and_then(|at| image.row.get_mut(at))
                {
                    *slot = Value::Unavailable;
                }
            };
            match (&mut step.current, &mut step.target) {
                (None, Some(target)) => {
                    if let (true, Some(at)) = (must_write, target.schema.column_index(&column.name))
                    {
                        *target = without_column(target, at);
                    }
                }
                (current, target) => {
                    for image in [current, target].into_iter().flatten() {
                        blank(image);
                    }
                }
            }
        }
    }
    Ok(notes)
}

fn what_it_holds(rule: &ColumnRule) -> &'static str {
    match rule.protection {
        Protection::Exclude => "the cache never stored its values",
        Protection::Hash => "the cache holds a keyed hash of its values, not the values",
        Protection::Last4 => "the cache holds only the last four characters of its values",
    }
}

/// The image without one column (its schema too, the key's positions moved down).
fn without_column(image: &Image, at: usize) -> Image {
    let mut schema: RelationSchema = (*image.schema).clone();
    schema.columns.remove(at);
    schema.key = schema
        .key
        .iter()
        .filter(|&&index| index != at)
        .map(|&index| if index > at { index - 1 } else { index })
        .collect();
    let mut row = image.row.clone();
    if at < row.len() {
        row.remove(at);
    }
    Image {
        schema: Arc::new(schema),
        row,
    }
}
