//! Op names, interned on the producers' side.
//!
//! A program announces the same few op names over and over (`ttnn::add`, its device operation,
//! ...). Sending each op's name as a fresh `String` inside a boxed event cost two allocations
//! in tt-metal's thread and their frees in the writer thread, and frees of another thread's
//! blocks contend for glibc's arena lock (in the profile of an op loop, most of the shim's
//! time). An interned name crosses to the writer once; ops then carry its id.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

/// Distinct names interned at most (a bound, not a policy): past it, ops carry their name
/// inline again.
const MAX_NAMES: usize = 1 << 16;

/// The names seen so far, by id.
pub(crate) struct OpNames {
    ids: HashMap<String, u32, BuildHasherDefault<std::collections::hash_map::DefaultHasher>>,
    names: Vec<String>,
}

impl OpNames {
    /// An empty table.
    pub(crate) const fn new() -> Self {
        OpNames { ids: HashMap::with_hasher(BuildHasherDefault::new()), names: Vec::new() }
    }

    /// The id of `name` and whether it was new (its definition must then be sent before its
    /// first use), or `None` when the table is full and `name` is not in it.
    pub(crate) fn intern(&mut self, name: &str) -> Option<(u32, bool)> {
        if let Some(&id) = self.ids.get(name) {
            return Some((id, false));
        }
        if self.names.len() >= MAX_NAMES {
            return None;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name.to_owned(), id);
        self.names.push(name.to_owned());
        Some((id, true))
    }

    /// The name of an id [`OpNames::intern`] gave.
    pub(crate) fn get(&self, id: u32) -> &str {
        self.names.get(id as usize).map(String::as_str).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_interned_once_and_read_back() {
        let mut t = OpNames::new();
        assert_eq!(t.intern("ttnn::add"), Some((0, true)));
        assert_eq!(t.intern("ttnn::matmul"), Some((1, true)));
        assert_eq!(t.intern("ttnn::add"), Some((0, false)));
        assert_eq!((t.get(0), t.get(1), t.get(7)), ("ttnn::add", "ttnn::matmul", ""));
    }

    #[test]
    fn a_full_table_still_answers_for_what_it_holds() {
        let mut t = OpNames::new();
        for i in 0..MAX_NAMES {
            assert!(t.intern(&format!("op{i}")).is_some());
        }
        assert_eq!(t.intern("one more"), None);
        assert_eq!(t.intern("op5"), Some((5, false)));
    }
}
