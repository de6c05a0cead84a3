//! `docs/configuration.md` is generated from the binary's own command line: this test builds
//! the reference from `Cli::command()` and fails when the file says anything else (a flag or
//! variable added without its entry, or documented but gone). After changing a flag, run
//! `UPDATE_DOCS=1 cargo test --test docs` and commit the file.
//!
//! Every relative link of the README and of `docs/` must lead to a file that exists and, when
//! it names a heading (`page.md#heading`), to a heading of that page (GitHub's anchors).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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
    for action in ["check", "test"] {
        let rules = Cli::command()
            .find_subcommand("rules")
            .and_then(|r| r.find_subcommand(action))
            .expect("a rules action")
            .clone();
        out.push_str(&format!("\n## `cloudtrail-ingest rules {action}`\n\n"));
        table(&mut out, rules.get_arguments());
    }
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

/// The Markdown pages whose links are checked: the README and every page of `docs/`.
fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    let docs = std::fs::read_dir(root.join("docs")).expect("docs/ exists");
    pages.extend(
        docs.map(|entry| entry.expect("a docs/ entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == "md")),
    );
    pages.sort();
    pages
}

/// The lines of `text` outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// The targets of the inline links `[text](target)` of `line`.
fn links(line: &str) -> Vec<&str> {
    line.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &line[at + 2..];
            rest.find(')').map(|end| &rest[..end])
        })
        .collect()
}

/// GitHub's anchors of the headings of a Markdown page: lower case, spaces as hyphens, and
/// everything but letters, digits, `-` and `_` left out; a repeated one gets `-1`, `-2`, ...
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in prose(text) {
        let Some(title) = line.strip_prefix('#') else {
            continue;
        };
        let slug: String = title
            .trim_start_matches('#')
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let unique = (0..)
            .map(|n| match n {
                0 => slug.clone(),
                n => format!("{slug}-{n}"),
            })
            .find(|candidate| !seen.contains(candidate))
            .expect("a free anchor");
        seen.insert(unique);
    }
    seen
}

#[test]
fn every_relative_link_leads_to_a_page_and_heading_that_exist() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("a readable page");
        let dir = page.parent().expect("a page has a folder");
        for target in prose(&text).into_iter().flat_map(links) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let file = if file.is_empty() {
                page.clone()
            } else {
                dir.join(file)
            };
            let name = format!("{} -> {target}", page.display());
            if !file.exists() {
                broken.push(format!("{name}: no such file"));
            } else if !anchor.is_empty() {
                let text = std::fs::read_to_string(&file).expect("a readable target");
                if !anchors(&text).contains(anchor) {
                    broken.push(format!("{name}: no such heading"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn anchors_are_github_s() {
    let page = "# Title\n## `cloudtrail-ingest [run|check]` (SQS, the default)\n```\n# not a heading\n```\n## Limits, in plain words\n## Limits, in plain words\n";
    let anchors = anchors(page);
    for anchor in [
        "title",
        "cloudtrail-ingest-runcheck-sqs-the-default",
        "limits-in-plain-words",
        "limits-in-plain-words-1",
    ] {
        assert!(anchors.contains(anchor), "{anchor} in {anchors:?}");
    }
    assert_eq!(anchors.len(), 4);
}
