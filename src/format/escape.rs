//! Escape: text -> a JSON string, a block of bytes at a time.
//!
//! Input: UTF-8 bytes. Output: the bytes of one JSON string (`"` and `\` escaped, control
//! bytes as their short escapes or `\u00XX`, as `serde_json` writes them), with no raw line
//! break. Each block (16 bytes with SSE2 on x86-64, else 8 in a `u64`) is tested once for
//! the bytes that need an escape and stored whole: plain text costs a store per block, a
//! JSON object's text a store per quote.
//!
//! The same blocks find where a JSON string ends ([`string_end`]) for the readers of records,
//! and one pass over a record says whether it is ASCII and holds a backslash ([`survey`]).
//!
//! Pure: no I/O, no allocation beyond `out`'s growth.

const ONES: u64 = 0x0101_0101_0101_0101;
const LOWS: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that is zero, exactly (no borrow between bytes).
fn zeros(word: u64) -> u64 {
    !(((word & LOWS) + LOWS) | word | LOWS)
}

/// The high bit of each byte of `word` that is `\`.
fn backslashes(word: u64) -> u64 {
    zeros(word ^ (ONES * u64::from(b'\\')))
}

/// The high bit of each byte of `word` that is `"` or `\`.
fn quotes(word: u64) -> u64 {
    zeros(word ^ (ONES * u64::from(b'"'))) | backslashes(word)
}

/// The high bit of each byte of `word` below 0x20 (a control byte).
fn controls(word: u64) -> u64 {
    !(((word & LOWS) + ONES * (0x80 - 0x20)) | word) & HIGHS
}

/// The high bit of each byte of `word` that a JSON string must escape.
fn specials(word: u64) -> u64 {
    quotes(word) | controls(word)
}

/// Whether any byte of `bytes` needs an escape inside a JSON string.
pub fn needs_escape(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        if specials(u64::from_le_bytes(chunk.try_into().expect("eight bytes"))) != 0 {
            return true;
        }
    }
    words.remainder().iter().any(|&b| special(b))
}

/// Whether `bytes` holds a backslash (a JSON string's escape), eight bytes at a time: for the
/// short values of a record, quicker than a call to `memchr`.
pub fn has_backslash(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        if backslashes(word) != 0 {
            return true;
        }
    }
    // Fewer than eight bytes: a plain loop (`contains` would call `memchr`).
    words
        .remainder()
        .iter()
        .fold(false, |found, &b| found | (b == b'\\'))
}

/// What one pass over a record finds: whether it is all ASCII (then it is UTF-8, with no
/// further check), and whether it holds a backslash (else none of its strings has an escape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Survey {
    pub ascii: bool,
    pub backslash: bool,
}

/// [`Survey`] of `bytes`, 32 bytes at a time with AVX2 where the processor has it, else eight
/// in a `u64`: one pass where a UTF-8 check and a search for a backslash would be two.
pub fn survey(bytes: &[u8]) -> Survey {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor has AVX2 (checked just above).
            return unsafe { survey_avx2(bytes) };
        }
    }
    survey_words(bytes)
}

/// [`survey`] with AVX2: every block ORed together (a high bit anywhere: not ASCII) and its
/// backslashes marked, with no branch per block.
///
/// # Safety
/// The processor must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn survey_avx2(bytes: &[u8]) -> Survey {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
        _mm256_set1_epi8, _mm256_setzero_si256,
    };
    let mut any = _mm256_setzero_si256();
    let mut marks = _mm256_setzero_si256();
    let backslash = _mm256_set1_epi8(b'\\' as i8);
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        // SAFETY: the block holds 32 bytes, and the load is an unaligned one.
        let block = unsafe { _mm256_loadu_si256(block.as_ptr().cast::<__m256i>()) };
        any = _mm256_or_si256(any, block);
        marks = _mm256_or_si256(marks, _mm256_cmpeq_epi8(block, backslash));
    }
    let rest = survey_words(blocks.remainder());
    Survey {
        ascii: _mm256_movemask_epi8(any) == 0 && rest.ascii,
        backslash: _mm256_movemask_epi8(marks) != 0 || rest.backslash,
    }
}

/// [`survey`] eight bytes at a time.
fn survey_words(bytes: &[u8]) -> Survey {
    let (mut any, mut marks) = (0u64, 0u64);
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        any |= word;
        marks |= backslashes(word);
    }
    let rest = words.remainder();
    Survey {
        ascii: any & HIGHS == 0 && rest.is_ascii(),
        backslash: marks != 0 || has_backslash(rest),
    }
}

