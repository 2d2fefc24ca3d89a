//! The `mtasts` command-line tool.
fn main() {}
