//! A plain slab: the worker's tasks and the reactor's sources keep their
//! index for life, and freed indexes are reused.

/// Values under stable indexes; freed indexes are reused.
pub(crate) struct Slab<T> {
    entries: Vec<Option<T>>,
    free: Vec<usize>,
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    /// The index the next `insert` will use.
    pub(crate) fn vacant_key(&self) -> usize {
        self.free.last().copied().unwrap_or(self.entries.len())
    }

    pub(crate) fn insert(&mut self, value: T) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(key) => {
                self.entries[key] = Some(value);
                key
            }
            None => {
                self.entries.push(Some(value));
                self.entries.len() - 1
            }
        }
    }

    pub(crate) fn get(&self, key: usize) -> Option<&T> {
        self.entries.get(key).and_then(Option::as_ref)
    }

    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        self.entries.get_mut(key).and_then(Option::as_mut)
    }

    pub(crate) fn remove(&mut self, key: usize) -> Option<T> {
        let value = self.entries.get_mut(key)?.take()?;
        self.free.push(key);
        self.len -= 1;
        Some(value)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.free.clear();
        self.len = 0;
        self.entries.drain(..).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slab_reuses_freed_keys_and_says_which_comes_next() {
        let mut slab = Slab::new();
        assert_eq!(slab.vacant_key(), 0);
        let a = slab.insert('a');
        let b = slab.insert('b');
        assert_eq!((a, b, slab.len()), (0, 1, 2));
        assert_eq!(slab.remove(a), Some('a'));
        assert_eq!(slab.remove(a), None, "removed once");
        assert_eq!(slab.vacant_key(), a);
        assert_eq!(slab.insert('c'), a, "a freed key is reused");
        assert_eq!(slab.get(a), Some(&'c'));
        assert_eq!(slab.get(7), None);
        assert_eq!(slab.drain().collect::<Vec<_>>(), ['c', 'b']);
        assert_eq!((slab.len(), slab.vacant_key()), (0, 0));
    }
}
