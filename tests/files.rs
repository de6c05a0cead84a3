//! The `files` source, run as users run it (the binary), against the cluster stand-in:
//! folders read recursively with digests and other names skipped, standard input, the same
//! documents and `_id`s as the S3 path, exit codes and `FAILED` lines.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_cloudtrail-ingest");

/// A fresh folder for one test's files.
fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("files-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    dir
}

fn put(dir: &Path, name: &str, body: &[u8]) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("folders");
    std::fs::write(path, body).expect("a file");
}

/// Runs `cloudtrail-ingest files` with `args` (after the program name), `stdin` on its
/// standard input.
fn run(args: &[String], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(&args[1..])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(stdin)
        .expect("stdin written");
    child.wait_with_output().expect("the binary ends")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_and_standard_input_are_indexed_once_by_event_id() {
    let env = TestEnv::new("files").await;
    let dir = folder("tree");
    let day = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/01";
    put(
        &dir,
        &format!("{day}/a.json.gz"),
        &log_object(&[
            ("files-a1", "2026-12-01T10:00:00Z"),
            ("files-a2", "2026-12-01T10:01:00Z"),
        ]),
    );
    let plain = gunzip(&log_object(&[("files-b1", "2026-12-02T10:00:00Z")]));
    put(&dir, &format!("{day}/nested/b.json"), &plain);
    put(
        &dir,
        "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/12/01/digest.json.gz",
        &log_object(&[("files-digest", "2026-12-01T10:00:00Z")]),
    );
    put(&dir, "README.txt", b"not a log");
    let stdin = gunzip(&log_object(&[("files-stdin", "2026-12-03T10:00:00Z")]));
    let path = dir.display().to_string();
    let args = env.files_args(&[&path, "-"]);

    let first = run(&args, &stdin);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert_eq!(counter(&first, "files_read"), 3);
    assert_eq!(
        counter(&first, "files_skipped"),
        2,
        "the digest and the README"
    );
    assert_eq!(counter(&first, "documents_indexed"), 4);
    let counts = env.index_counts().await;
    let prefix = &env.index_prefix;
    assert_eq!(counts[&format!("{prefix}-2026.12.01")], 2);
    assert_eq!(counts[&format!("{prefix}-2026.12.02")], 1);
    assert_eq!(counts[&format!("{prefix}-2026.12.03")], 1);
    let doc = env
        .search(
            reqwest::Method::GET,
            &format!("{prefix}-2026.12.01/_doc/files-a1"),
            None,
        )
        .await;
    assert_eq!(doc["_source"]["eventName"], "ListBuckets", "{doc}");

    let again = run(&args, &stdin);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(counter(&again, "documents_existing"), 4);
    assert_eq!(env.total_documents().await, 4, "no duplicate");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_fails_alone_with_its_reason_on_standard_output() {
    let env = TestEnv::new("files-broken").await;
    let dir = folder("broken");
    put(
        &dir,
        "good.json.gz",
        &log_object(&[("files-good", "2026-12-01T10:00:00Z")]),
    );
    let mut broken = log_object(&[("files-broken", "2026-12-01T10:00:00Z")]);
    broken.truncate(broken.len() / 2);
    put(&dir, "broken.json.gz", &broken);
    let path = dir.display().to_string();

    let output = run(&env.files_args(&[&path]), b"");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let broken_path = dir.join("broken.json.gz").display().to_string();
    assert!(
        stdout.starts_with(&format!("FAILED {broken_path}: ")),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert_eq!(counter(&output, "files_failed"), 1);
    assert_eq!(env.total_documents().await, 1, "the good file is indexed");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_does_not_exist_is_refused_before_anything_is_read() {
    let env = TestEnv::new("files-missing").await;
    let dir = folder("missing");
    put(
        &dir,
        "good.json.gz",
        &log_object(&[("files-never", "2026-12-01T10:00:00Z")]),
    );
    let good = dir.display().to_string();
    let missing = dir.join("no-such-file.json").display().to_string();

    let output = run(&env.files_args(&[&good, &missing]), b"");
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains(&missing), "{stderr}");
    assert_eq!(env.total_documents().await, 0, "nothing was read");
    std::fs::remove_dir_all(dir).unwrap();
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gzip");
    out
}
