//! Records: a decompressed CloudTrail log stream -> the raw bytes of each record.
//!
//! Input: any `BufRead` holding `{"Records":[{...},{...}]}` (other top-level keys are
//! skipped). Output: each element of `Records`, byte for byte as CloudTrail wrote it, one at a
//! time, as a [`Record`]. Nothing is parsed into a tree: the structural scanner
//! ([`crate::format::scan`]) classifies the bytes 64 at a time and the splitter follows only
//! the brackets outside strings, so memory is one record, not one object. In the same pass it notes
//! where the record's own `:` and `,` are, so that [`Record::members`] finds each top-level
//! key and value without scanning the record again. Pure and synchronous: no I/O of its own
//! beyond the reader it is given, no clients.
//!
//! Failure policy: malformed structure is a [`SplitError::Malformed`] (permanent); read
//! errors are passed through as [`SplitError::Read`] for the caller to classify.

use std::io::{self, BufRead};
use std::ops::ControlFlow;

use crate::format::scan::Classifier;
pub use crate::format::scan::{Member, Members};

/// One record may not exceed this: CloudTrail records are at most a few hundred KiB, so a
/// larger "record" means a stream that is not CloudTrail, and we refuse to buffer it.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("read failed: {0}")]
    Read(#[from] io::Error),
    #[error("not a CloudTrail log file: {what} at byte {offset}")]
    Malformed { what: &'static str, offset: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the top-level `{`.
    Start,
    /// Inside the top-level object, before a key or its closing `}`.
    TopLevel,
    /// Inside `Records`, before an element or the closing `]`.
    InRecords,
    /// The top-level object is closed.
    Done,
}

/// Streaming splitter; call [`Splitter::next_record`] until it returns `Ok(None)`.
pub struct Splitter<R> {
    reader: R,
    state: State,
    record: Vec<u8>,
    /// Positions in `record` of its top-level `:` and `,` (outside strings, depth 1).
    separators: Vec<u32>,
    /// Whether a byte of `record` is 0x80 or above.
    non_ascii: bool,
    /// Whether `record` holds a backslash.
    backslash: bool,
    offset: u64,
    saw_records: bool,
    /// Whether a value was just read in the current container (so `,` is expected).
    after_value: bool,
}

impl<R: BufRead> Splitter<R> {
    pub fn new(reader: R) -> Self {
        Splitter {
            reader,
            state: State::Start,
            record: Vec::with_capacity(16 * 1024),
            separators: Vec::with_capacity(256),
            non_ascii: false,
            backslash: false,
            offset: 0,
            saw_records: false,
            after_value: false,
        }
    }

    /// The next record, or `None` at the end of a well-formed log file.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, SplitError> {
        loop {
            match self.state {
                State::Start => {
                    match self.next_token()? {
                        Some(b'{') => self.state = State::TopLevel,
                        _ => return Err(self.malformed("expected a JSON object")),
                    }
                    self.after_value = false;
                }
                State::TopLevel => match self.next_token()? {
                    Some(b'}') => self.state = State::Done,
                    Some(b',') if self.after_value => self.after_value = false,
                    Some(b'"') if !self.after_value => {
                        let is_records = self.read_key()?;
                        if self.next_token()? != Some(b':') {
                            return Err(self.malformed("expected ':' after a key"));
                        }
                        if is_records {
                            if self.next_token()? != Some(b'[') {
                                return Err(self.malformed("Records is not an array"));
                            }
                            self.saw_records = true;
                            self.state = State::InRecords;
                        } else {
                            let first = self.next_token()?;
                            self.scan_value(first, false)?;
                        }
                        self.after_value = !is_records;
                    }
                    _ => return Err(self.malformed("unexpected byte in the top-level object")),
                },
                State::InRecords => match self.next_token()? {
                    Some(b']') => {
                        self.state = State::TopLevel;
                        self.after_value = true;
                    }
                    Some(b',') if self.after_value => self.after_value = false,
                    Some(b'{') if !self.after_value => {
                        self.record.clear();
                        self.separators.clear();
                        self.non_ascii = false;
                        self.backslash = false;
                        self.scan_value(Some(b'{'), true)?;
                        self.after_value = true;
                        return Ok(Some(Record {
                            bytes: &self.record,
                            separators: &self.separators,
                            ascii: !self.non_ascii,
                            backslash: self.backslash,
                        }));
                    }
                    Some(_) if !self.after_value => {
                        return Err(self.malformed("a Records element is not an object"))
                    }
                    _ => return Err(self.malformed("unexpected byte in Records")),
                },
                State::Done => {
                    if self.next_token()?.is_some() {
                        return Err(self.malformed("trailing data after the log object"));
                    }
                    if !self.saw_records {
                        return Err(self.malformed("no Records array"));
                    }
                    return Ok(None);
                }
            }
        }
    }

    fn malformed(&self, what: &'static str) -> SplitError {
        SplitError::Malformed {
            what,
            offset: self.offset,
        }
    }

    /// Skips whitespace and consumes the next byte.
    fn next_token(&mut self) -> Result<Option<u8>, SplitError> {
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(None);
            }
            match buf.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(i) => {
                    let b = buf[i];
                    self.reader.consume(i + 1);
                    self.offset += i as u64 + 1;
                    return Ok(Some(b));
                }
                None => {
                    let n = buf.len();
                    self.reader.consume(n);
                    self.offset += n as u64;
                }
            }
        }
    }

    /// Reads a key whose opening quote was consumed; true when it is `Records`.
    fn read_key(&mut self) -> Result<bool, SplitError> {
        self.record.clear();
        self.record.push(b'"');
        self.scan_string_rest(true)?;
        Ok(self.record == b"\"Records\"")
    }

    /// Scans one JSON value whose first byte `first` was already consumed; with `capture`,
    /// the value's bytes (including `first`) are appended to `self.record`.
    fn scan_value(&mut self, first: Option<u8>, capture: bool) -> Result<(), SplitError> {
        match first {
            Some(open @ (b'{' | b'[')) => {
                if capture {
                    self.record.push(open);
                }
                self.scan_container(capture)
            }
            Some(b'"') => {
                if capture {
                    self.record.push(b'"');
                }
                self.scan_string_rest(capture)
            }
            Some(b) if b == b'-' || b.is_ascii_alphanumeric() => {
                if capture {
                    self.record.push(b);
                }
                self.scan_scalar_rest(capture)
            }
            _ => Err(self.malformed("expected a JSON value")),
        }
    }

    /// Scans to the end of an object or array whose opening bracket was consumed, a block
    /// at a time ([`scan`]): only brackets outside strings count. With `capture`, the
    /// container's own `:` and `,` go to `separators`.
    fn scan_container(&mut self, capture: bool) -> Result<(), SplitError> {
        let mut depth: usize = 1;
        let mut classifier = Classifier::new();
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Err(self.malformed("unexpected end of data inside a value"));
            }
            let base = self.record.len();
            let separators = &mut self.separators;
            let (non_ascii, backslash) = (&mut self.non_ascii, &mut self.backslash);
            let end = classifier.blocks(buf, |offset, block| {
                // Between two brackets the depth holds: the separators of a stretch at
                // depth 1 are the container's own.
                let mut brackets = block.brackets;
                let mut stretch = u64::MAX;
                loop {
                    let bit = brackets.trailing_zeros() as usize;
                    let before = if brackets == 0 {
                        u64::MAX
                    } else {
                        (1 << bit) - 1
                    };
                    if depth == 1 && capture {
                        let mut own = block.separators & stretch & before;
                        while own != 0 {
                            let at = base + offset + own.trailing_zeros() as usize;
                            // A record is at most MAX_RECORD_BYTES: its positions fit a u32.
                            separators.push(at as u32);
                            own &= own - 1;
                        }
                    }
                    if brackets == 0 {
                        *non_ascii |= block.non_ascii != 0;
                        *backslash |= block.backslashes != 0;
                        return ControlFlow::Continue(());
                    }
                    brackets &= brackets - 1;
                    stretch = (u64::MAX << bit) << 1;
                    if matches!(buf[offset + bit], b'{' | b'[') {
                        depth += 1;
                    } else {
                        depth -= 1;
                        if depth == 0 {
                            *non_ascii |= block.non_ascii & before != 0;
                            *backslash |= block.backslashes & before != 0;
                            return ControlFlow::Break(offset + bit + 1);
                        }
                    }
                }
            });
            let n = end.unwrap_or(buf.len());
            if capture {
                if self.record.len() + n > MAX_RECORD_BYTES {
                    return Err(self.malformed("record larger than 64 MiB"));
                }
                self.record.extend_from_slice(&buf[..n]);
            }
            self.reader.consume(n);
            self.offset += n as u64;
            if end.is_some() {
                return Ok(());
            }
        }
    }

    /// Scans to the end of a string whose opening quote was consumed.
    fn scan_string_rest(&mut self, capture: bool) -> Result<(), SplitError> {
        let mut classifier = Classifier::in_string();
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Err(self.malformed("unexpected end of data inside a string"));
            }
            let end = classifier.blocks(buf, |offset, block| match block.quotes {
                0 => ControlFlow::Continue(()),
                quotes => ControlFlow::Break(offset + quotes.trailing_zeros() as usize + 1),
            });
            let n = end.unwrap_or(buf.len());
            if capture {
                if self.record.len() + n > MAX_RECORD_BYTES {
                    return Err(self.malformed("string larger than 64 MiB"));
                }
                self.record.extend_from_slice(&buf[..n]);
            }
            self.reader.consume(n);
            self.offset += n as u64;
            if end.is_some() {
                return Ok(());
            }
        }
    }

    fn scan_scalar_rest(&mut self, capture: bool) -> Result<(), SplitError> {
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            let end = buf
                .iter()
                .position(|&b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace());
            let n = end.unwrap_or(buf.len());
            if capture {
                self.record.extend_from_slice(&buf[..n]);
            }
            self.reader.consume(n);
            self.offset += n as u64;
            if end.is_some() {
                return Ok(());
            }
        }
    }
}