/// Where the string whose text starts at `from` of `bytes` ends: the place of its closing
/// quote, and whether it holds a backslash (an escape); `None` when it does not end. A block
/// at a time (16 bytes with SSE2 on x86-64, 8 in a `u64` elsewhere): a record's strings are
/// short, and most hold no escape.
#[inline]
pub fn string_end(bytes: &[u8], from: usize) -> Option<(usize, bool)> {
    #[cfg(target_arch = "x86_64")]
    return string_end_by::<Sse2>(bytes, from);
    #[cfg(not(target_arch = "x86_64"))]
    return string_end_by::<Swar>(bytes, from);
}

#[inline(always)]
fn string_end_by<B: Block>(bytes: &[u8], from: usize) -> Option<(usize, bool)> {
    let mut at = from;
    let mut escaped = false;
    loop {
        let found = match bytes.get(at..at + B::WIDTH) {
            Some(block) => match B::find(block) {
                n if n == B::WIDTH => {
                    at += B::WIDTH;
                    continue;
                }
                n => at + n,
            },
            None => {
                at + bytes
                    .get(at..)?
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\')?
            }
        };
        if bytes[found] == b'"' {
            return Some((found, escaped));
        }
        // A backslash: the byte after it is escaped, whatever it is.
        escaped = true;
        at = found + 2;
    }
}

fn special(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Appends `text` as a JSON string, quotes included.
#[inline]
pub fn write_str(out: &mut Vec<u8>, text: &[u8]) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    write_inner(out, text);
    out.push(b'"');
}

/// Appends the escaped inside of the JSON string of `text` (no quotes).
#[inline(never)]
fn write_inner(out: &mut Vec<u8>, text: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            // SAFETY: the processor has SSSE3 and POPCNT (checked just above).
            unsafe { shuffled::write(out, text) };
        } else {
            write_blocks::<Sse2>(out, text);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    write_blocks::<Swar>(out, text);
}

