//! Escaping text for the two places trace strings reach the page outside the compressed block.
//!
//! Every other string (buffer and op names, stacks, findings) travels inside the gzip+base64
//! block, which contains only `[A-Za-z0-9+/=]`, and the page inserts it with `textContent` or
//! canvas `fillText`, never as markup.

/// `s` as HTML text (element content or a quoted attribute value).
pub fn html_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON text made safe to sit inside a `<script>` element.
///
/// A `<script>` element ends at the first `</script` whatever the JSON means, and `<!--` can
/// change how the parser looks for that end; escaping every `<`, `>` and `&` as `\u00XX` keeps
/// the JSON value identical while the element can no longer be closed early. U+2028/U+2029 are
/// escaped too, for engines that treat them as line ends in script.
pub fn json_in_script(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{html_text, json_in_script};

    #[test]
    fn markup_becomes_text() {
        assert_eq!(html_text("<script>alert(1)</script>"), "&lt;script&gt;alert(1)&lt;/script&gt;");
        assert_eq!(html_text("a\"b'c&"), "a&quot;b&#39;c&amp;");
    }

    #[test]
    fn json_cannot_close_the_script_element() {
        let json = serde_json::to_string(&serde_json::json!({"name": "</script><!-- \u{2028}"})).unwrap();
        let safe = json_in_script(&json);
        assert!(!safe.contains('<') && !safe.contains('>'));
        assert!(!safe.contains('\u{2028}'));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["name"], "</script><!-- \u{2028}");
    }
}