/// One record: its bytes, from `{` to `}`, and where its top-level separators are.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub bytes: &'a [u8],
    separators: &'a [u32],
    ascii: bool,
    backslash: bool,
}

impl<'a> Record<'a> {
    /// Whether every byte is ASCII (and so the record is UTF-8 without a further look).
    pub fn is_ascii(&self) -> bool {
        self.ascii
    }

    /// Where the record's own (top-level) `:` and `,` are.
    pub fn separators(&self) -> &'a [u32] {
        self.separators
    }

    /// Whether a backslash occurs anywhere (else no string in it holds an escape).
    pub fn has_backslash(&self) -> bool {
        self.backslash
    }

    /// The record's top-level members, in order. Only the structure around them is checked
    /// (a string key, `:`, a value, `,` between members); what is inside a value is not.
    pub fn members(&self) -> Members<'a> {
        Members::new(self.bytes, self.separators)
    }
}

/// A record held on its own, for callers that have one record's bytes rather than a log.
#[derive(Debug, Clone)]
pub struct OwnedRecord {
    bytes: Vec<u8>,
    separators: Vec<u32>,
    ascii: bool,
    backslash: bool,
}

impl OwnedRecord {
    /// Scans `bytes`, which must be one JSON object (surrounding whitespace allowed), the way
    /// the splitter scans a record.
    pub fn parse(bytes: &[u8]) -> Result<OwnedRecord, SplitError> {
        let mut splitter = Splitter::new(bytes);
        if splitter.next_token()? != Some(b'{') {
            return Err(splitter.malformed("a record is not a JSON object"));
        }
        splitter.record.clear();
        splitter.non_ascii = false;
        splitter.backslash = false;
        splitter.scan_value(Some(b'{'), true)?;
        if splitter.next_token()?.is_some() {
            return Err(splitter.malformed("trailing data after the record"));
        }
        Ok(OwnedRecord {
            bytes: splitter.record,
            separators: splitter.separators,
            ascii: !splitter.non_ascii,
            backslash: splitter.backslash,
        })
    }

