//! A small sorted set of allocation ids: the value stored per address range.

/// The allocations sharing a range of bytes: almost always one, more only when allocations
/// overlap (which is itself a finding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ids {
    /// One allocation.
    One(u64),
    /// Several, sorted and distinct.
    Many(Box<[u64]>),
}

impl Ids {
    /// The ids as a slice.
    pub fn as_slice(&self) -> &[u64] {
        match self {
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Many(ids) => ids,
        }
    }

    /// The set with `id` added.
    pub fn with(&self, id: u64) -> Ids {
        let mut v = self.as_slice().to_vec();
        if let Err(pos) = v.binary_search(&id) {
            v.insert(pos, id);
        }
        Ids::from_vec(v).unwrap_or(Ids::One(id))
    }

    /// The set with `id` removed, or `None` when it becomes empty.
    pub fn without(&self, id: u64) -> Option<Ids> {
        let v: Vec<u64> = self.as_slice().iter().copied().filter(|&x| x != id).collect();
        Ids::from_vec(v)
    }

    fn from_vec(v: Vec<u64>) -> Option<Ids> {
        match v.len() {
            0 => None,
            1 => Some(Ids::One(v[0])),
            _ => Some(Ids::Many(v.into_boxed_slice())),
        }
    }
}