/// [`write_inner`] with SSSE3, for text with many quotes (a JSON object's text has two per
/// key and per string value): each half of a 16-byte block goes through one byte shuffle
/// that puts a backslash before each of its quotes and backslashes, whatever their number,
/// where the SSE2 way stores a piece per quote. A block with a control byte (rare) is
/// written a byte at a time.
#[cfg(target_arch = "x86_64")]
mod shuffled {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm_shuffle_epi8, _mm_storeu_si128, _mm_unpackhi_epi64, _mm_unpacklo_epi64,
    };

    use super::{escape, padded, special};

    /// Per mask of the quotes and backslashes among 8 bytes, the shuffle that writes them
    /// escaped: lane `n` of the result takes byte `TABLE[mask][n]` of the 8 bytes followed by
    /// 8 backslashes (index 8: a backslash). The lanes past `8 + ones(mask)` are not used.
    static TABLE: [[u8; 16]; 256] = table();

    const fn table() -> [[u8; 16]; 256] {
        let mut table = [[0u8; 16]; 256];
        let mut mask = 0;
        while mask < 256 {
            let (mut from, mut to) = (0, 0);
            while from < 8 {
                if mask & 1 << from != 0 {
                    table[mask][to] = 8;
                    to += 1;
                }
                table[mask][to] = from as u8;
                to += 1;
                from += 1;
            }
            mask += 1;
        }
        table
    }

    /// Appends the escaped inside of the JSON string of `text`.
    ///
    /// # Safety
    /// The processor must have SSSE3 and POPCNT.
    #[target_feature(enable = "ssse3,popcnt")]
    pub(super) unsafe fn write(out: &mut Vec<u8>, text: &[u8]) {
        // Quotes and backslashes double at most, and a block's stores reach at most 32 bytes
        // past the length: this room stays reserved from block to block (a block written a
        // byte at a time reserves it again). The length is kept here while blocks are
        // written, and given to `out` at the end (or before a block written a byte at a
        // time): read back from `out` after every block's stores, it would chain each block
        // to the one before.
        out.reserve(text.len() * 2 + 32);
        let mut len = out.len();
        let mut at = 0;
        while at < text.len() {
            let n = (text.len() - at).min(16);
            // The block, then spaces (which need no escape) past the end of the text.
            let block = match text.get(at..at + 16) {
                Some(whole) => load(whole),
                None => load(&padded(&text[at..])),
            };
            let quote = _mm_cmpeq_epi8(block, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(block, _mm_set1_epi8(b'\\' as i8));
            let below = _mm_set1_epi8(0x1f);
            let control = _mm_cmpeq_epi8(_mm_max_epu8(block, below), below);
            if _mm_movemask_epi8(control) != 0 {
                // SAFETY: the bytes up to `len` are written (below).
                unsafe { out.set_len(len) };
                for &b in &text[at..at + n] {
                    if special(b) {
                        escape(out, b);
                    } else {
                        out.push(b);
                    }
                }
                at += n;
                out.reserve((text.len() - at) * 2 + 32);
                len = out.len();
                continue;
            }
            let marks = _mm_movemask_epi8(_mm_or_si128(quote, backslash)) as u32;
            // A block with no quote or backslash goes the same way (its shuffles keep every
            // byte where it is): whether a block has one follows the text, and a branch on it
            // would be mispredicted often.
            // SAFETY: the spare capacity holds 32 bytes past `len` (reserved above, and the
            // block writes at most twice its `n` bytes), so both stores are inside it; the
            // first `n + ones(marks)` bytes after `len` are then written.
            unsafe {
                let to = out.as_mut_ptr().add(len);
                let fill = _mm_set1_epi8(b'\\' as i8);
                let (low, high) = (marks & 0xff, marks >> 8);
                let first = _mm_shuffle_epi8(_mm_unpacklo_epi64(block, fill), shuffle(low));
                _mm_storeu_si128(to.cast::<__m128i>(), first);
                let second = _mm_shuffle_epi8(_mm_unpackhi_epi64(block, fill), shuffle(high));
                let after = 8 + low.count_ones() as usize;
                _mm_storeu_si128(to.add(after).cast::<__m128i>(), second);
            }
            len += n + marks.count_ones() as usize;
            at += n;
        }
        // SAFETY: the bytes up to `len` are written, within the capacity reserved.
        unsafe { out.set_len(len) };
    }

    #[inline(always)]
    fn load(block: &[u8]) -> __m128i {
        assert!(block.len() == 16);
        // SAFETY: the slice holds 16 bytes (checked above), and the load is an unaligned one.
        unsafe { _mm_loadu_si128(block.as_ptr().cast::<__m128i>()) }
    }

    #[inline(always)]
    fn shuffle(mask: u32) -> __m128i {
        load(&TABLE[mask as usize & 0xff])
    }
}

/// A way to test a block of bytes for those that need an escape.
trait Block {
    const WIDTH: usize;
    /// How far a byte's mark is from the one before it in [`Block::specials`]: the mark of
    /// byte `n` is bit `n << SHIFT`.
    const SHIFT: u32;

    /// The bytes of the `WIDTH` bytes of `block` that need an escape, one mark each.
    fn specials(block: &[u8]) -> u64;

    /// How many of the `WIDTH` bytes of `block` come before its first quote or backslash
    /// (`WIDTH` when it has none).
    fn find(block: &[u8]) -> usize;
}

/// [`write_inner`] a block at a time: the block is tested once for the bytes that need an
/// escape; the plain run before each of them (and the last one) is stored as one piece of 16
/// bytes, of which the output keeps the run. The last bytes, fewer than a block, are copied
/// into a block of spaces (which need no escape) first.
#[inline(always)]
fn write_blocks<B: Block>(out: &mut Vec<u8>, text: &[u8]) {
    let mut at = 0;
    while at < text.len() {
        let n = (text.len() - at).min(B::WIDTH);
        // The block, then spaces: a piece stored from any place of it is in bounds.
        let mut block = [b' '; 32];
        match text.get(at..at + 16) {
            Some(whole) => block[..16].copy_from_slice(whole),
            None => block[..16].copy_from_slice(&padded(&text[at..])),
        }
        let mut marks = B::specials(&block[..B::WIDTH]);
        // Room for every byte of the block escaped as `\u00XX`, and a whole piece after.
        out.reserve(B::WIDTH * 6 + 16);
        let mut from = 0;
        let mut len = out.len();
        let source = block.as_ptr();
        // SAFETY: the spare capacity holds the block's bytes escaped (6 each at most) and a
        // piece of 16 after them (reserved above), so every store below is inside it; each
        // piece starts at `from`, at most 16, of the 32 bytes of `block`; `special` is below
        // `n`; `len` counts bytes written, and becomes the length once they are.
        unsafe {
            while marks != 0 {
                let special = (marks.trailing_zeros() >> B::SHIFT) as usize;
                marks &= marks - 1;
                let to = out.as_mut_ptr();
                std::ptr::copy_nonoverlapping(source.add(from), to.add(len), 16);
                len += special - from;
                match *source.add(special) {
                    // The common escapes (a JSON object's text is full of quotes).
                    b @ (b'"' | b'\\') => {
                        *to.add(len) = b'\\';
                        *to.add(len + 1) = b;
                        len += 2;
                    }
                    b => {
                        out.set_len(len);
                        escape(out, b);
                        len = out.len();
                    }
                }
                from = special + 1;
            }
            std::ptr::copy_nonoverlapping(source.add(from), out.as_mut_ptr().add(len), 16);
            out.set_len(len + n - from);
        }
        at += n;
    }
}

