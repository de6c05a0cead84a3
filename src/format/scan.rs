//! The structural scanner: JSON bytes -> where their structure is, 64 bytes at a time.
//!
//! The CloudTrail splitter, JSON lines and the detection index all need the same answer
//! about a run of JSON bytes: which quotes open or close a string, which brackets, colons and
//! commas lie outside strings, and where lines end. This module gives it for a block of up to
//! 64 bytes at once, one bit per byte, by the technique of simdjson's first stage (Langdale and
//! Lemire, "Parsing Gigabytes of JSON per Second"): compare the block with each byte of
//! interest using vector instructions; find the escaped bytes from the runs of backslashes
//! with integer arithmetic; find what lies inside strings as the prefix XOR of the unescaped
//! quotes. The vector part is chosen once, at run time: AVX2 (with the carry-less multiply for
//! the prefix XOR) or SSE2 on x86-64, NEON on aarch64, a byte loop elsewhere; every path gives
//! the same bits (the tests hold each to a byte-by-byte reading, and the readers to
//! `serde_json`).
//!
//! Between blocks the state is two bits (inside a string; the last byte escapes the next), so
//! a stream is scanned block by block as its buffers arrive ([`Classifier`]), and a whole
//! slice token by token ([`Tokens`]). Once an object's top-level `:` and `,` are known (its
//! outline), [`Members`] reads its members from them without scanning again.
//!
//! Pure: no I/O, no allocation, no failure. Bytes that are not JSON are classified all the
//! same, as the bytes they are (a backslash outside a string still escapes the byte after
//! it); judging them is the caller's part.

use std::ops::{ControlFlow, Range};

/// Bytes per block: one bit each in a `u64`.
pub const BLOCK: usize = 64;

/// One block, classified. Bits past the block's length are zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Block {
    /// Quotes that open or close a string (not the escaped ones).
    pub quotes: u64,
    /// Bytes inside a string: its opening quote and content, not its closing quote.
    pub in_string: u64,
    /// `{`, `}`, `[` and `]` outside strings.
    pub brackets: u64,
    /// `:` and `,` outside strings.
    pub separators: u64,
    /// Line feeds, inside strings or not.
    pub newlines: u64,
    /// Bytes of 0x80 and above (parts of non-ASCII characters, or not UTF-8 at all).
    pub non_ascii: u64,
    /// Backslashes, escaped or not.
    pub backslashes: u64,
}

impl Block {
    /// Quotes, brackets and separators: every byte where the structure changes.
    pub fn tokens(&self) -> u64 {
        self.quotes | self.brackets | self.separators
    }
}

/// Classifies a stream block after block; holds what carries from one block to the next.
#[derive(Debug, Clone, Copy)]
pub struct Classifier {
    /// All ones when the next block starts inside a string.
    in_string: u64,
    /// Whether the next block's first byte is escaped by a backslash before it.
    escaped: bool,
    level: Level,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier::new()
    }
}

impl Classifier {
    /// At the start of JSON text: outside any string.
    pub fn new() -> Self {
        Classifier {
            in_string: 0,
            escaped: false,
            level: Level::detected(),
        }
    }

    /// Just after the opening quote of a string.
    pub fn in_string() -> Self {
        Classifier {
            in_string: u64::MAX,
            ..Classifier::new()
        }
    }

    /// Classifies `bytes` (at most [`BLOCK`]), the bytes that follow the last block.
    pub fn block(&mut self, bytes: &[u8]) -> Block {
        assert!(bytes.len() <= BLOCK, "a block is at most {BLOCK} bytes");
        self.blocks(bytes, |_, block| ControlFlow::Break(*block))
            .unwrap_or_default()
    }

