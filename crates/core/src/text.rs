//! Foreign strings in terminal text.
//!
//! Text output shows strings that others wrote: report fields, DNS records, policy lines, SMTP
//! replies, file names. Printed raw, a control character in one of them is a command to the
//! terminal: `\r` rewrites the line ("0 failed"), `ESC [2J` clears the screen, a bidi override
//! reorders what follows. [`escape`] is the one rule every text output applies to such a string
//! (JSON and CSV quote by their own rules and do not need it).
//!
//! ```
//! use mtasts_core::text::escape;
//! assert_eq!(escape("mx.example.com"), "mx.example.com");
//! assert_eq!(escape("303 failed\r0 failed"), "303 failed\\r0 failed");
//! assert_eq!(escape("\u{1b}[2JPASS"), "\\u{1b}[2JPASS");
//! ```

use std::borrow::Cow;
use std::fmt::Write;

/// `s` with every character a terminal could act on written as an escape: `\n`, `\r`, `\t`, and
/// `\u{..}` for the other control characters (C0, DEL, C1) and the bidirectional formatting
/// characters (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069). Everything else, backslashes
/// included, is kept. Borrowed when there is nothing to escape.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(acts_on_terminal) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if acts_on_terminal(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`escape`] for text of several lines: each line escaped, line ends kept as `\n` (a `\r`
/// before them included in the escaping, so `\r\n` shows as `\r` and a line end).
pub fn escape_lines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && acts_on_terminal(c)) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.split('\n').map(escape).collect::<Vec<_>>().join("\n"))
}

fn acts_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_escaped_and_text_is_kept() {
        assert!(matches!(escape("Bücher, 日本, a\\b"), Cow::Borrowed(_)));
        assert_eq!(escape("a\u{7f}b\u{9b}c"), "a\\u{7f}b\\u{9b}c");
        assert_eq!(escape("\u{202e}gnp.exe"), "\\u{202e}gnp.exe");
        assert_eq!(escape("\0\u{7}"), "\\u{0}\\u{7}");
        assert_eq!(escape("a\tb\nc"), "a\\tb\\nc");
        assert_eq!(
            escape_lines("one\r\ntwo\u{1b}[2J\nthree"),
            "one\\r\ntwo\\u{1b}[2J\nthree"
        );
        assert!(matches!(escape_lines("one\ntwo"), Cow::Borrowed(_)));
    }
}
