//! Splitting a policy body into lines (D4: LF or CRLF; D5: bare CR counted).

pub(super) struct Lines<'a> {
    /// (1-based line number, line bytes without terminator).
    pub(super) lines: Vec<(usize, &'a [u8])>,
    pub(super) count: usize,
    /// First line ending in a bare CR, and how many do.
    pub(super) bare_cr: Option<(usize, usize)>,
}

/// Splits on LF and CRLF (D4). A bare CR also ends a line, so the rest of the file can still be
/// checked, but it is counted: the grammar does not allow it (D5).
pub(super) fn split_lines(body: &[u8]) -> Lines<'_> {
    let mut lines = Vec::new();
    let mut bare: Option<(usize, usize)> = None;
    let mut start = 0;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\n' => {
                let end = if i > start && body[i - 1] == b'\r' {
                    i - 1
                } else {
                    i
                };
                lines.push((lines.len() + 1, &body[start..end]));
                start = i + 1;
            }
            b'\r' if body.get(i + 1) != Some(&b'\n') => {
                lines.push((lines.len() + 1, &body[start..i]));
                let no = lines.len();
                bare = Some(bare.map_or((no, 1), |(first, n)| (first, n + 1)));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < body.len() {
        lines.push((lines.len() + 1, &body[start..]));
    }
    let count = lines.len();
    Lines {
        lines,
        count,
        bare_cr: bare,
    }
}
