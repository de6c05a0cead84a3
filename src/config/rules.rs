//! `cloudtrail-ingest rules check` and `rules test`: the rule files, and the log files rules
//! are tested on.

use std::path::PathBuf;

use clap::Args;

use super::detect::{parse_level, Level};
use super::s3::S3Config;

/// `cloudtrail-ingest rules check PATH...` and `rules test`.
#[derive(Debug, Clone, Args)]
pub struct RulesCommand {
    #[command(subcommand)]
    pub action: RulesAction,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum RulesAction {
    /// Load rule files and folders as --rules does and list what loads (with the sources
    /// each rule applies to and the field it is indexed by) and what does not, with the
    /// reason. Exits 1 when a rule cannot be used.
    Check {
        /// Rule files or folders.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// As --alert-min-level: rules below it are listed as not used.
        #[arg(long, default_value = "informational", value_parser = parse_level, value_name = "LEVEL")]
        alert_min_level: Level,
    },
    /// Run detection rules and drop rules over local log files, as the `files` source reads
    /// them, without a cluster: each alert as a JSON line on standard output, then one JSON
    /// line per rule with the events it matched or would drop, then the totals. Exits 1 when
    /// a rule cannot be used or a file cannot be read.
    Test(RulesTest),
}

/// `cloudtrail-ingest rules test [--rules PATH]... [--drop-rules PATH]... PATH...`
#[derive(Debug, Clone, Args)]
#[command(mut_arg("s3_force_path_style", |arg| arg.hide(true)))]
pub struct RulesTest {
    /// Log files, folders (read recursively, in name order) or `-` for standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Detection rules: a rule file or a folder (repeatable).
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,

    /// Drop rules: a rule file or a folder (repeatable).
    #[arg(long = "drop-rules", value_name = "PATH")]
    pub drop_rules: Vec<PathBuf>,

    #[command(flatten)]
    pub s3: S3Config,
}
