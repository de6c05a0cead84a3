//! Known: the keys a mapping looks up in an object, each given its place once, so that a
//! lookup is an index instead of a search.
//!
//! A mapping lists the keys it reads from an object as a `static` [`Known`] (`known!`), built
//! at compile time (a small open-addressing table keyed by each key's length and first and
//! last bytes), each key with what it means to the mapping (an enum of its own, or `()`). A
//! record's top level read whole ([`super::Top`]) keeps each known key's value at its place,
//! and the mapping names a key by its [`Member`], found at compile time
//! (`KNOWN.member("eventName")` in a `const { }` block, a compile error for a key the list
//! lacks). A [`super::Cursor`] reading member by member hands each known key's meaning to the
//! mapping as it meets it, the first time only ([`super::Cursor::next`]): a repeated key is
//! left, in one place for every mapping. Each list also learns which of its keys follows
//! which ([`Guesses`]): a reader compares the key it guesses first, where the key stands, and
//! looks in the table only when the guess is wrong.
//!
//! Pure: no I/O.

use std::sync::atomic::{AtomicU8, Ordering};

/// The most keys a list may have.
pub const MOST: usize = 64;

/// Slots of the table: a power of two, at most half full.
const SLOTS: usize = 128;

/// A key of a [`Known`] list: its place there, and its name.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    pub(super) id: u8,
    pub(super) name: &'static str,
}

/// A list of keys, each with what it means to the mapping, and the table that finds a key's
/// place in it.
#[derive(Debug)]
pub struct Known<T: 'static = ()> {
    keys: &'static [(&'static str, T)],
    /// Per slot, a key's place plus one (0: empty).
    table: [u8; SLOTS],
    /// The list's guesses of which key follows which ([`Known::find_after`]).
    after: &'static Guesses,
}

/// Per place of a [`Known`] list (and [`FIRST`], for an object's first member), the place of
/// the key that followed it the last time it did not follow as guessed: a guess checked
/// before the table. Records of one producer write their keys in one order, so most guesses
/// hold, and a key then costs one comparison and no probe; a wrong guess costs only the
/// look-up it would have cost anyway. Guesses are hints shared by every thread, stored only
/// when one fails. (A static of its own, which [`known!`] declares: a list is read at compile
/// time, and a static read there may not hold anything that changes.)
#[derive(Debug)]
pub struct Guesses([AtomicU8; MOST + 1]);

impl Guesses {
    pub const fn new() -> Self {
        Guesses([const { AtomicU8::new(NO_GUESS) }; MOST + 1])
    }
}

impl Default for Guesses {
    fn default() -> Self {
        Guesses::new()
    }
}

/// A [`Known`] list of `keys` with guesses of its own: `known!(&[("key", meaning), ...])`.
macro_rules! known {
    ($keys:expr) => {
        $crate::format::ecs::known::Known::new($keys, {
            static GUESSES: $crate::format::ecs::known::Guesses =
                $crate::format::ecs::known::Guesses::new();
            &GUESSES
        })
    };
}
pub(crate) use known;

/// The place in [`Known`]'s guesses for the key before an object's first member.
pub const FIRST: usize = MOST;

/// No guess.
const NO_GUESS: u8 = u8::MAX;

/// A key's length and its first and last bytes: keys that differ mostly differ here.
#[inline]
pub const fn tag(key: &[u8]) -> u32 {
    match key {
        [first, .., last] => key.len() as u32 | (*first as u32) << 8 | (*last as u32) << 16,
        [only] => 1 | (*only as u32) << 8,
        [] => 0,
    }
}

/// The first slot to look at for `tag`.
#[inline]
const fn slot_of(tag: u32) -> usize {
    (tag.wrapping_mul(0x9E37_79B1) >> 25) as usize % SLOTS
}

/// Whether `a` and `b` are the same bytes: keys of up to 32 bytes in two overlapping loads of
/// each, with no call.
#[inline]
pub(super) fn equal(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let wide = |s: &[u8], at: usize| u128::from_le_bytes(s[at..at + 16].try_into().expect("16"));
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4"));
    match n {
        17..=32 => wide(a, 0) == wide(b, 0) && wide(a, n - 16) == wide(b, n - 16),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        _ => a == b,
    }
}

/// Whether `a` and `b` are the same bytes, at compile time.
pub(super) const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut n = 0;
    while n < a.len() {
        if a[n] != b[n] {
            return false;
        }
        n += 1;
    }
    true
}

/// `keys`, each meaning nothing more than itself: a list for [`Known::new`].
pub const fn plain<const N: usize>(keys: [&'static str; N]) -> [(&'static str, ()); N] {
    let mut pairs = [("", ()); N];
    let mut n = 0;
    while n < N {
        pairs[n].0 = keys[n];
        n += 1;
    }
    pairs
}

