//! The structure stays as built: the layers of `src/` name only the layers below them, no
//! files import each other in a circle, and no production function is longer than
//! [`MAX_FUNCTION_LINES`].
//!
//! Every `.rs` file under `src/` is read as text (comments and string literals blanked out).
//! The paths it names (`use` items, and `crate::`/`super::`/`self::` paths or paths through a
//! child module or a name it imported, anywhere in its code, tests included) are resolved to
//! the file that defines what they name: a module's `pub use` re-exports are followed to the
//! file that defines the item, so a facade `mod.rs` that only hands names on is no hub.
//! Each resolved name is an arrow from the file to that file. The test fails:
//! - when an arrow runs from a layer to one it may not name ([`LAYERS`]), naming the file,
//!   the path and the rule;
//! - when arrows between files form a circle, naming the files of each circle;
//! - when an exception listed in [`KNOWN`] no longer occurs (take it off the list).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules of `src/`, bottom first: a module may name every module of the
/// rows below its own, and none of its own row or above. The flow: source -> format ->
/// detect -> sink, none of those three naming another (the runtime places detection between
/// the source and the sink), with the runtime (and `check`) on top, the command line above
/// them, and pipeline and telemetry at the bottom.
const LAYERS: &[&[&str]] = &[
    &["pipeline", "telemetry"],
    &["config", "enrich"],
    &["format"],
    &["sink", "detect", "source"],
    &["check"],
    &["runtime"],
    &["cli"],
];

/// The modules `module` may name.
fn allowed(module: &str) -> Vec<&'static str> {
    let row = LAYERS
        .iter()
        .position(|row| row.contains(&module))
        .unwrap_or_else(|| panic!("src/{module} is in no row of LAYERS: add it"));
    LAYERS[..row]
        .iter()
        .flat_map(|r| r.iter().copied())
        .collect()
}

/// What the structure still gets wrong, each to be taken off as it is mended: a layer arrow
/// as "from -> layer", a circle as its files joined by ", ". Empty: keep it so.
const KNOWN: &[&str] = &[];

/// The longest a production function may be, from its `fn` line to its closing brace.
const MAX_FUNCTION_LINES: usize = 80;

#[test]
fn no_production_function_is_longer_than_80_lines() {
    let mut files = Vec::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    collect(&src, &mut files);
    let mut long = Vec::new();
    for path in files {
        let text = blank(&std::fs::read_to_string(&path).unwrap());
        // A file's tests come last, under `#[cfg(test)]`.
        let production = text.split("#[cfg(test)]").next().unwrap_or_default();
        let lines: Vec<&str> = production.lines().collect();
        let mut at = 0;
        while at < lines.len() {
            let Some(name) = fn_name(lines[at]) else {
                at += 1;
                continue;
            };
            let Some(end) = body_end(&lines, at) else {
                at += 1; // a declaration without a body
                continue;
            };
            let length = end - at + 1;
            if length > MAX_FUNCTION_LINES {
                let file = path.strip_prefix(&src).unwrap().display();
                long.push(format!("{file}:{} {name} ({length} lines)", at + 1));
            }
            at = end + 1;
        }
    }
    assert!(
        long.is_empty(),
        "longer than {MAX_FUNCTION_LINES} lines: {long:#?}"
    );
}

