//! Transactions folded to one row. A folded transaction shows its newest row (the *summary*) and
//! hides the rest; ranks stay those of the index, and the list maps between ranks and the rows it
//! shows. A transaction's changes are consecutive ids, so under any filter its matching rows are
//! consecutive ranks.

use std::collections::BTreeMap;

/// One folded transaction: its summary row's rank and how many rows after it are hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fold {
    pub tx_id: i64,
    pub hidden: u64,
}

/// The folded transactions of a list, by the rank of their summary row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folds {
    by_rank: BTreeMap<u64, Fold>,
}

impl Folds {
    /// Folds the transaction whose rows are `count` ranks from `summary` on.
    pub fn fold(&mut self, tx_id: i64, summary: u64, count: u64) {
        self.unfold(tx_id);
        if count > 1 {
            self.by_rank.insert(
                summary,
                Fold {
                    tx_id,
                    hidden: count - 1,
                },
            );
        }
    }

    pub fn unfold(&mut self, tx_id: i64) {
        self.by_rank.retain(|_, fold| fold.tx_id != tx_id);
    }

    pub fn is_folded(&self, tx_id: i64) -> bool {
        self.by_rank.values().any(|fold| fold.tx_id == tx_id)
    }

    /// The fold whose summary row is at `rank`.
    pub fn at(&self, rank: u64) -> Option<Fold> {
        self.by_rank.get(&rank).copied()
    }

    pub fn tx_ids(&self) -> Vec<i64> {
        self.by_rank.values().map(|fold| fold.tx_id).collect()
    }

    /// Rows hidden in all.
    pub fn hidden(&self) -> u64 {
        self.by_rank.values().map(|fold| fold.hidden).sum()
    }

    /// Rows arrived above every fold: their ranks move down by `rows`.
    pub fn shift(&mut self, rows: u64) {
        self.by_rank = std::mem::take(&mut self.by_rank)
            .into_iter()
            .map(|(rank, fold)| (rank + rows, fold))
            .collect();
    }

    /// Where the row at `rank` is shown: its place among shown rows (a hidden row is shown as its
    /// transaction's summary).
    pub fn shown_index(&self, rank: u64) -> u64 {
        let hidden_before: u64 = self
            .by_rank
            .range(..rank)
            .map(|(summary, fold)| fold.hidden.min(rank - summary))
            .sum();
        rank - hidden_before
    }

    /// The rank of the `index`th shown row.
    pub fn rank_of_shown(&self, index: u64) -> u64 {
        let mut rank = index;
        for (summary, fold) in &self.by_rank {
            if *summary < rank {
                rank += fold.hidden;
            } else {
                break;
            }
        }
        rank
    }

    /// `rank` itself if it is shown, else the summary row that hides it.
    pub fn shown(&self, rank: u64) -> u64 {
        self.rank_of_shown(self.shown_index(rank))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn folded_rows_are_skipped_both_ways() {
        let mut folds = Folds::default();
        folds.fold(7, 2, 4); // ranks 3, 4, 5 hidden behind 2
        folds.fold(9, 8, 2); // rank 9 hidden behind 8
        assert_eq!(folds.hidden(), 4);
        let shown: Vec<u64> = (0..8).map(|index| folds.rank_of_shown(index)).collect();
        assert_eq!(shown, vec![0, 1, 2, 6, 7, 8, 10, 11]);
        for (index, rank) in shown.iter().enumerate() {
            assert_eq!(folds.shown_index(*rank), index as u64);
        }
        assert_eq!(folds.shown(4), 2, "a hidden row shows as its summary");
        assert_eq!(folds.shown(9), 8);
        assert_eq!(folds.shown(6), 6);
    }

    #[test]
    fn new_rows_above_move_every_fold_and_unfolding_restores_the_rows() {
        let mut folds = Folds::default();
        folds.fold(7, 2, 4);
        folds.shift(3);
        assert_eq!(folds.at(5).map(|fold| fold.tx_id), Some(7));
        assert_eq!(folds.rank_of_shown(6), 9);
        assert!(folds.is_folded(7));
        folds.unfold(7);
        assert_eq!(folds.rank_of_shown(6), 6);
        folds.fold(8, 1, 1);
        assert_eq!(
            folds.hidden(),
            0,
            "a transaction of one row has nothing to fold"
        );
    }
}
