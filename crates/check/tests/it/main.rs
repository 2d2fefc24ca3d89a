//! `check_domain` against scenarios on the hermetic test internet: one test per finding that
//! produces it, and a clean domain that shows none of them.

mod catalog;
mod dane;
mod scenarios;
mod world;
