//! Known: the keys a mapping looks up in an object, each given its place once, so that a
//! lookup is an index instead of a search.
//!
//! A mapping lists the keys it reads from an object as a `static` [`Known`], built at compile
//! time (a small open-addressing table keyed by each key's length and first and last bytes),
//! each key with what it means to the mapping (an enum of its own, or `()`). A record's top
//! level read whole ([`super::Top`]) keeps each known key's value at its place, and the
//! mapping names a key by its [`Member`], found at compile time (`KNOWN.member("eventName")` in a
//! `const { }` block, a compile error for a key the list lacks). A [`super::Cursor`] reading
//! member by member hands each known key's meaning to the mapping as it meets it, the first
//! time only ([`super::Cursor::next`]): a repeated key is left, in one place for every
//! mapping.
//!
//! Pure: no I/O.

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
}

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

/// Whether `a` and `b` are the same bytes: keys of up to 16 bytes in two overlapping words,
/// with no call.
#[inline]
fn equal(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4"));
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
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
    pub const fn new(keys: &'static [(&'static str, T)]) -> Known<T> {
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
        Known { keys, table }
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

    static KEYS: Known = Known::new(&plain(["eventName", "eventSource", "a", "", "eventTime"]));

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
        static SAME: Known<u8> = Known::new(&[("axb", 7), ("ayb", 8), ("azb", 9)]);
        for (n, key) in ["axb", "ayb", "azb"].iter().enumerate() {
            assert_eq!(SAME.find(key.as_bytes(), tag(key.as_bytes())), Some(n));
            assert_eq!(SAME.meaning(n), 7 + n as u8);
        }
        assert_eq!(SAME.find(b"awb", tag(b"awb")), None);
    }
}