    /// Classifies `bytes`, the bytes that follow the last block, 64 at a time, handing each
    /// block and where it starts in `bytes` to `each` until `each` breaks (its answer is
    /// returned). The loop runs inside the chosen instructions, so it and `each` compile into
    /// one vector loop.
    #[inline]
    pub fn blocks<B>(
        &mut self,
        bytes: &[u8],
        each: impl FnMut(usize, &Block) -> ControlFlow<B>,
    ) -> Option<B> {
        match self.level {
            Level::Scalar => self.run(bytes, classify_scalar, prefix_xor, each),
            // SAFETY: each level is chosen only when the CPU has its instructions.
            #[cfg(target_arch = "x86_64")]
            Level::Sse2 => unsafe { x86::blocks_sse2(self, bytes, each) },
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => unsafe { x86::blocks_avx2(self, bytes, each) },
            #[cfg(target_arch = "aarch64")]
            Level::Neon => unsafe { arm::blocks_neon(self, bytes, each) },
        }
    }

    /// The loop of [`Classifier::blocks`] with one way to `classify`.
    #[inline(always)]
    fn run<B>(
        &mut self,
        bytes: &[u8],
        classify: impl Fn(&[u8; BLOCK]) -> Raw,
        prefix_xor: impl Fn(u64) -> u64 + Copy,
        mut each: impl FnMut(usize, &Block) -> ControlFlow<B>,
    ) -> Option<B> {
        let mut chunks = bytes.chunks_exact(BLOCK);
        for (n, full) in chunks.by_ref().enumerate() {
            let full: &[u8; BLOCK] = full.try_into().expect("chunks of a block");
            let block = self.finish(classify(full), BLOCK, prefix_xor);
            if let ControlFlow::Break(answer) = each(n * BLOCK, &block) {
                return Some(answer);
            }
        }
        let rest = chunks.remainder();
        if rest.is_empty() {
            return None;
        }
        // A short block is padded with spaces, which are none of the bytes looked for.
        let mut padded = [b' '; BLOCK];
        padded[..rest.len()].copy_from_slice(rest);
        let block = self.finish(classify(&padded), rest.len(), prefix_xor);
        match each(bytes.len() - rest.len(), &block) {
            ControlFlow::Break(answer) => Some(answer),
            ControlFlow::Continue(()) => None,
        }
    }

    /// The block of `len` bytes whose bytes of interest are `raw`: strings and escapes
    /// taken into account (`prefix_xor` as [`prefix_xor`] computes it), and the state carried
    /// on.
    #[inline(always)]
    fn finish(&mut self, raw: Raw, len: usize, prefix_xor: impl Fn(u64) -> u64) -> Block {
        let valid = if len == BLOCK {
            u64::MAX
        } else {
            (1u64 << len) - 1
        };
        let escaped = escaped_bytes(raw.backslashes, self.escaped);
        let quotes = raw.quotes & !escaped;
        let in_string = prefix_xor(quotes) ^ self.in_string;
        let last = 1u64 << (len - 1);
        self.escaped = raw.backslashes & !escaped & last != 0;
        self.in_string = if in_string & last != 0 { u64::MAX } else { 0 };
        let outside = !in_string & valid;
        Block {
            quotes,
            in_string: in_string & valid,
            brackets: raw.brackets & outside,
            separators: raw.separators & outside,
            newlines: raw.newlines,
            non_ascii: raw.non_ascii,
            backslashes: raw.backslashes,
        }
    }
}

/// The bytes of interest in one block, before strings are taken into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Raw {
    quotes: u64,
    backslashes: u64,
    brackets: u64,
    separators: u64,
    newlines: u64,
    non_ascii: u64,
}

impl Raw {
    /// The masks of a block from `mask(needle, or)`, the bytes that equal `needle` once ORed
    /// with `or`, and the bytes with the high bit.
    #[inline(always)]
    fn from_masks(mask: impl Fn(u8, u8) -> u64, non_ascii: u64) -> Raw {
        Raw {
            quotes: mask(b'"', 0),
            backslashes: mask(b'\\', 0),
            // `[` and `]` are `{` and `}` without bit 5.
            brackets: mask(b'{', 0x20) | mask(b'}', 0x20),
            separators: mask(b':', 0) | mask(b',', 0),
            newlines: mask(b'\n', 0),
            non_ascii,
        }
    }
}

