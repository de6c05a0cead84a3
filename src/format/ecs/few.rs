//! Few: a list whose first `N` items are kept in place, for the short lists a mapping
//! gathers per document (its related names, the resources it wrote), which then cost no
//! allocation; any more go to a `Vec`.
//!
//! Pure: no I/O.

use std::borrow::Cow;

/// A list, its first `N` items in place.
#[derive(Debug)]
pub struct Few<T, const N: usize> {
    first: [T; N],
    count: usize,
    more: Vec<T>,
}

impl<T: Default, const N: usize> Default for Few<T, N> {
    fn default() -> Self {
        Few {
            first: std::array::from_fn(|_| T::default()),
            count: 0,
            more: Vec::new(),
        }
    }
}

impl<T, const N: usize> Few<T, N> {
    pub fn push(&mut self, item: T) {
        match self.first.get_mut(self.count) {
            Some(place) => {
                *place = item;
                self.count += 1;
            }
            None => self.more.push(item),
        }
    }

    /// The items, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.first[..self.count].iter().chain(&self.more)
    }

    /// The items as one slice: borrowed while they fit in place.
    pub fn as_slice(&self) -> Cow<'_, [T]>
    where
        T: Clone,
    {
        let first = &self.first[..self.count];
        if self.more.is_empty() {
            Cow::Borrowed(first)
        } else {
            Cow::Owned(first.iter().chain(&self.more).cloned().collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_keep_their_order_in_place_and_past_it() {
        let mut few: Few<usize, 3> = Few::default();
        assert!(matches!(few.as_slice(), Cow::Borrowed([])));
        for n in 0..5 {
            few.push(n);
        }
        assert_eq!(few.iter().copied().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        assert_eq!(*few.as_slice(), [0, 1, 2, 3, 4]);
    }
}
