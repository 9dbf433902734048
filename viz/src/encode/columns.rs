//! Packing columns into one little-endian byte block the page views as typed arrays.

use serde::Serialize;
use std::collections::BTreeMap;

/// Where one column sits in the data block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnMeta {
    /// Element type: `f64`, `u32`, `i32` or `u16` (the page picks the typed array from it).
    #[serde(rename = "type")]
    pub ty: &'static str,
    /// Byte offset from the start of the column block (a multiple of 8).
    pub offset: usize,
    /// Number of elements.
    pub length: usize,
}

/// A growing column block.
#[derive(Debug, Default)]
pub struct ColumnBlock {
    bytes: Vec<u8>,
    index: BTreeMap<String, ColumnMeta>,
}

/// A value that can be packed as a column element.
pub trait Element: Copy {
    /// The type name the page understands.
    const TYPE: &'static str;
    /// Appends the little-endian bytes.
    fn put(self, out: &mut Vec<u8>);
}

macro_rules! element {
    ($t:ty, $name:literal) => {
        impl Element for $t {
            const TYPE: &'static str = $name;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
element!(f64, "f64");
element!(u32, "u32");
element!(i32, "i32");
element!(u16, "u16");

impl ColumnBlock {
    /// Appends a column named `name` holding `values`.
    pub fn push<T: Element>(&mut self, name: &str, values: impl ExactSizeIterator<Item = T>) {
        // Typed arrays need their offset aligned to the element size; 8 suits every type.
        while self.bytes.len() % 8 != 0 {
            self.bytes.push(0);
        }
        let offset = self.bytes.len();
        let length = values.len();
        self.bytes.reserve(length * std::mem::size_of::<T>());
        for v in values {
            v.put(&mut self.bytes);
        }
        self.index.insert(name.to_string(), ColumnMeta { ty: T::TYPE, offset, length });
    }

    /// The column index, for the metadata.
    pub fn index(&self) -> &BTreeMap<String, ColumnMeta> {
        &self.index
    }

    /// The packed bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::ColumnBlock;

    #[test]
    fn aligns_every_column_to_eight_bytes() {
        let mut b = ColumnBlock::default();
        b.push("a", [1u16, 2, 3].into_iter());
        b.push("b", [7.5f64].into_iter());
        b.push("c", [-1i32].into_iter());
        let idx = b.index().clone();
        assert_eq!(idx["a"].offset, 0);
        assert_eq!(idx["b"].offset, 8);
        assert_eq!(idx["c"].offset, 16);
        let bytes = b.into_bytes();
        assert_eq!(&bytes[0..6], &[1, 0, 2, 0, 3, 0]);
        assert_eq!(&bytes[8..16], &7.5f64.to_le_bytes());
        assert_eq!(&bytes[16..20], &[0xff; 4]);
    }
}
