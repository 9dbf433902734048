//! The model layer a buffer belongs to, read from its name.
//!
//! Names follow the model's module path (`layer1.attn.sinks`, `model.layers.12.mlp.w1`,
//! `blocks.3.ffn`), so the number after a `layer`/`block` component is the layer. Filtering by it
//! is the quickest way to find one layer's buffers among thousands.

/// The layer number in `name`, if it names one.
pub fn parse_layer(name: &str) -> Option<u32> {
    let lower = name.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    for word in ["layers", "layer", "blocks", "block"] {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(word) {
            let start = from + pos;
            let end = start + word.len();
            from = end;
            // A component boundary must precede the word, so `player3` is not layer 3.
            if start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
                continue;
            }
            let mut digits = end;
            if matches!(bytes.get(digits), Some(b'.' | b'_' | b'-' | b'/' | b'[')) {
                digits += 1;
            }
            let run = bytes[digits..].iter().take_while(|b| b.is_ascii_digit()).count();
            if run == 0 {
                continue;
            }
            if let Ok(n) = lower[digits..digits + run].parse() {
                return Some(n);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::parse_layer;

    #[test]
    fn reads_common_module_paths() {
        assert_eq!(parse_layer("layer1.attn.sinks"), Some(1));
        assert_eq!(parse_layer("model.layers.12.mlp.w1"), Some(12));
        assert_eq!(parse_layer("blocks.3.ffn"), Some(3));
        assert_eq!(parse_layer("Layer_7/kv"), Some(7));
        assert_eq!(parse_layer("model.layers[4].attn"), Some(4));
        assert_eq!(parse_layer("player3"), None);
        assert_eq!(parse_layer("layernorm.weight"), None);
        assert_eq!(parse_layer(""), None);
        assert_eq!(parse_layer("layers.x.layer2"), Some(2));
    }
}