/// Which instructions classify a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// x86-64 always has SSE2: there the byte loop serves only the tests.
    #[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Sse2,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "aarch64")]
    Neon,
}

impl Level {
    /// The best this CPU has, asked once per classifier (the answer is cached by std).
    fn detected() -> Level {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("pclmulqdq")
            {
                return Level::Avx2;
            }
            // SSE2 is part of x86-64 itself.
            Level::Sse2
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                return Level::Neon;
            }
            Level::Scalar
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        Level::Scalar
    }

    /// Every level this CPU can run, the byte loop first (for tests).
    #[cfg(test)]
    fn available() -> Vec<Level> {
        let mut levels = vec![Level::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            levels.push(Level::Sse2);
            if Level::detected() == Level::Avx2 {
                levels.push(Level::Avx2);
            }
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("neon") {
            levels.push(Level::Neon);
        }
        levels
    }
}

#[inline(always)]
fn classify_scalar(block: &[u8; BLOCK]) -> Raw {
    let mut raw = Raw {
        quotes: 0,
        backslashes: 0,
        brackets: 0,
        separators: 0,
        newlines: 0,
        non_ascii: 0,
    };
    for (i, &b) in block.iter().enumerate() {
        let bit = 1u64 << i;
        if b >= 0x80 {
            raw.non_ascii |= bit;
        }
        match b {
            b'"' => raw.quotes |= bit,
            b'\\' => raw.backslashes |= bit,
            b'{' | b'}' | b'[' | b']' => raw.brackets |= bit,
            b':' | b',' => raw.separators |= bit,
            b'\n' => raw.newlines |= bit,
            _ => {}
        }
    }
    raw
}

/// Bits at even positions.
const EVEN: u64 = 0x5555_5555_5555_5555;

/// The bytes escaped by a backslash, given the block's backslashes and whether its first byte
/// is escaped by the block before. A run of backslashes escapes the byte after it when the
/// run is odd; which runs are odd is found by adding each run's start to the run, so the
/// carry marks its end, separately for runs starting at odd and at even positions.
#[inline(always)]
fn escaped_bytes(backslashes: u64, first_escaped: bool) -> u64 {
    let carried = u64::from(first_escaped);
    // A backslash escaped by the block before escapes nothing itself.
    let backslashes = backslashes & !carried;
    let follows_escape = (backslashes << 1) | carried;
    let odd_starts = backslashes & !EVEN & !follows_escape;
    let (even_starts_ended, _) = odd_starts.overflowing_add(backslashes);
    let invert = even_starts_ended << 1;
    (EVEN ^ invert) & follows_escape
}

