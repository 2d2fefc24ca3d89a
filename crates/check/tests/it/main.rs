//! `check_domain` against scenarios on the hermetic test internet: one test per finding that
//! produces it, and a clean domain that shows none of them.

mod dane;
mod render;
mod round_trip;
mod rows;
mod scenario_set;
mod scenarios;
mod scenarios_net;
mod verdicts;
mod world;