/// The name of the function a line declares (`pub(crate) async fn name(`), if it does.
fn fn_name(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace().peekable();
    while words
        .next_if(|w| w.starts_with("pub") || matches!(*w, "async" | "const" | "unsafe" | "extern"))
        .is_some()
    {}
    if words.next()? != "fn" {
        return None;
    }
    let rest = words.next()?;
    let end = rest.find(['(', '<']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The line where the body that opens at or after line `start` closes; `None` when a `;`
/// ends the declaration before any body opens.
fn body_end(lines: &[&str], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut opened = false;
    for (n, line) in lines.iter().enumerate().skip(start) {
        for c in line.chars() {
            match c {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => depth = depth.saturating_sub(1),
                ';' if !opened => return None,
                _ => {}
            }
        }
        if opened && depth == 0 {
            return Some(n);
        }
    }
    None
}

#[test]
fn lower_layers_name_no_higher_one() {
    let crate_ = Crate::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let mut wrong = Vec::new();
    let mut seen = BTreeSet::new();
    for (from, arrows) in &crate_.arrows {
        let Some(layer) = crate_.layer(from) else {
            continue;
        };
        let allowed = allowed(layer);
        for (to, path) in arrows {
            let Some(target) = crate_.layer(to) else {
                wrong.push(format!("{from} names {path} ({to}), above every layer"));
                continue;
            };
            if target != layer && !allowed.contains(&target) {
                let known = format!("{from} -> {target}");
                if KNOWN.contains(&known.as_str()) {
                    seen.insert(known);
                    continue;
                }
                wrong.push(format!(
                    "{from} names {path} ({to}): {layer}/ may name only {allowed:?}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows against the layers:\n{}",
        wrong.join("\n")
    );
    for known in KNOWN.iter().filter(|k| k.contains(" -> ")) {
        assert!(
            seen.contains(*known),
            "{known} no longer occurs: take it off KNOWN"
        );
    }
}

#[test]
fn no_files_import_each_other_in_a_circle() {
    let crate_ = Crate::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let (known, circles): (Vec<_>, Vec<_>) = crate_.circles().into_iter().partition(|circle| {
        let files = circle.iter().cloned().collect::<Vec<_>>().join(", ");
        KNOWN.contains(&files.as_str())
    });
    for listed in KNOWN.iter().filter(|k| !k.contains(" -> ")) {
        let found = known
            .iter()
            .any(|c| c.iter().cloned().collect::<Vec<_>>().join(", ") == *listed);
        assert!(
            found,
            "the circle {listed} no longer occurs: take it off KNOWN"
        );
    }
    let shown: Vec<String> = circles
        .iter()
        .map(|circle| {
            let ties: Vec<String> = circle
                .iter()
                .flat_map(|from| {
                    crate_.arrows[from]
                        .iter()
                        .filter(|(to, _)| circle.contains(to))
                        .map(move |(to, path)| format!("  {from} -> {to}: {path}"))
                })
                .collect();
            format!(
                "{}\n{}",
                circle.iter().cloned().collect::<Vec<_>>().join(", "),
                ties.join("\n")
            )
        })
        .collect();
    assert!(
        circles.is_empty(),
        "files in a circle:\n{}",
        shown.join("\n")
    );
}

#[test]
fn the_reader_sees_what_it_must() {
    // The reader itself, on a small crate written here.
    let dir = std::env::temp_dir().join(format!("architecture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let files = [
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        (
            "a/mod.rs",
            "//! uses crate::b::Nothing in a comment\nmod inner;\npub use inner::Thing;\nfn f() { let s = \"crate::b::Nope\"; }\n",
        ),
        ("a/inner.rs", "use crate::b::{self, deep::{Deep}};\npub struct Thing;\n"),
        ("b/mod.rs", "pub mod deep;\npub fn g() { crate::a::Thing; }\n"),
        (
            "b/deep.rs",
            "pub struct Deep;\nfn h() { super::super::a::Thing; }\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::g;\n}\n",
        ),
    ];
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let crate_ = Crate::read(dir.clone());
    let targets = |from: &str| -> BTreeSet<String> {
        crate_.arrows[from]
            .iter()
            .map(|(to, _)| to.clone())
            .collect()
    };
    assert_eq!(
        targets("a/mod.rs"),
        BTreeSet::from(["a/inner.rs".to_string()])
    );
    assert_eq!(
        targets("a/inner.rs"),
        BTreeSet::from(["b/mod.rs".to_string(), "b/deep.rs".to_string()])
    );
    // `crate::a::Thing` is defined in a/inner.rs, which a/mod.rs only re-exports.
    assert_eq!(
        targets("b/mod.rs"),
        BTreeSet::from(["a/inner.rs".to_string()])
    );
    // In its inline `mod tests`, `super` is b/deep.rs itself and `super::super` is b.
    assert_eq!(
        targets("b/deep.rs"),
        BTreeSet::from(["a/inner.rs".to_string(), "b/mod.rs".to_string()])
    );
    let circles = crate_.circles();
    assert_eq!(circles.len(), 1, "{circles:?}");
    assert_eq!(
        circles[0],
        BTreeSet::from([
            "a/inner.rs".to_string(),
            "b/deep.rs".to_string(),
            "b/mod.rs".to_string()
        ])
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The files of a crate, by path relative to `src/`, and the arrows between them.
struct Crate {
    /// Module path (`["sink", "elasticsearch"]`) -> its file.
    modules: BTreeMap<Vec<String>, String>,
    /// File -> the names it re-exports (`pub use`): name -> the full path it stands for.
    exports: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// File -> (file it names, the path as written).
    arrows: BTreeMap<String, BTreeSet<(String, String)>>,
}

impl Crate {
    fn read(src: PathBuf) -> Self {
        let mut files = Vec::new();
        collect(&src, &mut files);
        let mut modules = BTreeMap::new();
        let mut texts = BTreeMap::new();
        for path in files {
            let relative = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if relative == "main.rs" {
                continue; // the binary is its own crate, on top of everything
            }
            modules.insert(module_path(&relative), relative.clone());
            texts.insert(relative, blank(&std::fs::read_to_string(&path).unwrap()));
        }
        let mut crate_ = Crate {
            modules,
            exports: BTreeMap::new(),
            arrows: BTreeMap::new(),
        };
        let uses: BTreeMap<String, Vec<(usize, bool, Vec<String>)>> = texts
            .iter()
            .map(|(file, text)| (file.clone(), use_items(text)))
            .collect();
        for (file, items) in &uses {
            let scopes = inline_modules(&texts[file]);
            let exports = items
                .iter()
                .filter(|(_, public, _)| *public)
                .filter_map(|(at, _, path)| {
                    let here = scope(file, &scopes, *at);
                    let full = crate_.absolute(&here, path)?;
                    let name = path.last()?.clone();
                    (name != "*" && name != "self").then_some((name, full))
                })
                .collect();
            crate_.exports.insert(file.clone(), exports);
        }
        for (file, text) in &texts {
            let scopes = inline_modules(text);
            let mut named: Vec<(Vec<String>, Vec<String>)> = uses[file]
                .iter()
                .map(|(at, _, p)| (scope(file, &scopes, *at), p.clone()))
                .collect();
            let bound: BTreeMap<String, Vec<String>> = uses[file]
                .iter()
                .filter_map(|(at, _, p)| {
                    let here = scope(file, &scopes, *at);
                    Some((p.last()?.clone(), crate_.absolute(&here, p)?))
                })
                .filter(|(name, _)| name != "*" && name != "self")
                .collect();
            for (at, path) in inline_paths(text) {
                let here = scope(file, &scopes, at);
                match bound.get(&path[0]) {
                    Some(full) if !matches!(path[0].as_str(), "crate" | "super" | "self") => {
                        let mut full = full.clone();
                        full.extend(path[1..].iter().cloned());
                        full.insert(0, "crate".into());
                        named.push((here, full));
                    }
                    _ => named.push((here, path)),
                }
            }
            let mut arrows = BTreeSet::new();
            for (here, path) in named {
                let Some(full) = crate_.absolute(&here, &path) else {
                    continue;
                };
                if let Some(target) = crate_.resolve(&full, 0) {
                    if &target != file {
                        arrows.insert((target, path.join("::")));
                    }
                }
            }
            crate_.arrows.insert(file.clone(), arrows);
        }
        crate_
    }

    /// The top-level module a file belongs to (`None` for `lib.rs`).
    fn layer<'a>(&self, file: &'a str) -> Option<&'a str> {
        let first = file.split('/').next()?;
        let first = first.strip_suffix(".rs").unwrap_or(first);
        (first != "lib").then_some(first)
    }

    /// `path` as written in module `here`, from the crate root; `None` for other crates.
    fn absolute(&self, here: &[String], path: &[String]) -> Option<Vec<String>> {
        let mut full: Vec<String> = match path.first()?.as_str() {
            "crate" => Vec::new(),
            "self" => here.to_vec(),
            "super" => here.to_vec(),
            first => {
                let mut child = here.to_vec();
                child.push(first.to_string());
                if !self.modules.contains_key(&child) {
                    return None; // another crate (std, tokio, ...) or a local item
                }
                here.to_vec()
            }
        };
        let mut rest = match path[0].as_str() {
            "crate" | "self" => &path[1..],
            _ => path,
        };
        while let Some("super") = rest.first().map(String::as_str) {
            full.pop()?;
            rest = &rest[1..];
        }
        full.extend(rest.iter().cloned());
        Some(full)
    }

    /// The file that defines what `full` names, following re-exports.
    fn resolve(&self, full: &[String], depth: usize) -> Option<String> {
        let mut module = Vec::new();
        let mut file = self.modules.get(&module)?.clone();
        let mut at = 0;
        while at < full.len() {
            let mut deeper = module.clone();
            deeper.push(full[at].clone());
            match self.modules.get(&deeper) {
                Some(f) => {
                    module = deeper;
                    file = f.clone();
                    at += 1;
                }
                None => break,
            }
        }
        if depth < 8 {
            if let Some(name) = full.get(at) {
                if let Some(target) = self.exports.get(&file).and_then(|e| e.get(name)) {
                    let mut target = target.clone();
                    target.extend(full[at + 1..].iter().cloned());
                    if target != full {
                        return self.resolve(&target, depth + 1).or(Some(file));
                    }
                }
            }
        }
        Some(file)
    }

    /// Every set of two or more files that reach each other (strongly connected components).
    fn circles(&self) -> Vec<BTreeSet<String>> {
        let files: Vec<&String> = self.arrows.keys().collect();
        let reach = |from: &String| -> BTreeSet<String> {
            let mut seen = BTreeSet::new();
            let mut todo = vec![from.clone()];
            while let Some(file) = todo.pop() {
                for (to, _) in self.arrows.get(&file).into_iter().flatten() {
                    if seen.insert(to.clone()) {
                        todo.push(to.clone());
                    }
                }
            }
            seen
        };
        let reaches: BTreeMap<&String, BTreeSet<String>> =
            files.iter().map(|f| (*f, reach(f))).collect();
        let mut circles: Vec<BTreeSet<String>> = Vec::new();
        for file in &files {
            if circles.iter().any(|c| c.contains(*file)) || !reaches[file].contains(*file) {
                continue;
            }
            let circle: BTreeSet<String> = files
                .iter()
                .filter(|other| reaches[file].contains(**other) && reaches[*other].contains(*file))
                .map(|f| (*f).clone())
                .collect();
            circles.push(circle);
        }
        circles
    }
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The inline modules of a file (`mod tests { ... }`): name and the byte range of its body.
fn inline_modules(text: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(hit) = text[at..].find("mod ") {
        let start = at + hit;
        at = start + 4;
        if start > 0
            && (text.as_bytes()[start - 1].is_ascii_alphanumeric()
                || text.as_bytes()[start - 1] == b'_')
        {
            continue;
        }
        let rest = &text[at..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let after = rest[name.len()..].trim_start();
        if name.is_empty() || !after.starts_with('{') {
            continue;
        }
        let open = at + name.len() + (rest[name.len()..].len() - after.len());
        let mut depth = 0;
        let mut end = text.len();
        for (n, c) in text[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + n;
                        break;
                    }
                }
                _ => {}
            }
        }
        found.push((name, open..end));
    }
    found
}

/// The module path in effect at byte `at` of `file`: its own, plus the inline modules around.
fn scope(file: &str, modules: &[(String, std::ops::Range<usize>)], at: usize) -> Vec<String> {
    let mut here = module_path(file);
    for (name, body) in modules {
        if body.contains(&at) {
            here.push(name.clone());
        }
    }
    here
}

/// `a/b.rs` and `a/b/mod.rs` -> `["a", "b"]`; `lib.rs` -> `[]`.
fn module_path(file: &str) -> Vec<String> {
    let file = file.strip_suffix(".rs").unwrap();
    let mut parts: Vec<String> = file.split('/').map(str::to_string).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The text with comments blanked and string and char literals emptied, lines kept.
fn blank(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            i += end;
        } else if rest.starts_with("/*") {
            let mut depth = 0;
            let mut j = 0;
            while j < rest.len() {
                if rest[j..].starts_with("/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with("*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if rest.as_bytes()[j] == b'\n' {
                        out.push('\n');
                    }
                    j += 1;
                }
            }
            i += j;
        } else if let Some(hashes) = raw_string_start(rest) {
            let open = 2 + hashes + usize::from(rest.starts_with("br"));
            let close = format!("\"{}", "#".repeat(hashes));
            let end = rest[open..]
                .find(&close)
                .map_or(rest.len(), |e| open + e + close.len());
            out.push_str("\"\"");
            out.extend(rest[..end].chars().filter(|c| *c == '\n'));
            i += end;
        } else if rest.starts_with('"') || rest.starts_with("b\"") {
            let mut j = if rest.starts_with('"') { 1 } else { 2 };
            while j < rest.len() {
                match rest.as_bytes()[j] {
                    b'\\' => j += 2,
                    b'"' => {
                        j += 1;
                        break;
                    }
                    b'\n' => {
                        out.push('\n');
                        j += 1;
                    }
                    _ => j += 1,
                }
            }
            out.push_str("\"\"");
            i += j;
        } else if let Some(after) = rest.strip_prefix('\'') {
            // A char literal ('x', '\n', '\''), or a lifetime ('a), which stays.
            let literal = after.starts_with('\\') || rest.chars().nth(2) == Some('\'');
            if literal {
                let end = rest[2..].find('\'').map_or(rest.len(), |e| e + 3);
                out.push_str("' '");
                i += end;
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The number of `#`s of a raw string starting here (`r"`, `r#"`, `br#"`).
fn raw_string_start(rest: &str) -> Option<usize> {
    let after = rest.strip_prefix("br").or_else(|| rest.strip_prefix('r'))?;
    let hashes = after.chars().take_while(|c| *c == '#').count();
    after[hashes..].starts_with('"').then_some(hashes)
}

/// Every `use` item as (public, path), groups expanded: `use a::{b, c::d}` -> a::b, a::c::d.
fn use_items(text: &str) -> Vec<(usize, bool, Vec<String>)> {
    let mut items = Vec::new();
    let mut at = 0;
    while let Some(found) = text[at..].find("use ") {
        let start = at + found;
        at = start + 4;
        let before = text[..start].trim_end();
        let boundary = before.is_empty()
            || before.ends_with([';', '{', '}', ')', ']'])
            || before.ends_with("pub")
            || before.ends_with("pub(crate)")
            || before.ends_with("pub(super)");
        let word_start = start == 0
            || !text.as_bytes()[start - 1].is_ascii_alphanumeric()
                && text.as_bytes()[start - 1] != b'_';
        if !boundary || !word_start {
            continue;
        }
        let public = before.ends_with("pub")
            || before.ends_with("pub(crate)")
            || before.ends_with("pub(super)");
        let Some(end) = text[at..].find(';') else {
            break;
        };
        let tree = tidy(&text[at..at + end]);
        let mut paths = Vec::new();
        expand(&tree, &[], &mut paths);
        items.extend(paths.into_iter().map(|p| (start, public, p)));
        at += end;
    }
    items
}

/// Whitespace collapsed, and none around `::`, braces and commas (`as` keeps its spaces).
fn tidy(tree: &str) -> String {
    let collapsed = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = collapsed;
    for token in ["::", "{", "}", ","] {
        out = out
            .replace(&format!(" {token}"), token)
            .replace(&format!("{token} "), token);
    }
    out
}

fn expand(tree: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let tree = tree.trim().trim_start_matches("::");
    if let Some(open) = tree.find('{') {
        let head = &tree[..open];
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut base = prefix.to_vec();
        base.extend(
            head.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
        let mut depth = 0;
        let mut part = String::new();
        for c in inner.chars() {
            match c {
                '{' => {
                    depth += 1;
                    part.push(c);
                }
                '}' => {
                    depth -= 1;
                    part.push(c);
                }
                ',' if depth == 0 => {
                    if !part.is_empty() {
                        expand(&part, &base, out);
                    }
                    part.clear();
                }
                _ => part.push(c),
            }
        }
        if !part.is_empty() {
            expand(&part, &base, out);
        }
    } else {
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        let mut full = prefix.to_vec();
        full.extend(
            path.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
        if full.last().is_some_and(|s| s == "self") {
            full.pop();
        }
        out.push(full);
    }
}

/// Paths written in the code: `a::b::c` chains of at least two segments.
fn inline_paths(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut paths = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let starts_word = (c.is_ascii_alphabetic() || c == b'_')
            && (i == 0
                || !(bytes[i - 1].is_ascii_alphanumeric()
                    || bytes[i - 1] == b'_'
                    || bytes[i - 1] == b':'));
        if !starts_word {
            i += 1;
            continue;
        }
        let mut segments = Vec::new();
        let mut j = i;
        loop {
            let start = j;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            segments.push(text[start..j].to_string());
            if text[j..].starts_with("::")
                && text[j + 2..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            {
                j += 2;
            } else {
                break;
            }
        }
        // `a::b::{..}` and `a::b::*` belong to a `use` item, read as such.
        let group = text[j..].starts_with("::{") || text[j..].starts_with("::*");
        if segments.len() >= 2 && !group {
            paths.push((i, segments));
        }
        i = j.max(i + 1);
    }
    paths
}
