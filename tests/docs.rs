//! `docs/configuration.md` is generated from the binary's own command line: this test builds
//! the reference from `Cli::command()` and fails when the file says anything else (a flag or
//! variable added without its entry, or documented but gone). After changing a flag, run
//! `UPDATE_DOCS=1 cargo test --test docs` and commit the file.

use std::collections::BTreeSet;
use std::path::Path;

use clap::{Arg, ArgAction, Command, CommandFactory};
use cloudtrail_ingest::cli::Cli;

const PATH: &str = "docs/configuration.md";

/// The commands that ingest, with the title each has in the reference.
fn commands() -> Vec<(String, Command)> {
    let root = Cli::command();
    let mut commands = vec![(
        "`cloudtrail-ingest [run|check]` (SQS, the default)".to_string(),
        root.clone(),
    )];
    for name in ["kafka", "webhook", "backfill", "files"] {
        let command = root.find_subcommand(name).expect("a command").clone();
        commands.push((format!("`cloudtrail-ingest {name}`"), command));
    }
    commands
}

/// Whether a flag belongs in the reference (not hidden, not `--help`/`--version`).
fn listed(arg: &Arg) -> bool {
    !arg.is_hide_set() && !matches!(arg.get_id().as_str(), "help" | "version")
}

/// The whole reference: the flags every ingesting command shares, then each command's own.
fn reference() -> String {
    let commands = commands();
    // A flag is shared when every command lists it with the same row (same default, too).
    let rows = |command: &Command| -> BTreeSet<String> {
        command
            .get_arguments()
            .filter(|a| listed(a))
            .map(row)
            .collect()
    };
    let shared = commands
        .iter()
        .map(|(_, c)| rows(c))
        .reduce(|a, b| a.intersection(&b).cloned().collect())
        .unwrap_or_default();
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated from the binary by `tests/docs.rs`; after changing a flag, run\n\
         `UPDATE_DOCS=1 cargo test --test docs`. Every flag has an environment variable and is a\n\
         key of the same name in a `--config` file (TOML). A flag beats its environment variable,\n\
         which beats the file, which beats the default. Durations are human-readable (`250ms`,\n\
         `30s`, `5m`). [All documentation](README.md).\n\n\
         ## Every ingesting command\n\n",
    );
    let (_, root) = &commands[0];
    table(
        &mut out,
        root.get_arguments().filter(|a| shared.contains(&row(a))),
    );
    for (title, command) in &commands {
        out.push_str(&format!("\n## {title}\n\n"));
        if let Some(about) = command.get_about() {
            out.push_str(&format!("{}\n\n", one_line(&about.to_string())));
        }
        let own = command
            .get_arguments()
            .filter(|a| !shared.contains(&row(a)));
        table(&mut out, own);
    }
    let rules = Cli::command()
        .find_subcommand("rules")
        .and_then(|r| r.find_subcommand("check"))
        .expect("rules check")
        .clone();
    out.push_str("\n## `cloudtrail-ingest rules check`\n\n");
    table(&mut out, rules.get_arguments());
    out
}

/// A table of `args`, one row each.
fn table<'a>(out: &mut String, args: impl Iterator<Item = &'a Arg>) {
    out.push_str(
        "| flag | environment variable | default | meaning |\n| --- | --- | --- | --- |\n",
    );
    for arg in args.filter(|a| listed(a)) {
        out.push_str(&row(arg));
    }
}

/// The table row of one flag.
fn row(arg: &Arg) -> String {
    {
        let names: Vec<String> = arg
            .get_value_names()
            .map(|v| v.iter().map(ToString::to_string).collect())
            .unwrap_or_else(|| vec![arg.get_id().as_str().to_uppercase()]);
        let takes = !matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        let flag = match arg.get_long() {
            Some(long) if takes => format!("`--{long} {}`", names.join(" ")),
            Some(long) => format!("`--{long}`"),
            None => format!("`{}`", names.join(" ")),
        };
        let env = arg
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_else(|| "-".into());
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .filter(|v| takes || v != "false")
            .collect();
        let default = if defaults.is_empty() {
            "-".to_string()
        } else {
            format!("`{}`", defaults.join(","))
        };
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| one_line(&h.to_string()))
            .unwrap_or_default();
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|_| takes)
            .map(|p| format!("`{}`", p.get_name()))
            .collect();
        let help = if possible.is_empty() {
            help
        } else {
            format!("{help} (one of {})", possible.join(", "))
        };
        format!("| {flag} | {env} | {default} | {help} |\n")
    }
}

/// `text` on one line, safe inside a table cell.
fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

#[test]
fn the_configuration_reference_is_the_binary_s() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(PATH);
    let generated = reference();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).expect("docs written");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{PATH} is not what the binary says; run `UPDATE_DOCS=1 cargo test --test docs` and commit it"
    );
}
