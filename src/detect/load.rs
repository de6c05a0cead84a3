//! Load: `--rules` paths -> the rules that compile, and every one that does not, with why.
//!
//! A path is a rule file (read whatever its name) or a folder, read recursively for `.yml` and
//! `.yaml` files in name order. A file may hold several YAML documents, each one rule. A
//! document that does not compile, and a rule whose `id` an earlier rule already has, is
//! reported by file (and document, when the file holds several) with the reason, and left
//! out; a path that cannot be read at all is an error.

use std::path::{Path, PathBuf};

use yaml_rust2::YamlLoader;

use super::rule::Rule;

/// A rule and the file it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub rule: Rule,
    pub file: PathBuf,
}

/// A rule document left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub file: PathBuf,
    /// 1-based, when the file holds several documents.
    pub document: Option<usize>,
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(n) = self.document {
            write!(f, " (document {n})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the rules at {}: {source}", path.display())]
pub struct LoadError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Every rule under `paths`, and the documents left out.
pub fn load(paths: &[PathBuf]) -> Result<(Vec<Loaded>, Vec<Skipped>), LoadError> {
    let mut files = Vec::new();
    for path in paths {
        collect(path, true, &mut files)?;
    }
    let mut loaded: Vec<Loaded> = Vec::new();
    let mut skipped = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| LoadError {
            path: file.clone(),
            source,
        })?;
        for (document, result) in compile_all(&text) {
            let skip = |reason: String| Skipped {
                file: file.clone(),
                document,
                reason,
            };
            match result {
                Err(reason) => skipped.push(skip(reason)),
                Ok(rule) => match loaded.iter().find(|l| l.rule.id == rule.id) {
                    Some(earlier) => skipped.push(skip(format!(
                        "its id {} is already the id of {}",
                        rule.id,
                        earlier.file.display()
                    ))),
                    None => loaded.push(Loaded {
                        rule,
                        file: file.clone(),
                    }),
                },
            }
        }
    }
    Ok((loaded, skipped))
}

/// Each document of a rule file, compiled; the document number only when there are several.
pub fn compile_all(text: &str) -> Vec<(Option<usize>, Result<Rule, String>)> {
    let documents = match YamlLoader::load_from_str(text) {
        Ok(documents) => documents,
        Err(err) => return vec![(None, Err(format!("not valid YAML: {err}")))],
    };
    if documents.is_empty() {
        return vec![(None, Err("the file holds no YAML document".to_string()))];
    }
    let numbered = documents.len() > 1;
    documents
        .iter()
        .enumerate()
        .map(|(n, document)| {
            // A rule without `id` is named by its file's text, plus its place in the file.
            let identity = format!("{text}\n#{n}");
            (
                numbered.then_some(n + 1),
                Rule::compile(document, &identity),
            )
        })
        .collect()
}

fn collect(path: &Path, named: bool, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let error = |source| LoadError {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(error)?;
    if metadata.is_file() {
        let yaml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"));
        if named || yaml {
            out.push(path.to_path_buf());
        }
        return Ok(());
    }
    let mut entries = std::fs::read_dir(path)
        .map_err(error)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(error)?;
    entries.sort();
    for entry in entries {
        let hidden = entry
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden {
            collect(&entry, false, out)?;
        }
    }
    Ok(())
}
