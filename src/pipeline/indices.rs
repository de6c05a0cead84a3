//! Indices: where each dataset's events go, `<prefix>-YYYY.MM.DD` by the event's UTC day, or
//! the one data stream that takes them.
//!
//! The sink writes every event there, and a stage that refers to an event's document (an
//! alert naming the index of the event it matched) names it the same way.

use time::{OffsetDateTime, UtcOffset};

use super::Dataset;

/// The index prefix of each dataset: its own, or the first one's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indices {
    prefixes: Vec<(Dataset, String)>,
    streams: Vec<(Dataset, Stream)>,
}

/// A data stream that takes a dataset's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub name: String,
    /// The ingest pipeline each write names (`_none` for none), or `None` for the data
    /// stream's default one.
    pub pipeline: Option<String>,
}

impl Indices {
    /// `prefixes` must not be empty; the first is the one of every dataset not named.
    pub fn new(prefixes: Vec<(Dataset, String)>) -> Self {
        assert!(!prefixes.is_empty(), "at least one index prefix");
        Indices {
            prefixes,
            streams: Vec::new(),
        }
    }

    /// These indices, with each dataset of `streams` written to its data stream instead.
    pub fn with_streams(mut self, streams: Vec<(Dataset, Stream)>) -> Self {
        self.streams = streams;
        self
    }

    /// The data stream `dataset`'s events go to, if it has one.
    pub fn stream(&self, dataset: Dataset) -> Option<&Stream> {
        self.streams
            .iter()
            .find(|(d, _)| *d == dataset)
            .map(|(_, stream)| stream)
    }

    /// The ingest pipeline that writes of `dataset` name, if any.
    pub fn pipeline(&self, dataset: Dataset) -> Option<&str> {
        self.stream(dataset)?.pipeline.as_deref()
    }

    pub fn prefix(&self, dataset: Dataset) -> &str {
        let (_, prefix) = self
            .prefixes
            .iter()
            .find(|(d, _)| *d == dataset)
            .unwrap_or(&self.prefixes[0]);
        prefix
    }

    /// The index (or data stream) of an event of `dataset` at `time`.
    pub fn index(&self, dataset: Dataset, time: OffsetDateTime) -> String {
        match self.stream(dataset) {
            Some(stream) => stream.name.clone(),
            None => index_name(self.prefix(dataset), time),
        }
    }
}

/// `<prefix>-YYYY.MM.DD` of the instant in UTC. Written digit by digit: this runs for every
/// event, and `format!` with padding costs several times more.
pub fn index_name(prefix: &str, time: OffsetDateTime) -> String {
    let date = time.to_offset(UtcOffset::UTC).date();
    let year = date.year();
    if !(0..=9999).contains(&year) {
        return format!(
            "{prefix}-{year:04}.{:02}.{:02}",
            u8::from(date.month()),
            date.day()
        );
    }
    let mut name = String::with_capacity(prefix.len() + 11);
    name.push_str(prefix);
    name.push('-');
    let digit = |n: u32| char::from(b'0' + (n % 10) as u8);
    let year = year as u32;
    name.extend([year / 1000, year / 100, year / 10, year].map(digit));
    name.push('.');
    let month = u32::from(u8::from(date.month()));
    name.extend([month / 10, month].map(digit));
    name.push('.');
    let day = u32::from(date.day());
    name.extend([day / 10, day].map(digit));
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_dataset_with_a_data_stream_goes_there_whatever_its_day() {
        let a = Dataset::new("a", None, None);
        let b = Dataset::new("b", None, None);
        let stream = Stream {
            name: "logs-b-default".into(),
            pipeline: Some("_none".into()),
        };
        let indices =
            Indices::new(vec![(a, "pa".into()), (b, "pb".into())]).with_streams(vec![(b, stream)]);
        let t = datetime!(2024-12-31 23:59:59 UTC);
        assert_eq!(indices.index(a, t), "pa-2024.12.31");
        assert_eq!(indices.index(b, t), "logs-b-default");
        assert_eq!(indices.stream(a), None);
        assert_eq!(
            (indices.pipeline(a), indices.pipeline(b)),
            (None, Some("_none"))
        );
    }

    #[test]
    fn events_go_to_the_utc_day_of_their_time() {
        let table = [
            (datetime!(2024-12-31 23:59:59 UTC), "ct-2024.12.31"),
            (datetime!(2025-01-01 00:00:00 UTC), "ct-2025.01.01"),
            (datetime!(2025-01-01 01:30:00 +02:00), "ct-2024.12.31"),
            (datetime!(0987-06-05 00:00:00 UTC), "ct-0987.06.05"),
            (datetime!(-0001-12-31 00:00:00 UTC), "ct--001.12.31"),
        ];
        for (time, index) in table {
            assert_eq!(index_name("ct", time), index);
        }
    }

    #[test]
    fn a_dataset_without_its_own_prefix_takes_the_first() {
        let a = Dataset::new("a", None, None);
        let b = Dataset::new("b", None, None);
        let c = Dataset::new("c", None, None);
        let indices = Indices::new(vec![(a, "pa".into()), (b, "pb".into())]);
        assert_eq!(indices.prefix(b), "pb");
        assert_eq!(indices.prefix(c), "pa");
    }
}
