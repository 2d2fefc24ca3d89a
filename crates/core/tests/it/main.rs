//! The core crate's integration tests, one binary (ARCHITECTURE.md, "Testing").
//!
//! Test names start with the decision row (`d07_...`, docs/decisions.md) or requirement row
//! (`s15_...`, `t12_...`, docs/requirements.md) they prove; docs/conformance.md lists them.

mod catalog;
mod corpus;
mod fuzz_corpus;
mod hostile;
mod policy;
mod props;
mod record;
mod render;
mod report;

use mtasts_core::Diagnostic;

/// A well-formed enforce policy whose hosts trip no placeholder heuristics.
pub(crate) const GOOD: &str = "version: STSv1\nmode: enforce\nmx: mx1.contoso.net\nmx: *.mail.contoso.net\nmax_age: 1209600\n";

pub(crate) fn ids(d: &[Diagnostic]) -> Vec<&'static str> {
    d.iter().map(|d| d.id).collect()
}

pub(crate) fn find<'a>(d: &'a [Diagnostic], id: &str) -> &'a Diagnostic {
    d.iter()
        .find(|x| x.id == id)
        .unwrap_or_else(|| panic!("no {id} in {:#?}", ids(d)))
}

/// Path of the shared test data.
pub(crate) fn data_dir(sub: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(sub)
}
