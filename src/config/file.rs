//! `--config FILE`: the same flags as a TOML file, every key a flag's long name
//! (`elasticsearch-url = "https://..."`, `bulk-max-bytes = 5242880`, `rules = ["a.yml",
//! "b.yml"]`, `exit-when-idle = true`); and `--print-config`, the effective configuration.
//!
//! The file's values become the defaults of the command's flags, so a flag beats its
//! environment variable, which beats the file, which beats the built-in default. A key that
//! is not a flag of the command, a value of the wrong type or one its flag refuses is an
//! error naming the key and the file, checked before anything runs. Values from the file
//! never show in `--help`; secrets (the flags whose environment values are hidden) print
//! redacted, as everywhere else.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};

use super::secret::{AlertUrl, ClusterUrl};

/// The flag that names the file, and its environment variable.
pub const FLAG: &str = "config";
pub const ENV: &str = "CLOUDTRAIL_INGEST_CONFIG";
/// The flag that prints the effective configuration.
pub const PRINT_FLAG: &str = "print-config";

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct FileError {
    pub path: String,
    pub reason: String,
}

/// The file `args` name with `--config FILE` (or `--config=FILE`), else the one in
/// `$CLOUDTRAIL_INGEST_CONFIG`.
pub fn path_in(args: &[OsString]) -> Option<PathBuf> {
    let flag = format!("--{FLAG}");
    let prefixed = format!("--{FLAG}=");
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            break;
        }
        if text == flag {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix(&prefixed) {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os(ENV).map(PathBuf::from)
}

/// `command` with the values of the file at `path` as the defaults of its flags.
pub fn apply(mut command: Command, path: &Path) -> Result<Command, FileError> {
    let error = |reason: String| FileError {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| error(e.message().to_string()))?;
    for (key, value) in table {
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(key.as_str()))
            .filter(|_| key != FLAG && key != PRINT_FLAG)
            .ok_or_else(|| error(format!("unknown key {key:?}: not a flag of this command")))?;
        let values = values(arg, &value).map_err(|reason| error(format!("{key}: {reason}")))?;
        for value in &values {
            check(arg, &key, value).map_err(|reason| error(format!("{key}: {reason}")))?;
        }
        // The defaults live as long as the command line: a few strings, once.
        let values: Vec<&'static str> = values
            .into_iter()
            .map(|v| &*Box::leak(v.into_boxed_str()))
            .collect();
        let id = arg.get_id().clone();
        let takes_value = !is_switch(arg);
        command = command.mut_arg(id, |arg| {
            arg.default_values(values).hide_default_value(takes_value)
        });
    }
    Ok(command)
}

/// The strings a TOML value stands for, as the flag takes them on the command line.
fn values(arg: &Arg, value: &toml::Value) -> Result<Vec<String>, String> {
    let (switch, repeats) = (is_switch(arg), takes_many(arg));
    match value {
        toml::Value::Boolean(b) => Ok(vec![b.to_string()]),
        _ if switch => Err("must be true or false".into()),
        toml::Value::String(s) => Ok(vec![s.clone()]),
        toml::Value::Integer(n) => Ok(vec![n.to_string()]),
        toml::Value::Float(n) => Ok(vec![n.to_string()]),
        toml::Value::Array(items) if repeats => items
            .iter()
            .map(|item| match item {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(n) => Ok(n.to_string()),
                _ => Err("must be an array of strings".to_string()),
            })
            .collect(),
        toml::Value::Array(_) => Err("takes one value, not an array".into()),
        _ => Err("must be a string, a number, true/false or an array".into()),
    }
}

/// Whether the flag's own parser takes `value`; its error never repeats a secret.
fn check(arg: &Arg, long: &str, value: &str) -> Result<(), String> {
    if is_switch(arg) {
        return Ok(()); // `values` took only true or false
    }
    let alone = Arg::new("value")
        .long("value")
        .value_parser(arg.get_value_parser().clone())
        .action(ArgAction::Set);
    let probe = Command::new("config").no_binary_name(true).arg(alone);
    match probe.try_get_matches_from([format!("--value={value}")]) {
        Ok(_) => Ok(()),
        Err(_) if arg.is_hide_env_values_set() => Err("is not a valid value".into()),
        Err(err) => {
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("is not a valid value");
            let first = first.trim_start_matches("error: ");
            let possible = text.lines().find(|l| l.contains("[possible values"));
            let first = first.replace("'--value <value>'", &format!("--{long}"));
            Err(match possible {
                Some(values) => format!("{first} {}", values.trim()),
                None => first,
            })
        }
    }
}

/// The effective configuration of `command` as `matches` hold it, as a TOML file that
/// `--config` reads back; secrets redacted.
pub fn effective(command: &Command, matches: &ArgMatches) -> String {
    let mut out = String::new();
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else {
            continue;
        };
        if matches!(long, FLAG | PRINT_FLAG | "help" | "version") {
            continue;
        }
        let Some(raw) = matches.get_raw(arg.get_id().as_str()) else {
            continue;
        };
        let values: Vec<String> = raw
            .map(|v| redact(arg, long, &v.to_string_lossy()))
            .collect();
        let (switch, repeats) = (is_switch(arg), takes_many(arg));
        let line = match values.as_slice() {
            [] if repeats => format!("{long} = []"),
            [] => continue,
            [one] if switch => format!("{long} = {one}"),
            [one] if !repeats => format!("{long} = {}", toml_value(one)),
            many => format!(
                "{long} = [{}]",
                many.iter()
                    .map(|v| quoted(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `value` as TOML: a whole number as such, anything else a string.
fn toml_value(value: &str) -> String {
    match value.parse::<i64>() {
        Ok(n) => n.to_string(),
        Err(_) => quoted(value),
    }
}

/// A flag without a value (`--exit-when-idle`): `true` or `false` in a file.
fn is_switch(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
}

/// A flag that takes several values (repeated, or comma-separated): an array in a file.
fn takes_many(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
        || arg.get_num_args().is_some_and(|n| n.max_values() > 1)
}

/// A TOML basic string.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `value` of a flag as it may print: secrets (flags whose environment values are hidden)
/// redacted, URLs without their credentials, `--kafka-option` without its value.
fn redact(arg: &Arg, long: &str, value: &str) -> String {
    if !arg.is_hide_env_values_set() {
        return value.to_string();
    }
    match long {
        "elasticsearch-url" => value
            .parse::<ClusterUrl>()
            .map_or_else(|_| "(redacted)".into(), |url| url.redacted()),
        "alert-webhook" => value
            .parse::<AlertUrl>()
            .map_or_else(|_| "(redacted)".into(), |url| url.redacted()),
        "kafka-option" => match value.split_once('=') {
            Some((key, _)) => format!("{key}=(redacted)"),
            None => "(redacted)".into(),
        },
        _ => "(redacted)".into(),
    }
}
