//! Folding changes into state: what a record, or a table without a key, held after a run of
//! changes.

use crate::model::LoggedChange;
use crate::model::Op;

use super::plan::Image;

/// The state of one record after its changes, in commit order: the newest image, or `None` when a
/// delete or truncate removed it.
pub fn fold_record<'a>(changes: impl IntoIterator<Item = &'a LoggedChange>) -> Option<Image> {
    changes
        .into_iter()
        .fold(None, |_, change| after_image(change))
}

/// What one change leaves of its record.
pub fn after_image(change: &LoggedChange) -> Option<Image> {
    match change.change.op {
        Op::Delete | Op::Truncate => None,
        Op::Insert | Op::Update | Op::Snapshot => change.change.after.as_ref().map(|row| Image {
            schema: change.schema.clone(),
            row: row.clone(),
        }),
    }
}

/// The rows of a table without a key: a multiset, since equal rows may exist side by side. Deletes
/// and updates remove one row equal to their old image.
#[derive(Debug, Default, Clone)]
pub struct UnkeyedRows {
    rows: Vec<Image>,
}

impl UnkeyedRows {
    pub fn apply(&mut self, change: &LoggedChange) {
        match change.change.op {
            Op::Truncate => self.rows.clear(),
            Op::Delete | Op::Update => {
                if let Some(old) = &change.change.before
                    && let Some(position) = self.rows.iter().position(|image| &image.row == old)
                {
                    self.rows.swap_remove(position);
                }
                if let Some(image) = after_image(change) {
                    self.rows.push(image);
                }
            }
            Op::Insert | Op::Snapshot => self.rows.extend(after_image(change)),
        }
    }

    pub fn into_rows(self) -> Vec<Image> {
        self.rows
    }
}