/// Bit `i` of the result is the XOR of bits `0..=i` of `bits`: set from an opening quote up
/// to, not including, its closing one.
#[inline(always)]
fn prefix_xor(bits: u64) -> u64 {
    let mut x = bits;
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Block, Classifier, Raw, BLOCK};
    use std::arch::x86_64::*;
    use std::ops::ControlFlow;

    #[target_feature(enable = "avx2,pclmulqdq")]
    pub(super) unsafe fn blocks_avx2<B>(
        classifier: &mut Classifier,
        bytes: &[u8],
        each: impl FnMut(usize, &Block) -> ControlFlow<B>,
    ) -> Option<B> {
        // SAFETY: this function runs only where AVX2 is.
        classifier.run(
            bytes,
            |block| unsafe { classify_avx2(block) },
            |bits| prefix_xor_clmul(bits),
            each,
        )
    }

    #[target_feature(enable = "sse2")]
    pub(super) unsafe fn blocks_sse2<B>(
        classifier: &mut Classifier,
        bytes: &[u8],
        each: impl FnMut(usize, &Block) -> ControlFlow<B>,
    ) -> Option<B> {
        // SAFETY: SSE2 is part of x86-64.
        classifier.run(
            bytes,
            |block| unsafe { classify_sse2(block) },
            super::prefix_xor,
            each,
        )
    }

    /// [`super::prefix_xor`] in one carry-less multiplication by all ones.
    #[inline]
    #[target_feature(enable = "pclmulqdq")]
    fn prefix_xor_clmul(bits: u64) -> u64 {
        let product = _mm_clmulepi64_si128(_mm_set_epi64x(0, bits as i64), _mm_set1_epi8(-1), 0);
        _mm_cvtsi128_si64(product) as u64
    }

    /// Two 32-byte halves compared with each byte of interest; the high bit of each byte of a
    /// comparison becomes one bit of the mask.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn classify_avx2(block: &[u8; BLOCK]) -> Raw {
        // SAFETY: `block` is 64 readable bytes; unaligned loads are allowed.
        let halves = unsafe {
            [
                _mm256_loadu_si256(block.as_ptr().cast()),
                _mm256_loadu_si256(block.as_ptr().add(32).cast()),
            ]
        };
        let mask = |needle: u8, or: u8| -> u64 {
            let needle = _mm256_set1_epi8(needle as i8);
            let or = _mm256_set1_epi8(or as i8);
            let [lo, hi] = halves.map(|h| {
                let eq = _mm256_cmpeq_epi8(_mm256_or_si256(h, or), needle);
                u64::from(_mm256_movemask_epi8(eq) as u32)
            });
            lo | hi << 32
        };
        // The high bit of each byte, as it is.
        let [lo, hi] = halves.map(|h| u64::from(_mm256_movemask_epi8(h) as u32));
        Raw::from_masks(mask, lo | hi << 32)
    }

    /// Four 16-byte quarters, as [`classify_avx2`].
    #[inline]
    #[target_feature(enable = "sse2")]
    unsafe fn classify_sse2(block: &[u8; BLOCK]) -> Raw {
        // SAFETY: `block` is 64 readable bytes; unaligned loads are allowed.
        let quarters =
            unsafe { [0, 16, 32, 48].map(|at| _mm_loadu_si128(block.as_ptr().add(at).cast())) };
        // One bit per byte where `test` sets the byte's high bit.
        let bits = |test: &dyn Fn(__m128i) -> __m128i| -> u64 {
            quarters.iter().enumerate().fold(0u64, |mask, (n, q)| {
                mask | u64::from(_mm_movemask_epi8(test(*q)) as u16) << (16 * n)
            })
        };
        let mask = |needle: u8, or: u8| -> u64 {
            let (needle, or) = (_mm_set1_epi8(needle as i8), _mm_set1_epi8(or as i8));
            bits(&|q| _mm_cmpeq_epi8(_mm_or_si128(q, or), needle))
        };
        Raw::from_masks(mask, bits(&|q| q))
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::{Block, Classifier, Raw, BLOCK};
    use std::arch::aarch64::*;
    use std::ops::ControlFlow;

    #[target_feature(enable = "neon")]
    pub(super) unsafe fn blocks_neon<B>(
        classifier: &mut Classifier,
        bytes: &[u8],
        each: impl FnMut(usize, &Block) -> ControlFlow<B>,
    ) -> Option<B> {
        // SAFETY: this function runs only where NEON is.
        classifier.run(
            bytes,
            |block| unsafe { classify_neon(block) },
            super::prefix_xor,
            each,
        )
    }

    /// Four 16-byte quarters compared with each byte of interest. NEON has no byte mask
    /// instruction: each comparison (0xff or 0) keeps one weight bit per byte, and three rounds
    /// of pairwise adds gather the 64 bits in order.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn classify_neon(block: &[u8; BLOCK]) -> Raw {
        // SAFETY: `block` is 64 readable bytes; NEON loads need no alignment.
        let quarters = unsafe { [0, 16, 32, 48].map(|at| vld1q_u8(block.as_ptr().add(at))) };
        let weights: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
        // SAFETY: 16 readable bytes.
        let weights = unsafe { vld1q_u8(weights.as_ptr()) };
        // One bit per byte where `test` holds.
        let bits = |test: &dyn Fn(uint8x16_t) -> uint8x16_t| -> u64 {
            let [a, b, c, d] = quarters.map(|q| vandq_u8(test(q), weights));
            let ab = vpaddq_u8(a, b);
            let cd = vpaddq_u8(c, d);
            let all = vpaddq_u8(ab, cd);
            let all = vpaddq_u8(all, all);
            vgetq_lane_u64::<0>(vreinterpretq_u64_u8(all))
        };
        let mask = |needle: u8, or: u8| -> u64 {
            let (needle, or) = (vdupq_n_u8(needle), vdupq_n_u8(or));
            bits(&|q| vceqq_u8(vorrq_u8(q, or), needle))
        };
        Raw::from_masks(mask, bits(&|q| vcgeq_u8(q, vdupq_n_u8(0x80))))
    }
}