/// `rest` (shorter than 16 bytes) followed by spaces, which need no escape: copied in at most
/// two overlapping pieces of 8, 4, 2 or 1 bytes, as `memcpy` copies short runs.
#[inline(always)]
fn padded(rest: &[u8]) -> [u8; 16] {
    fn pieces<const N: usize>(rest: &[u8], to: &mut [u8]) {
        let n = rest.len();
        to[..N].copy_from_slice(&rest[..N]);
        to[n - N..n].copy_from_slice(&rest[n - N..]);
    }
    let mut block = [b' '; 16];
    match rest.len() {
        8.. => pieces::<8>(rest, &mut block),
        4..=7 => pieces::<4>(rest, &mut block),
        2..=3 => pieces::<2>(rest, &mut block),
        1 => block[0] = rest[0],
        _ => {}
    }
    block
}

/// 16 bytes at a time with SSE2, which every x86-64 processor has.
#[cfg(target_arch = "x86_64")]
struct Sse2;

#[cfg(target_arch = "x86_64")]
impl Block for Sse2 {
    const WIDTH: usize = 16;
    const SHIFT: u32 = 0;

    #[inline(always)]
    fn specials(block: &[u8]) -> u64 {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8,
            _mm_or_si128, _mm_set1_epi8,
        };
        assert!(block.len() == Self::WIDTH);
        // SAFETY: SSE2 is part of x86-64; the slice holds 16 bytes (checked above), and the
        // load is an unaligned one.
        unsafe {
            let block = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            let quote = _mm_cmpeq_epi8(block, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(block, _mm_set1_epi8(b'\\' as i8));
            let below = _mm_set1_epi8(0x1f);
            let control = _mm_cmpeq_epi8(_mm_max_epu8(block, below), below);
            let specials = _mm_or_si128(_mm_or_si128(quote, backslash), control);
            u64::from(_mm_movemask_epi8(specials) as u16)
        }
    }

    #[inline(always)]
    fn find(block: &[u8]) -> usize {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8,
        };
        assert!(block.len() == Self::WIDTH);
        // SAFETY: SSE2 is part of x86-64; the slice holds 16 bytes (checked above), and the
        // load is an unaligned one.
        unsafe {
            let block = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            let quote = _mm_cmpeq_epi8(block, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(block, _mm_set1_epi8(b'\\' as i8));
            (_mm_movemask_epi8(_mm_or_si128(quote, backslash)) as u32 | 1 << Self::WIDTH)
                .trailing_zeros() as usize
        }
    }
}

/// Eight bytes at a time in a `u64`: every other processor.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
struct Swar;

impl Block for Swar {
    const WIDTH: usize = 8;
    const SHIFT: u32 = 3;

    #[inline(always)]
    fn specials(block: &[u8]) -> u64 {
        specials(u64::from_le_bytes(block.try_into().expect("eight bytes")))
    }

    #[inline(always)]
    fn find(block: &[u8]) -> usize {
        let word = u64::from_le_bytes(block.try_into().expect("eight bytes"));
        quotes(word).trailing_zeros() as usize / 8
    }
}

