//! XML text escaping.

/// Escapes `s` for an attribute value (line breaks become character references, which
/// attribute normalisation would otherwise turn into spaces). Characters XML 1.0 cannot carry
/// at all (most C0 controls) become U+FFFD, so a stray byte in a buffer name cannot make the
/// file unparseable for the CI server.
pub(crate) fn escape(s: &str) -> String {
    escape_with(s, true)
}

/// Escapes `s` for element text, keeping line breaks readable.
pub(crate) fn escape_text(s: &str) -> String {
    escape_with(s, false)
}

fn escape_with(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\t' if !attribute => out.push(c),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup_and_drops_controls() {
        assert_eq!(super::escape("a<b & \"c\"\n\u{1}"), "a&lt;b &amp; &quot;c&quot;&#10;\u{fffd}");
        assert_eq!(super::escape_text("a<b\n\tc"), "a&lt;b\n\tc");
    }
}