    pub fn as_record(&self) -> Record<'_> {
        Record {
            bytes: &self.bytes,
            separators: &self.separators,
            ascii: self.ascii,
            backslash: self.backslash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;
    use std::ops::Range;

    fn split_all(input: &[u8], buffer: usize) -> Result<Vec<String>, SplitError> {
        let mut splitter = Splitter::new(BufReader::with_capacity(buffer, input));
        let mut out = Vec::new();
        while let Some(record) = splitter.next_record()? {
            out.push(String::from_utf8(record.bytes.to_vec()).unwrap());
        }
        Ok(out)
    }

    #[test]
    fn splits_records_byte_for_byte_at_any_buffer_size() {
        let input = br#" {"Records" : [ {"a":"}]\"{","b":[1,{"c":null}]} ,
            {"eventID":"x","n":-1.5e3,"t":true}
        ], "other": {"k": [1,2]}, "n": 3 }
        "#;
        for buffer in [1, 2, 3, 7, 64, 8192] {
            let records = split_all(input, buffer).expect("splits");
            assert_eq!(
                records,
                vec![
                    r#"{"a":"}]\"{","b":[1,{"c":null}]}"#,
                    r#"{"eventID":"x","n":-1.5e3,"t":true}"#
                ],
                "buffer {buffer}"
            );
        }
    }

    /// (key, value) texts of each member, or the first structural error.
    fn members(record: &Record) -> Result<Vec<(String, String)>, &'static str> {
        let text = |r: Range<usize>| String::from_utf8(record.bytes[r].to_vec()).unwrap();
        record
            .members()
            .map(|m| m.map(|m| (text(m.key), text(m.value))))
            .collect()
    }

    #[test]
    fn members_come_from_the_same_pass_at_any_buffer_size() {
        let input = br#"{"Records":[ { "a" : "x:,y" , "b":{"c":[1,2],"d":":"},
            "e\":\"" :-1.5e3,"f":[{"g":1}] } , {} ]}"#;
        for buffer in [1, 2, 5, 64, 8192] {
            let mut splitter = Splitter::new(BufReader::with_capacity(buffer, &input[..]));
            let first = splitter.next_record().unwrap().unwrap();
            assert_eq!(
                members(&first).unwrap(),
                [
                    (r#""a""#, r#""x:,y""#),
                    (r#""b""#, r#"{"c":[1,2],"d":":"}"#),
                    (r#""e\":\"""#, "-1.5e3"),
                    (r#""f""#, r#"[{"g":1}]"#),
                ]
                .map(|(k, v)| (k.to_string(), v.to_string())),
                "buffer {buffer}"
            );
            let empty = splitter.next_record().unwrap().unwrap();
            assert_eq!(members(&empty).unwrap(), []);
        }
    }

    #[test]
    fn members_report_a_broken_top_level() {
        for bad in [
            &br#"{"a":}"#[..],
            br#"{"a":1,}"#,
            br#"{"a"}"#,
            br#"{"a":1:2}"#,
            br#"{a:1}"#,
            br#"{,}"#,
            br#"{"a":1,,"b":2}"#,
        ] {
            let record = OwnedRecord::parse(bad).expect("balanced, so it splits");
            assert!(
                members(&record.as_record()).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_standalone_record_is_scanned_like_a_split_one() {
        let record = OwnedRecord::parse(b" \n{\"a\": [1, {\"b\": 2}]}\n").unwrap();
        assert_eq!(record.as_record().bytes, br#"{"a": [1, {"b": 2}]}"#);
        assert_eq!(
            members(&record.as_record()).unwrap(),
            [("\"a\"".to_string(), r#"[1, {"b": 2}]"#.to_string())]
        );
        for bad in [&b"[1]"[..], b"{\"a\":1} {}", b"{\"a\":1", b""] {
            assert!(OwnedRecord::parse(bad).is_err());
        }
    }

    #[test]
    fn records_know_whether_they_are_ascii_and_hold_a_backslash() {
        let input =
            b"{\"Records\":[{\"a\":\"x\"},{\"a\":\"\xc3\xa9\"},{\"b\\\\\":1},{\"c\":2}]}\xc3\xa9\\"
                as &[u8];
        for buffer in [1, 3, 64, 8192] {
            let mut splitter = Splitter::new(BufReader::with_capacity(buffer, input));
            let mut seen = Vec::new();
            while let Ok(Some(record)) = splitter.next_record() {
                seen.push((record.is_ascii(), record.has_backslash()));
            }
            let expected = [(true, false), (false, false), (true, true), (true, false)];
            assert_eq!(seen, expected, "buffer {buffer}");
        }
        assert!(!OwnedRecord::parse(b"{\"\xc3\xa9\":1}")
            .unwrap()
            .as_record()
            .is_ascii());
    }

    /// Random records (every kind of value, nested, strings full of quotes, backslashes and
    /// non-ASCII) in random logs at random buffer sizes: each comes out byte for byte and reads
    /// as the same value; a log cut anywhere short of its end is refused.
    #[test]
    fn random_logs_split_as_serde_json_reads_them() {
        use crate::format::scan::samples::{json_value, Random};
        let mut random = Random(7);
        for _ in 0..300 {
            let records: Vec<serde_json::Value> = (0..1 + random.below(5))
                .map(|_| serde_json::json!({ "eventID": json_value(&mut random, 0), "n": [json_value(&mut random, 1)] }))
                .collect();
            let texts: Vec<String> = records.iter().map(|r| r.to_string()).collect();
            let log = format!("{{\"Records\":[{}], \"x\": 1}}", texts.join(" ,\n"));
            for buffer in [1 + random.below(7), 64, 1 + random.below(300)] {
                assert_eq!(split_all(log.as_bytes(), buffer).unwrap(), texts, "{log}");
            }
            let cut = random.below(log.len());
            let refused = split_all(&log.as_bytes()[..cut], 64);
            assert!(
                matches!(refused, Err(SplitError::Malformed { .. })),
                "{cut} of {log}"
            );
        }
    }

    #[test]
    fn invalid_utf8_and_deep_nesting_pass_through_byte_for_byte() {
        let deep = format!("{}1{}", "[".repeat(500), "]".repeat(500));
        for pad in 50..80 {
            let mut record = format!("{{\"a\":\"{}", "x".repeat(pad)).into_bytes();
            record.extend_from_slice(b"\xff\xfe\\\"\xc3\",\"deep\":");
            record.extend_from_slice(deep.as_bytes());
            record.push(b'}');
            let mut log = b"{\"Records\":[".to_vec();
            log.extend_from_slice(&record);
            log.extend_from_slice(b"]}");
            let mut splitter = Splitter::new(BufReader::with_capacity(64, &log[..]));
            let split = splitter.next_record().unwrap().unwrap();
            assert_eq!(split.bytes, &record[..], "pad {pad}");
            assert!(!split.is_ascii() && split.has_backslash());
            assert!(splitter.next_record().unwrap().is_none());
        }
    }

    #[test]
    fn empty_records_is_fine() {
        assert!(split_all(br#"{"Records":[]}"#, 8).unwrap().is_empty());
        assert!(split_all(b"{\"Records\":[\n]}\n", 8).unwrap().is_empty());
    }

    #[test]
    fn rejects_what_is_not_a_log_file() {
        let table: [&[u8]; 10] = [
            b"",
            b"[]",
            b"{}",
            br#"{"Records":{}}"#,
            br#"{"Records":[1]}"#,
            br#"{"Records":[{"a":1}"#,
            br#"{"Records":[{"a":1}{"b":2}]}"#,
            br#"{"Records":[{"a":1}]} x"#,
            br#"{"Records":[,{"a":1}]}"#,
            b"\x1f\x8b\x08\x00",
        ];
        for input in table {
            let err = split_all(input, 4).expect_err(&String::from_utf8_lossy(input));
            assert!(matches!(err, SplitError::Malformed { .. }), "{err:?}");
        }
    }

    #[test]
    fn pretty_printed_real_log_file() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/conformance/events/trailscraper/111111111111_CloudTrail_eu-central-1_20171211T1505Z_A6kvhMoVeCsc7v8U.json"
        );
        let bytes = std::fs::read(path).expect("fixture exists");
        let records = split_all(&bytes, 100).expect("splits");
        let whole: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let expected: Vec<serde_json::Value> = whole["Records"].as_array().unwrap().clone();
        let got: Vec<serde_json::Value> = records
            .iter()
            .map(|r| serde_json::from_str(r).unwrap())
            .collect();
        assert_eq!(got, expected);
    }
}