/// Appends the escape of the byte `b`, which needs one.
fn escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_survey_finds_what_a_byte_by_byte_look_finds() {
        let text: Vec<u8> = (0..100u8).map(|n| b'a' + n % 26).collect();
        for n in 0..text.len() {
            let plain = &text[..n];
            let expected = |bytes: &[u8]| Survey {
                ascii: bytes.is_ascii(),
                backslash: bytes.contains(&b'\\'),
            };
            assert_eq!(survey(plain), expected(plain));
            assert_eq!(survey_words(plain), expected(plain));
            for at in 0..n {
                for odd in [b'\\', 0xc3] {
                    let mut bytes = plain.to_vec();
                    bytes[at] = odd;
                    assert_eq!(survey(&bytes), expected(&bytes), "{n} {at} {odd}");
                    assert_eq!(survey_words(&bytes), expected(&bytes), "{n} {at} {odd}");
                }
            }
        }
    }

    #[test]
    fn strings_end_at_their_first_unescaped_quote() {
        for (text, end, escaped) in [
            (r#""plain" x"#, 6, false),
            (r#""a long string past eight bytes","#, 31, false),
            (r#""\\" x"#, 3, true),
            (r#""an escaped \" quote, then the end" x"#, 34, true),
            (r#""""#, 1, false),
            (
                r#""sixteen bytes..\" and then a quote past the block" x"#,
                50,
                true,
            ),
        ] {
            for found in [
                string_end(text.as_bytes(), 1),
                string_end_by::<Swar>(text.as_bytes(), 1),
            ] {
                assert_eq!(found, Some((end, escaped)), "{text}");
            }
        }
        for open in [
            r#""no end"#,
            r#""ends in a backslash\"#,
            r#""\""#,
            r#""a longer string past sixteen bytes, then no end"#,
        ] {
            assert_eq!(string_end(open.as_bytes(), 1), None, "{open}");
            assert_eq!(string_end_by::<Swar>(open.as_bytes(), 1), None, "{open}");
        }
    }

    #[test]
    fn every_byte_is_told_apart_in_every_place_of_a_word() {
        for b in 0..=255u8 {
            for place in 0..8 {
                let mut bytes = [b'a'; 8];
                bytes[place] = b;
                let mask = specials(u64::from_le_bytes(bytes));
                let expected = if special(b) {
                    0x80u64 << (place * 8)
                } else {
                    0
                };
                assert_eq!(mask, expected, "{b:#x} at {place}");
            }
        }
    }

    #[test]
    fn random_json_text_is_written_as_serde_json_writes_it() {
        use crate::format::scan::samples::{json_value, Random};
        let mut random = Random(0x5eed_e5ca);
        for _ in 0..500 {
            // The JSON text of a value (quotes and escapes in every place), as a string.
            let text = json_value(&mut random, 0).to_string();
            let mut out = Vec::new();
            write_str(&mut out, text.as_bytes());
            assert_eq!(out, serde_json::to_string(&text).unwrap().into_bytes());
        }
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let mut texts: Vec<String> = [
            "",
            "plain",
            "{\"a\":\n [1, \"b\\\\c\"]}",
            "tab\there\u{1}\u{7f}\r\u{8}\u{c}",
            "\u{e9}t\u{e9} and a longer run of plain text past eight bytes \"q\"",
            "\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"",
        ]
        .map(String::from)
        .into();
        texts.push((0..=0x7fu8).map(char::from).collect());
        for len in 1..26 {
            for at in 0..len {
                let mut text = vec![b'a'; len];
                text[at] = b'"';
                text[len - 1 - at] = b'\\';
                texts.push(String::from_utf8(text).unwrap());
            }
        }
        texts.push(
            (0..=0x7fu8)
                .rev()
                .map(char::from)
                .collect::<String>()
                .repeat(3),
        );
        for text in texts {
            let expected = serde_json::to_string(&text).unwrap();
            let mut out = Vec::new();
            write_str(&mut out, text.as_bytes());
            assert_eq!(String::from_utf8(out).unwrap(), expected);
            let mut out = b"\"".to_vec();
            write_blocks::<Swar>(&mut out, text.as_bytes());
            out.push(b'"');
            assert_eq!(String::from_utf8(out).unwrap(), expected, "eight at a time");
            #[cfg(target_arch = "x86_64")]
            {
                let mut out = b"\"".to_vec();
                write_blocks::<Sse2>(&mut out, text.as_bytes());
                out.push(b'"');
                assert_eq!(String::from_utf8(out).unwrap(), expected, "without SSSE3");
            }
            assert_eq!(has_backslash(text.as_bytes()), text.contains('\\'));
            assert_eq!(
                needs_escape(text.as_bytes()),
                text.bytes().any(special),
                "{text:?}"
            );
        }
    }
}
