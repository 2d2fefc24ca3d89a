//! The report as people and spreadsheets read it: text ([`text`]), CSV ([`csv`]) and the
//! adoption summary of a bulk run ([`summary`]). JSON is the model's own serialisation.
//!
//! Every foreign string (names, records, server replies, errors, finding messages that quote
//! them) goes through [`mtasts_core::text::escape`] in text output, so a hostile record or
//! banner cannot act on the terminal; CSV quotes by RFC 4180 instead.

pub mod csv;
pub mod summary;
pub mod text;

/// The colours of text output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Colour {
    Red,
    Green,
    Yellow,
    Cyan,
}

/// `word` in `colour` (ANSI SGR foreground, reset after) when `on`, plain otherwise.
fn paint(word: &str, colour: Colour, on: bool) -> String {
    if !on {
        return word.to_owned();
    }
    let code = match colour {
        Colour::Red => 31,
        Colour::Green => 32,
        Colour::Yellow => 33,
        Colour::Cyan => 36,
    };
    format!("\x1b[{code}m{word}\x1b[39m")
}

/// `1 error`, `2 warnings`.
fn plural<N: std::fmt::Display + PartialEq + From<u8>>(n: N, word: &str) -> String {
    let s = if n == N::from(1) { "" } else { "s" };
    format!("{n} {word}{s}")
}
