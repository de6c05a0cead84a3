//! Records: a decompressed CloudTrail log stream -> the raw bytes of each record.
//!
//! Input: any `BufRead` holding `{"Records":[{...},{...}]}` (other top-level keys are
//! skipped). Output: each element of `Records`, byte for byte as CloudTrail wrote it, one at a
//! time. Nothing is parsed into a tree: the splitter tracks only string/escape state and
//! nesting depth, so memory is one record, not one object. Pure and synchronous: no I/O of
//! its own beyond the reader it is given, no clients.
//!
//! Failure policy: malformed structure is a [`SplitError::Malformed`] (permanent); read
//! errors are passed through as [`SplitError::Read`] for the caller to classify.

use std::io::{self, BufRead};

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
            offset: 0,
            saw_records: false,
            after_value: false,
        }
    }

    /// The next record's raw bytes, or `None` at the end of a well-formed log file.
    pub fn next_record(&mut self) -> Result<Option<&[u8]>, SplitError> {
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
                        self.scan_value(Some(b'{'), true)?;
                        self.after_value = true;
                        return Ok(Some(&self.record));
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

    /// Scans to the end of an object or array whose opening bracket was consumed. Only
    /// brackets outside strings count; string contents are skipped escape-aware.
    fn scan_container(&mut self, capture: bool) -> Result<(), SplitError> {
        let mut depth: usize = 1;
        let mut in_string = false;
        let mut escaped = false;
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Err(self.malformed("unexpected end of data inside a value"));
            }
            let mut end = None;
            let mut i = 0;
            while i < buf.len() {
                if in_string {
                    if escaped {
                        escaped = false;
                        i += 1;
                        continue;
                    }
                    // Most of a record is string content: jump to the next quote or escape.
                    match memchr::memchr2(b'"', b'\\', &buf[i..]) {
                        None => i = buf.len(),
                        Some(at) => {
                            i += at;
                            if buf[i] == b'"' {
                                in_string = false;
                            } else {
                                escaped = true;
                            }
                            i += 1;
                        }
                    }
                    continue;
                }
                match buf[i] {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
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

    fn scan_string_rest(&mut self, capture: bool) -> Result<(), SplitError> {
        let mut escaped = false;
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Err(self.malformed("unexpected end of data inside a string"));
            }
            let mut end = None;
            for (i, &b) in buf.iter().enumerate() {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    end = Some(i + 1);
                    break;
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn split_all(input: &[u8], buffer: usize) -> Result<Vec<String>, SplitError> {
        let mut splitter = Splitter::new(BufReader::with_capacity(buffer, input));
        let mut out = Vec::new();
        while let Some(record) = splitter.next_record()? {
            out.push(String::from_utf8(record.to_vec()).unwrap());
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