/// The tokens of a whole slice ([`Block::tokens`]: quotes, brackets, separators), in order,
/// classified a block at a time as they are asked for; a reader that stops early never
/// classifies the rest. Starts outside any string at the slice's first byte.
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    bytes: &'a [u8],
    classifier: Classifier,
    /// Where the current block starts in `bytes`.
    start: usize,
    block: Block,
    /// The current block's tokens not yet passed.
    pending: u64,
}

impl<'a> Tokens<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        let mut classifier = Classifier::new();
        let block = classifier.block(&bytes[..bytes.len().min(BLOCK)]);
        Tokens {
            bytes,
            classifier,
            start: 0,
            block,
            pending: block.tokens(),
        }
    }

    /// The next token, passed: its position and byte.
    #[inline]
    pub fn next_token(&mut self) -> Option<(usize, u8)> {
        while self.pending == 0 {
            self.advance()?;
        }
        let at = self.start + self.pending.trailing_zeros() as usize;
        self.pending &= self.pending - 1;
        Some((at, self.bytes[at]))
    }

    /// Whether a backslash lies in `from..to`, where `to` is the token just passed.
    pub fn backslash_within(&self, from: usize, to: usize) -> bool {
        self.within(from, to, |block| block.backslashes)
            .unwrap_or_else(|| self.bytes[from..to].contains(&b'\\'))
    }

    /// Whether `mask` has a bit in `from..to`; `None` when `from` is before the current
    /// block (only that one is kept).
    fn within(&self, from: usize, to: usize, mask: impl Fn(&Block) -> u64) -> Option<bool> {
        let below = |at: usize| (1u64 << (at - self.start)) - 1;
        (from >= self.start).then(|| mask(&self.block) & below(to) & !below(from) != 0)
    }

    /// Passes the rest of a container `depth` deep (1: the one just opened); the position
    /// after its closing bracket, or `None` when the slice ends first. Only brackets are
    /// looked at: outside strings, JSON's two kinds nest evenly. The blocks after the current
    /// one are classified in one run ([`Classifier::blocks`]).
    pub fn close(&mut self, mut depth: usize) -> Option<usize> {
        let bytes = self.bytes;
        // The bit of the bracket in `brackets` (of the block at `start`) that closes.
        let mut closing = |start: usize, mut brackets: u64| {
            while brackets != 0 {
                let bit = brackets.trailing_zeros() as usize;
                brackets &= brackets - 1;
                if matches!(bytes[start + bit], b'{' | b'[') {
                    depth += 1;
                } else {
                    depth -= 1;
                    if depth == 0 {
                        return Some(bit);
                    }
                }
            }
            None
        };
        // Brackets not yet passed are among the pending tokens.
        if let Some(bit) = closing(self.start, self.block.brackets & self.pending) {
            return Some(self.passed(bit));
        }
        let next = self.start + BLOCK;
        let rest = bytes.get(next..).unwrap_or_default();
        let found = self.classifier.blocks(rest, |offset, block| {
            match closing(next + offset, block.brackets) {
                Some(bit) => ControlFlow::Break((offset, *block, bit)),
                None => ControlFlow::Continue(()),
            }
        });
        let Some((offset, block, bit)) = found else {
            self.start = bytes.len().max(next);
            self.pending = 0;
            return None;
        };
        self.start = next + offset;
        self.block = block;
        Some(self.passed(bit))
    }

    /// Marks the current block's tokens up to and including `bit` as passed; the position
    /// after it.
    fn passed(&mut self, bit: usize) -> usize {
        self.pending = self.block.tokens() & ((u64::MAX << bit) << 1);
        self.start + bit + 1
    }

    /// Classifies the next block; `None` at the end of the slice.
    fn advance(&mut self) -> Option<()> {
        let next = self.start + BLOCK;
        if next >= self.bytes.len() {
            return None;
        }
        self.start = next;
        self.block = self
            .classifier
            .block(&self.bytes[next..self.bytes.len().min(next + BLOCK)]);
        self.pending = self.block.tokens();
        Some(())
    }
}

