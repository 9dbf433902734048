//! A string table: every distinct name, op name and stack is stored once and referred to by index.

use std::collections::HashMap;
use std::sync::Arc;

/// Deduplicated strings. Index 0 is always the empty string, so "no name" costs nothing.
#[derive(Debug, Clone)]
pub struct StringTable {
    index: HashMap<Arc<str>, u32>,
    list: Vec<Arc<str>>,
}

impl Default for StringTable {
    fn default() -> Self {
        let empty: Arc<str> = Arc::from("");
        StringTable { index: HashMap::from([(empty.clone(), 0)]), list: vec![empty] }
    }
}

impl StringTable {
    /// The index of `s`, adding it when new.
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = u32::try_from(self.list.len()).unwrap_or(u32::MAX);
        let owned: Arc<str> = Arc::from(s);
        self.index.insert(owned.clone(), i);
        self.list.push(owned);
        i
    }

    /// The index of an optional string (0 for `None`).
    pub fn intern_opt(&mut self, s: Option<&str>) -> u32 {
        s.map_or(0, |s| self.intern(s))
    }

    /// The string at `i` (empty when out of range).
    pub fn get(&self, i: u32) -> &str {
        self.list.get(i as usize).map_or("", |s| s)
    }

    /// Every string, in index order.
    pub fn as_slice(&self) -> &[Arc<str>] {
        &self.list
    }

    /// Number of strings, the empty one included.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether only the empty string is present.
    pub fn is_empty(&self) -> bool {
        self.list.len() <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::StringTable;

    #[test]
    fn interns_once_and_keeps_empty_at_zero() {
        let mut t = StringTable::default();
        assert_eq!(t.intern(""), 0);
        let a = t.intern("layer1.attn.sinks");
        assert_eq!(t.intern("layer1.attn.sinks"), a);
        assert_ne!(t.intern("other"), a);
        assert_eq!(t.get(a), "layer1.attn.sinks");
        assert_eq!(t.intern_opt(None), 0);
        assert_eq!(t.len(), 3);
        assert_eq!(t.get(99), "");
    }
}
