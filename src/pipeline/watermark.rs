//! Watermark: in-order acknowledgement for sources whose positions are ordered.
//!
//! A Kafka partition may only commit offset N once every record below N settled, and a
//! backfill may only advance its checkpoint past objects that all settled, although the sink
//! settles events out of order. A [`Watermark`] is told each position as it is delivered and
//! as it settles, and answers how far everything is settled: the lowest delivered position
//! not yet settled, or one past the highest delivered when all are. Positions may have gaps
//! (compacted topics, transaction markers); only delivered positions count.

use std::collections::BTreeSet;

#[derive(Debug, Clone, Default)]
pub struct Watermark {
    unsettled: BTreeSet<u64>,
    /// One past the highest position delivered so far.
    end: u64,
    /// The last value [`Watermark::settle`] reported.
    reported: u64,
}

impl Watermark {
    /// Starts at `start` (the committed offset, the checkpoint) with nothing delivered.
    pub fn new(start: u64) -> Self {
        Watermark {
            unsettled: BTreeSet::new(),
            end: start,
            reported: start,
        }
    }

    /// A position was handed to the pipeline. Positions are delivered in increasing order.
    pub fn deliver(&mut self, position: u64) {
        debug_assert!(position >= self.end, "positions are delivered in order");
        self.unsettled.insert(position);
        self.end = self.end.max(position + 1);
    }

    /// A delivered position settled. Returns the new watermark when it moved: everything
    /// below it settled (the offset to commit, the checkpoint to store).
    pub fn settle(&mut self, position: u64) -> Option<u64> {
        self.unsettled.remove(&position);
        let now = self.current();
        (now > self.reported).then(|| {
            self.reported = now;
            now
        })
    }

    /// One past the highest position delivered (the start when none was).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Some delivered position has not settled yet.
    pub fn has_unsettled(&self) -> bool {
        !self.unsettled.is_empty()
    }

    /// Everything below this position settled.
    pub fn current(&self) -> u64 {
        self.unsettled.first().copied().unwrap_or(self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_only_past_contiguous_settled_positions() {
        let mut mark = Watermark::new(10);
        for offset in [10, 11, 13, 14] {
            mark.deliver(offset);
        }
        assert_eq!(mark.settle(11), None, "10 is still out");
        assert_eq!(mark.settle(14), None);
        assert_eq!(mark.settle(10), Some(13), "12 was never delivered: a gap");
        assert_eq!(mark.settle(13), Some(15));
        assert_eq!(mark.current(), 15);
        assert_eq!(mark.settle(13), None, "settling twice changes nothing");
    }

    #[test]
    fn nothing_delivered_stays_at_the_start() {
        let mut mark = Watermark::new(7);
        assert_eq!(mark.current(), 7);
        assert_eq!(mark.settle(3), None);
    }
}