/// One top-level member of an object: spans of its key (with the quotes) and of its value,
/// both without surrounding whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub key: Range<usize>,
    pub value: Range<usize>,
}

/// The top-level members of an object whose top-level `:` and `,` are known (its outline: the
/// CloudTrail splitter notes them as it goes); yields an error (and then stops) where the top
/// level is not `{"key": value, ...}`. Only the structure around the members is checked.
pub struct Members<'a> {
    bytes: &'a [u8],
    separators: &'a [u32],
    /// Index in `separators` of the next member's `:`.
    next: usize,
    /// Where the next member's key begins (after `{` or `,`).
    start: usize,
    done: bool,
}

impl<'a> Members<'a> {
    /// The members of the object `bytes` (from `{` to `}`) whose top-level separators are at
    /// `separators`, in order.
    pub fn new(bytes: &'a [u8], separators: &'a [u32]) -> Self {
        Members {
            bytes,
            separators,
            next: 0,
            start: 1,
            done: false,
        }
    }
}

impl Iterator for Members<'_> {
    type Item = Result<Member, &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let close = self.bytes.len() - 1;
        let Some(&colon) = self.separators.get(self.next) else {
            self.done = true;
            let rest = trim(self.bytes, self.start..close);
            return match (rest.is_empty(), self.next) {
                (true, 0) => None,
                (true, _) => Some(Err("a ',' with no member after it")),
                (false, _) => Some(Err("a member without ':'")),
            };
        };
        let colon = colon as usize;
        if self.bytes[colon] != b':' {
            self.done = true;
            return Some(Err("a member without ':'"));
        }
        let key = trim(self.bytes, self.start..colon);
        let end = match self.separators.get(self.next + 1) {
            Some(&comma) if self.bytes[comma as usize] == b',' => {
                self.start = comma as usize + 1;
                self.next += 2;
                comma as usize
            }
            Some(_) => {
                self.done = true;
                return Some(Err("two ':' in one member"));
            }
            None => {
                self.done = true;
                close
            }
        };
        let value = trim(self.bytes, colon + 1..end);
        let quoted = |r: &Range<usize>| {
            r.len() >= 2 && self.bytes[r.start] == b'"' && self.bytes[r.end - 1] == b'"'
        };
        if !quoted(&key) {
            self.done = true;
            return Some(Err("a key that is not a string"));
        }
        if value.is_empty() {
            self.done = true;
            return Some(Err("a member without a value"));
        }
        Some(Ok(Member { key, value }))
    }
}

