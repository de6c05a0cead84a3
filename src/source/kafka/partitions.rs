//! Partitions: what this worker owns of each assigned partition, and the offset it may
//! commit.
//!
//! Each assignment of a partition is a new *generation*: records delivered under an older one
//! (before a rebalance took the partition away, even if it came back) settle into nothing, so
//! a stale settlement can never move a newer owner's offset. Within a generation a
//! [`Watermark`] turns out-of-order settlements into the in-order offset Kafka needs: the
//! committed offset is the next record to read, and everything below it was indexed or
//! dead-lettered.

use std::collections::HashMap;

use crate::pipeline::Watermark;

/// A topic and partition.
pub type TopicPartition = (String, i32);

#[derive(Debug)]
struct Partition {
    generation: u64,
    /// Starts at the first delivered offset.
    mark: Option<Watermark>,
    /// The offset last handed to a commit (and not known to have failed).
    committed: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Partitions {
    owned: HashMap<TopicPartition, Partition>,
    generations: u64,
}

impl Partitions {
    /// The partition is ours from now on (a fresh generation).
    pub fn assign(&mut self, tp: TopicPartition) {
        self.generations += 1;
        self.owned.insert(
            tp,
            Partition {
                generation: self.generations,
                mark: None,
                committed: None,
            },
        );
    }

    /// The partition is no longer ours: returns the offset to commit for it (if it moved
    /// since the last commit). What was delivered and is unsettled is given up: the next
    /// owner reads it again.
    pub fn revoke(&mut self, tp: &TopicPartition) -> Option<u64> {
        let partition = self.owned.remove(tp)?;
        let current = partition.mark?.current();
        (Some(current) != partition.committed).then_some(current)
    }

    /// A record was received; returns its generation, or `None` when the partition is not
    /// (or no longer) ours. Offsets arrive in order within a generation.
    pub fn deliver(&mut self, tp: &TopicPartition, offset: u64) -> Option<u64> {
        let partition = self.owned.get_mut(tp)?;
        let mark = partition.mark.get_or_insert_with(|| Watermark::new(offset));
        if offset < mark.end() {
            // Delivered again (a seek, a fetch retry): it is already accounted for.
            return None;
        }
        mark.deliver(offset);
        Some(partition.generation)
    }

    /// A record of `generation` settled (indexed, already there, or dead-lettered).
    pub fn settle(&mut self, tp: &TopicPartition, generation: u64, offset: u64) {
        if let Some(partition) = self.owned.get_mut(tp) {
            if partition.generation == generation {
                if let Some(mark) = partition.mark.as_mut() {
                    mark.settle(offset);
                }
            }
        }
    }

    /// Whether a record of `generation` still belongs to a current assignment.
    pub fn is_current(&self, tp: &TopicPartition, generation: u64) -> bool {
        self.owned
            .get(tp)
            .is_some_and(|p| p.generation == generation)
    }

    /// The offsets that moved since the last commit; they count as committed from now on
    /// (see [`Partitions::commit_failed`]).
    pub fn take_commits(&mut self) -> Vec<(TopicPartition, u64)> {
        let mut out = Vec::new();
        for (tp, partition) in &mut self.owned {
            if let Some(mark) = &partition.mark {
                let current = mark.current();
                if partition.committed != Some(current) {
                    partition.committed = Some(current);
                    out.push((tp.clone(), current));
                }
            }
        }
        out.sort();
        out
    }

    /// A commit of `offset` failed: it is offered again by the next
    /// [`Partitions::take_commits`].
    pub fn commit_failed(&mut self, tp: &TopicPartition, offset: u64) {
        if let Some(partition) = self.owned.get_mut(tp) {
            if partition.committed == Some(offset) {
                partition.committed = None;
            }
        }
    }

    /// Records of `tp` delivered and not yet settled.
    pub fn has_unsettled(&self, tp: &TopicPartition) -> bool {
        self.owned
            .get(tp)
            .and_then(|p| p.mark.as_ref())
            .is_some_and(Watermark::has_unsettled)
    }

    /// Records delivered and not yet settled, in current generations.
    pub fn unsettled(&self) -> bool {
        self.owned
            .values()
            .filter_map(|p| p.mark.as_ref())
            .any(|m| m.has_unsettled())
    }

    /// Every settled offset was handed to a commit.
    pub fn all_committed(&self) -> bool {
        self.owned.values().all(|p| {
            p.mark
                .as_ref()
                .is_none_or(|m| Some(m.current()) == p.committed)
        })
    }

    /// The offset committed (or being committed) for `tp` by this worker.
    pub fn committed(&self, tp: &TopicPartition) -> Option<u64> {
        self.owned.get(tp).and_then(|p| p.committed)
    }

    pub fn owned(&self) -> Vec<TopicPartition> {
        let mut out: Vec<_> = self.owned.keys().cloned().collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        ("audit".to_string(), p)
    }

    #[test]
    fn commits_only_what_settled_in_order() {
        let mut parts = Partitions::default();
        parts.assign(tp(0));
        let generation = parts.deliver(&tp(0), 5).unwrap();
        parts.deliver(&tp(0), 6).unwrap();
        parts.deliver(&tp(0), 7).unwrap();
        assert_eq!(
            parts.take_commits(),
            [(tp(0), 5)],
            "nothing settled: 5 is next"
        );
        parts.settle(&tp(0), generation, 6);
        assert!(parts.take_commits().is_empty(), "5 is still out");
        parts.settle(&tp(0), generation, 5);
        assert_eq!(parts.take_commits(), [(tp(0), 7)]);
        assert!(parts.unsettled());
        parts.settle(&tp(0), generation, 7);
        assert_eq!(parts.take_commits(), [(tp(0), 8)]);
        assert!(!parts.unsettled());
        assert!(parts.all_committed());
    }

    #[test]
    fn a_revoked_partition_commits_what_settled_and_ignores_the_rest() {
        let mut parts = Partitions::default();
        parts.assign(tp(1));
        let old = parts.deliver(&tp(1), 0).unwrap();
        parts.deliver(&tp(1), 1).unwrap();
        parts.settle(&tp(1), old, 0);
        assert_eq!(parts.revoke(&tp(1)), Some(1));
        assert_eq!(parts.deliver(&tp(1), 2), None, "no longer ours");
        // It comes back: a new generation, starting where the group committed.
        parts.assign(tp(1));
        let new = parts.deliver(&tp(1), 1).unwrap();
        assert_ne!(new, old);
        parts.settle(&tp(1), old, 1);
        assert!(parts.unsettled(), "a stale settlement does not count");
        assert!(!parts.is_current(&tp(1), old));
        parts.settle(&tp(1), new, 1);
        assert_eq!(parts.take_commits(), [(tp(1), 2)]);
        assert_eq!(parts.revoke(&tp(1)), None, "already committed");
    }

    #[test]
    fn a_failed_commit_is_offered_again_and_redeliveries_are_ignored() {
        let mut parts = Partitions::default();
        parts.assign(tp(2));
        let generation = parts.deliver(&tp(2), 10).unwrap();
        parts.settle(&tp(2), generation, 10);
        assert_eq!(parts.take_commits(), [(tp(2), 11)]);
        parts.commit_failed(&tp(2), 11);
        assert!(!parts.all_committed());
        assert_eq!(parts.take_commits(), [(tp(2), 11)]);
        assert_eq!(parts.deliver(&tp(2), 10), None, "already settled");
        assert_eq!(parts.committed(&tp(2)), Some(11));
    }
}