impl<T> Known<T> {
    /// The table of `keys`; a compile error (a panic in const evaluation) when a key is
    /// listed twice or there are more than [`MOST`].
    pub const fn new(keys: &'static [(&'static str, T)], after: &'static Guesses) -> Known<T> {
        assert!(keys.len() <= MOST, "too many known keys");
        let mut table = [0u8; SLOTS];
        let mut n = 0;
        while n < keys.len() {
            let key = keys[n].0.as_bytes();
            let mut slot = slot_of(tag(key));
            while table[slot] != 0 {
                assert!(
                    !same(keys[table[slot] as usize - 1].0.as_bytes(), key),
                    "a known key listed twice"
                );
                slot = (slot + 1) % SLOTS;
            }
            table[slot] = n as u8 + 1;
            n += 1;
        }
        Known { keys, table, after }
    }

    /// The member `key`; a compile error when the list lacks it. Use it in a `const { }`
    /// block.
    pub const fn member(&self, key: &'static str) -> Member {
        let mut n = 0;
        while n < self.keys.len() {
            if same(self.keys[n].0.as_bytes(), key.as_bytes()) {
                return Member {
                    id: n as u8,
                    name: key,
                };
            }
            n += 1;
        }
        panic!("a key that the known list does not have");
    }

    /// The place of `key` (whose [`tag`] is `tag`) in the list, when it is there.
    #[inline]
    pub fn find(&self, key: &[u8], tag: u32) -> Option<usize> {
        let mut slot = slot_of(tag);
        loop {
            let id = usize::from(self.table[slot]).checked_sub(1)?;
            if equal(self.keys[id].0.as_bytes(), key) {
                return Some(id);
            }
            slot = (slot + 1) % SLOTS;
        }
    }

    /// [`Known::find`] of `key`, the member after the one at `before` (a place, or
    /// [`FIRST`]): the key that followed it last time is compared first.
    #[inline(always)]
    pub fn find_after(&self, before: usize, key: &[u8]) -> Option<usize> {
        match self.guess(before) {
            Some(place) if equal(self.keys[place].0.as_bytes(), key) => Some(place),
            _ => self.find_learning(before, key),
        }
    }

    /// [`Known::find`] of `key`, kept as the guess after `before` when it is found.
    #[inline(never)]
    fn find_learning(&self, before: usize, key: &[u8]) -> Option<usize> {
        let found = self.find(key, tag(key));
        if let Some(place) = found {
            // Fits: a list has at most MOST places.
            self.after.0[before].store(place as u8, Ordering::Relaxed);
        }
        found
    }

    /// The place of the key that followed the one at `before` (a place, or [`FIRST`]) last
    /// time, when there is one.
    #[inline]
    pub fn guess(&self, before: usize) -> Option<usize> {
        let place = usize::from(self.after.0[before].load(Ordering::Relaxed));
        (place < self.keys.len()).then_some(place)
    }

    /// The key at `place`.
    #[inline]
    pub fn name(&self, place: usize) -> &'static str {
        self.keys[place].0
    }

    /// What the key at `place` means.
    #[inline]
    pub fn meaning(&self, place: usize) -> T
    where
        T: Copy,
    {
        self.keys[place].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static KEYS: Known = known!(&plain(["eventName", "eventSource", "a", "", "eventTime"]));

    #[test]
    fn keys_of_every_length_compare_as_their_bytes() {
        let text: Vec<u8> = (0..40u8).map(|n| b'a' + n % 26).collect();
        for n in 0..=40 {
            let key = &text[..n];
            let copy = key.to_vec();
            assert!(equal(key, &copy), "{n}");
            for at in 0..n {
                let mut other = key.to_vec();
                other[at] ^= 1;
                assert!(!equal(key, &other), "{n} {at}");
            }
            assert!(!equal(key, &text[..(n + 1).min(40)]) || n == 40);
        }
    }

    #[test]
    fn every_key_is_found_at_its_place_and_no_other_is() {
        for (n, key) in ["eventName", "eventSource", "a", "", "eventTime"]
            .iter()
            .enumerate()
        {
            assert_eq!(KEYS.find(key.as_bytes(), tag(key.as_bytes())), Some(n));
            assert_eq!(KEYS.member(key).id as usize, n);
        }
        for key in [
            "eventname",
            "b",
            "eventSourcf",
            "eventNam",
            "EventTime",
            "evenTTime",
        ] {
            assert_eq!(KEYS.find(key.as_bytes(), tag(key.as_bytes())), None);
        }
    }

    #[test]
    fn keys_with_one_tag_share_the_table() {
        static SAME: Known<u8> = known!(&[("axb", 7), ("ayb", 8), ("azb", 9)]);
        for (n, key) in ["axb", "ayb", "azb"].iter().enumerate() {
            assert_eq!(SAME.find(key.as_bytes(), tag(key.as_bytes())), Some(n));
            assert_eq!(SAME.meaning(n), 7 + n as u8);
        }
        assert_eq!(SAME.find(b"awb", tag(b"awb")), None);
    }

    #[test]
    fn a_guess_is_only_a_hint() {
        static ORDER: Known = known!(&plain(["type", "arn", "accountId"]));
        // Learnt: `arn` after `type`.
        assert_eq!(ORDER.find_after(0, b"arn"), Some(1));
        assert_eq!(ORDER.guess(0), Some(1));
        // Another key after `type`: found all the same, and guessed next time.
        assert_eq!(ORDER.find_after(0, b"accountId"), Some(2));
        assert_eq!(ORDER.guess(0), Some(2));
        assert_eq!(ORDER.find_after(0, b"arn"), Some(1));
        // A key the list lacks is not found, and leaves the guess.
        assert_eq!(ORDER.find_after(0, b"other"), None);
        assert_eq!(ORDER.find_after(0, b"ar"), None);
        assert_eq!(ORDER.guess(0), Some(1));
        assert_eq!(ORDER.guess(FIRST), None, "nothing learnt yet");
    }
}