/// `range` of `bytes` without leading and trailing JSON whitespace.
fn trim(bytes: &[u8], range: Range<usize>) -> Range<usize> {
    let mut r = range;
    while r.start < r.end && bytes[r.start].is_ascii_whitespace() {
        r.start += 1;
    }
    while r.end > r.start && bytes[r.end - 1].is_ascii_whitespace() {
        r.end -= 1;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::samples::{json_value, Random};
    use super::*;

    /// The meaning of each bit, byte by byte, as a reader of JSON would decide it. A
    /// backslash escapes the byte after it wherever it stands: outside a string it is not
    /// JSON, and an escaped quote there opens nothing.
    fn reference(bytes: &[u8], mut in_string: bool) -> Vec<Block> {
        let mut escaped = false;
        let mut blocks = Vec::new();
        for chunk in bytes.chunks(BLOCK) {
            let mut block = Block::default();
            for (i, &b) in chunk.iter().enumerate() {
                let bit = 1u64 << i;
                let this_escaped = escaped;
                escaped = !this_escaped && b == b'\\';
                if b == b'\n' {
                    block.newlines |= bit;
                }
                if b >= 0x80 {
                    block.non_ascii |= bit;
                }
                if b == b'\\' {
                    block.backslashes |= bit;
                }
                if b == b'"' && !this_escaped {
                    block.quotes |= bit;
                    in_string = !in_string;
                    if in_string {
                        block.in_string |= bit;
                    }
                    continue;
                }
                if in_string {
                    block.in_string |= bit;
                    continue;
                }
                match b {
                    b'{' | b'}' | b'[' | b']' => block.brackets |= bit,
                    b':' | b',' => block.separators |= bit,
                    _ => {}
                }
            }
            blocks.push(block);
        }
        blocks
    }

    /// Each byte's bits (quote, in string, bracket, separator, newline, non-ASCII,
    /// backslash) as flags.
    fn spread(block: &Block, len: usize, out: &mut Vec<u8>) {
        let masks = [
            block.quotes,
            block.in_string,
            block.brackets,
            block.separators,
            block.newlines,
            block.non_ascii,
            block.backslashes,
        ];
        for i in 0..len {
            let flags = masks.iter().enumerate();
            out.push(flags.fold(0, |f, (n, m)| f | (((m >> i) & 1) as u8) << n));
        }
        let beyond = if len == BLOCK { 0 } else { u64::MAX << len };
        assert!(masks.iter().all(|m| m & beyond == 0), "bits past the block");
    }

    fn flags(blocks: &[Block], bytes: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for (block, piece) in blocks.iter().zip(bytes.chunks(chunk)) {
            spread(block, piece.len(), &mut out);
        }
        out
    }

    /// Each byte's flags, classified by `level` in pieces of `chunk` bytes: one block at a
    /// time up to a block's length, [`Classifier::blocks`] beyond.
    fn classified(level: Level, bytes: &[u8], chunk: usize, in_string: bool) -> Vec<u8> {
        let mut classifier = Classifier {
            in_string: if in_string { u64::MAX } else { 0 },
            escaped: false,
            level,
        };
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk) {
            if chunk <= BLOCK {
                spread(&classifier.block(piece), piece.len(), &mut out);
                continue;
            }
            classifier.blocks(piece, |at, block| {
                spread(block, (piece.len() - at).min(BLOCK), &mut out);
                ControlFlow::<()>::Continue(())
            });
        }
        out
    }

    /// Bytes heavy in what the scanner looks for: runs of backslashes of every length,
    /// quotes, brackets, separators, newlines, bytes with the high bit set, and a few letters.
    fn adversarial(random: &mut Random, len: usize) -> Vec<u8> {
        const ALPHABET: &[u8] = b"\\\\\\\\\"\"\"{}[]:,\n a\x7b\x5b\xff\xc3\x00\x20";
        let mut bytes = Vec::with_capacity(len);
        while bytes.len() < len {
            match random.below(8) {
                0 => {
                    let run = random.below(70);
                    bytes.extend(std::iter::repeat_n(b'\\', run));
                }
                _ => bytes.push(ALPHABET[random.below(ALPHABET.len())]),
            }
        }
        bytes.truncate(len);
        bytes
    }

    #[test]
    fn every_level_agrees_with_the_byte_by_byte_reading() {
        let mut random = Random(0x9e37_79b9_7f4a_7c15);
        for round in 0..3000 {
            let len = random.below(400);
            let bytes = adversarial(&mut random, len);
            let in_string = round % 3 == 0;
            let expected = flags(&reference(&bytes, in_string), &bytes, BLOCK);
            for level in Level::available() {
                for chunk in [BLOCK, 1 + random.below(BLOCK), 1 + random.below(300)] {
                    assert_eq!(
                        classified(level, &bytes, chunk, in_string),
                        expected,
                        "{level:?}, blocks of {chunk}, in a string: {in_string}, bytes {:?}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
            }
        }
    }

    #[test]
    fn escapes_across_block_edges() {
        // A run of backslashes ending at every position around the block edge, of every
        // parity, then a quote that is escaped or not.
        for end in 58..70 {
            for run in 1..12 {
                let mut bytes = vec![b'a'; end + 2];
                bytes[0] = b'"';
                bytes[end - run..end].fill(b'\\');
                bytes[end] = b'"';
                let expected = flags(&reference(&bytes, false), &bytes, BLOCK);
                for level in Level::available() {
                    assert_eq!(
                        classified(level, &bytes, BLOCK, false),
                        expected,
                        "{level:?}, run of {run} ending at {end}"
                    );
                }
            }
        }
    }

    #[test]
    fn tokens_of_json_mark_exactly_its_strings_and_structure() {
        let mut random = Random(42);
        for _ in 0..500 {
            let value = json_value(&mut random, 0);
            let text = serde_json::to_vec(&value).unwrap();
            // Re-read from the tokens alone: every string's bytes between two quote tokens
            // must parse back as a JSON string, and the brackets must balance.
            let mut tokens = Tokens::new(&text);
            let mut depth = 0i64;
            let mut strings = 0;
            while let Some((at, byte)) = tokens.next_token() {
                match byte {
                    b'"' => {
                        let (end, close) = tokens.next_token().expect("a closing quote");
                        assert_eq!(close, b'"');
                        serde_json::from_slice::<String>(&text[at..=end]).expect("a JSON string");
                        strings += 1;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => depth -= 1,
                    _ => assert!(depth > 0, "a separator outside containers"),
                }
                assert!(depth >= 0);
            }
            assert_eq!(depth, 0);
            assert_eq!(
                strings,
                strings_in(&value),
                "{}",
                String::from_utf8_lossy(&text)
            );
        }
    }

    /// Keys and string values in `value`.
    fn strings_in(value: &serde_json::Value) -> usize {
        match value {
            serde_json::Value::String(_) => 1,
            serde_json::Value::Array(items) => items.iter().map(strings_in).sum(),
            serde_json::Value::Object(map) => map.values().map(|v| 1 + strings_in(v)).sum(),
            _ => 0,
        }
    }

    #[test]
    fn close_passes_a_container_and_stops_at_the_end() {
        let text = br#"{"a":[1,{"b":"]}"}],"c":{}} tail"#;
        let mut tokens = Tokens::new(text);
        assert_eq!(tokens.next_token(), Some((0, b'{')));
        assert_eq!(tokens.close(1), Some(27));
        assert_eq!(tokens.next_token(), None);
        let mut open = Tokens::new(b"[[1,\"]\"]");
        assert_eq!(open.next_token(), Some((0, b'[')));
        assert_eq!(open.close(1), None);
    }
}

/// Random JSON for the tests of every reader built on the scanner.
#[cfg(test)]
pub(crate) mod samples {
    /// A small deterministic generator (xorshift), so failures reproduce.
    pub struct Random(pub u64);

    impl Random {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Random JSON of every kind of value, nested, with strings full of escapes.
    pub fn json_value(random: &mut Random, depth: usize) -> serde_json::Value {
        use serde_json::Value;
        match random.below(if depth > 6 { 4 } else { 7 }) {
            0 => Value::Null,
            1 => Value::from(random.next() as i64 as f64 / 7.0),
            2 | 3 => {
                let len = random.below(90);
                let text: String = (0..len)
                    .map(|_| {
                        let options = ['"', '\\', '\n', '{', ']', ':', ',', '\u{e9}', 'x', '\u{1}'];
                        options[random.below(options.len())]
                    })
                    .collect();
                Value::from(text)
            }
            4 => Value::Array(
                (0..random.below(5))
                    .map(|_| json_value(random, depth + 1))
                    .collect(),
            ),
            _ => Value::Object(
                (0..random.below(6))
                    .map(|n| (format!("k{n}\"\\"), json_value(random, depth + 1)))
                    .collect(),
            ),
        }
    }
}
