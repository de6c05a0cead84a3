//! Object: which format an S3 object is in (`--object-format auto|cloudtrail|ndjson`).
//!
//! With both formats allowed, an object whose first non-blank bytes open `{"Records"` is a
//! CloudTrail log; any other object is JSON lines. Only the first bytes are looked at (and
//! then read again by the chosen format), so the object is still streamed.

use std::io::{self, BufRead, Read};

use super::cloudtrail::CloudTrail;
use super::json_lines::JsonLines;
use super::payload::{Format, FormatError, Item, PayloadContext, Summary};
use crate::pipeline::Closed;

/// The first bytes of a CloudTrail log, after the opening brace and whitespace.
const RECORDS_KEY: &[u8] = b"\"Records\"";
/// How far to look for the first key before deciding; whitespace beyond this means JSON lines.
const SNIFF_BYTES: usize = 4096;

/// The formats an object may be in; at least one is set.
#[derive(Debug, Clone)]
pub struct Objects {
    pub cloudtrail: Option<CloudTrail>,
    pub json_lines: Option<JsonLines>,
}

/// What the first bytes of an object say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    CloudTrail,
    JsonLines,
}

/// `start` is the object's first bytes (all of them, when it is shorter than
/// [`SNIFF_BYTES`]).
pub fn detect(start: &[u8]) -> Detected {
    let rest = start.trim_ascii_start();
    match rest.split_first() {
        Some((b'{', after)) if after.trim_ascii_start().starts_with(RECORDS_KEY) => {
            Detected::CloudTrail
        }
        _ => Detected::JsonLines,
    }
}

impl Format for Objects {
    fn read(
        &self,
        input: &mut dyn BufRead,
        context: &PayloadContext<'_>,
        emit: &mut dyn FnMut(Item) -> Result<(), Closed>,
    ) -> Result<Summary, FormatError> {
        let (cloudtrail, json_lines) = match (&self.cloudtrail, &self.json_lines) {
            (Some(cloudtrail), None) => return cloudtrail.read(input, context, emit),
            (None, Some(json_lines)) => return json_lines.read(input, context, emit),
            (Some(cloudtrail), Some(json_lines)) => (cloudtrail, json_lines),
            (None, None) => unreachable!("at least one object format is allowed"),
        };
        let mut start = Vec::with_capacity(SNIFF_BYTES);
        (&mut *input)
            .take(SNIFF_BYTES as u64)
            .read_to_end(&mut start)
            .map_err(FormatError::Read)?;
        let detected = detect(&start);
        let mut whole = Prefixed {
            start,
            at: 0,
            rest: input,
        };
        match detected {
            Detected::CloudTrail => cloudtrail.read(&mut whole, context, emit),
            Detected::JsonLines => json_lines.read(&mut whole, context, emit),
        }
    }
}

/// `start`, then the rest of the stream, without copying either.
struct Prefixed<'a> {
    start: Vec<u8>,
    at: usize,
    rest: &'a mut dyn BufRead,
}

impl Read for Prefixed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.fill_buf()?.read(buf)?;
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Prefixed<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.at < self.start.len() {
            Ok(&self.start[self.at..])
        } else {
            self.rest.fill_buf()
        }
    }

    fn consume(&mut self, n: usize) {
        if self.at < self.start.len() {
            self.at += n;
        } else {
            self.rest.consume(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_records_key_first_is_cloudtrail_anything_else_json_lines() {
        for cloudtrail in [
            &b"{\"Records\":[]}"[..],
            b"\n  {\r\n \"Records\" : [",
            b"{\"Records\"",
        ] {
            assert_eq!(detect(cloudtrail), Detected::CloudTrail);
        }
        for lines in [
            &b"{\"eventVersion\":\"1.08\",\"Records\":[]}"[..],
            b"{\"specversion\":\"1.0\"}\n",
            b"",
            b"   ",
            b"{\"Rec",
            b"[{\"Records\":[]}]",
        ] {
            assert_eq!(
                detect(lines),
                Detected::JsonLines,
                "{:?}",
                String::from_utf8_lossy(lines)
            );
        }
    }
}
