//! The `ttsan` command line: option parsing and dispatch. Each subcommand lives in its own module
//! and does little more than call into the library crates.

pub mod analyze;
pub mod ci;
pub mod diff;
pub mod doctor;
pub mod doctor_workload;
pub mod exit;
pub mod export;
pub mod gpt_oss;
pub mod gpt_oss_args;
pub mod import;
pub mod options;
pub mod report;
pub mod run;
pub mod run_cmd;
pub mod run_gpt_oss;
pub mod settings;
pub mod trace;
pub mod tt_metal;
