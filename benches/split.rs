//! The split path without network: gunzip -> records -> bulk body bytes, on one core.
//!
//! `cargo bench --bench split` generates a realistic corpus (the conformance records cycled
//! with fresh ids, times, users and addresses; about 100 MB uncompressed, gzipped as CloudTrail
//! does), then measures in the same run:
//! - gunzip alone (the physical limit of this path),
//! - gunzip + the CloudTrail format (split, events) + the sink's bulk lines, into 5 MiB
//!   bulk bodies; events pass in parcels, as the worker's sources hand them over, so that the
//!   rules and the ECS step see a parcel at a time, before the sink writes it,
//! - gzip compression of the resulting bulk bodies (`--bulk-compression gzip`): its cost and
//!   the bytes it saves,
//! - the same split path writing ECS documents (`--schema ecs`) with MaxMind's test City and
//!   ASN databases loaded, against the raw split path in alternating runs (every event's
//!   address is a new one, so no GeoIP answer comes from the cache: the worst case),
//!
//! and prints events/s, MB/s of decompressed log and the ratio to gunzip alone. Each figure
//! is the best of several runs. `BENCH_MB` sets the corpus size; `BENCH_PROFILE=1` runs only
//! the split path, 20 times, for a profiler (`=ecs`: the ECS split path, 5 times);
//! `BENCH_PROFILE=ratio` only the ECS split path against the raw one; `BENCH_PROFILE=shape`
//! the ECS step alone, over events split beforehand, against the raw split path.

use std::io::{self, BufReader, Read, Write};
use std::time::{Duration, Instant};

use cloudtrail_ingest::config::{Schema, SchemaConfig};
use cloudtrail_ingest::detect::alert::{self, Alerter, Written};
use cloudtrail_ingest::detect::{load, Detector, Level, Loaded};
use cloudtrail_ingest::enrich::GeoIp;
use cloudtrail_ingest::format::cloudtrail;
use cloudtrail_ingest::format::cloudtrail::{CloudTrail, FreeForm, Options};
use cloudtrail_ingest::format::schema::Shaper;
use cloudtrail_ingest::format::{Format, Item, PayloadContext};
use cloudtrail_ingest::pipeline::{index_name, Event, Indices, Outbox, Shape};
use cloudtrail_ingest::sink::elasticsearch::request;
use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::Value;
use std::sync::Arc;

const RUNS: usize = 9;
const BULK_BYTES: usize = 5 * 1024 * 1024;

fn main() {
    // `cargo test --all-targets` runs benches once as tests: keep that quick.
    let quick =
        std::env::args().any(|a| a == "--test") || !std::env::args().any(|a| a == "--bench");
    let mb: usize = std::env::var("BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2 } else { 100 });
    let runs = if quick { 1 } else { RUNS };

    let (gz, raw_len, events) = corpus(mb * 1024 * 1024);
    println!(
        "corpus: {events} events, {:.1} MB uncompressed, {:.1} MB gzipped",
        raw_len as f64 / 1e6,
        gz.len() as f64 / 1e6
    );

    if std::env::var_os("BENCH_PROFILE").is_some_and(|v| v == "ecs") {
        // Only the ECS split path, 5 times, for a profiler.
        let shaper = ecs_shaper();
        let start = Instant::now();
        for _ in 0..5 {
            std::hint::black_box(split_path_shaped(&gz, &shaper));
        }
        println!("ECS split path: {:?} per run", start.elapsed() / 5);
        return;
    }
    if std::env::var_os("BENCH_PROFILE").is_some_and(|v| v == "shape") {
        // Only the ECS step, over events split beforehand, against the raw split path.
        shape_only(&gz, events);
        return;
    }
    if std::env::var_os("BENCH_PROFILE").is_some_and(|v| v == "ratio") {
        // Only the ECS split path against the raw one.
        ecs_against_raw(&gz, raw_len, events, RUNS);
        return;
    }
    if std::env::var_os("BENCH_PROFILE").is_some() {
        // Only the split path, 20 times: for `perf record` (see docs/performance.md).
        let start = Instant::now();
        for _ in 0..20 {
            std::hint::black_box(split_path(&gz));
        }
        println!("split path: {:?} per run", start.elapsed() / 20);
        return;
    }
    let (gunzip, _) = best(runs, || gunzip_only(&gz));
    // Without and with rules in turns, so that both see the same machine (it is shared).
    let alerter = alerter();
    let mut split_runs = Vec::new();
    let mut rules_runs = Vec::new();
    for _ in 0..runs {
        split_runs.push(best(1, || split_path(&gz)));
        rules_runs.push(best(1, || split_path_detecting(&gz, &alerter)));
    }
    let (split, plain_bytes) = split_runs.into_iter().min().expect("at least one run");
    let (with_rules, _) = rules_runs.into_iter().min().expect("at least one run");
    // The drop pack as drop rules, and the same rules as detection rules (alerts made and
    // written): what a drop rule costs against a detection rule.
    let drops = drop_pack();
    let drop_alerter = alerter_of(drop_pack());
    let mut drop_runs = Vec::new();
    let mut as_detection_runs = Vec::new();
    for _ in 0..runs {
        drop_runs.push(best(1, || split_path_dropping(&gz, &drops)));
        as_detection_runs.push(best(1, || split_path_detecting(&gz, &drop_alerter)));
    }
    let (dropping, dropped) = drop_runs.into_iter().min().expect("at least one run");
    let (as_detection, _) = as_detection_runs
        .into_iter()
        .min()
        .expect("at least one run");
    report("gunzip only", gunzip, raw_len, events, None);
    report(
        "gunzip+split+bulk body",
        split,
        raw_len,
        events,
        Some(gunzip),
    );
    report(
        "  + rules (pack + 100)",
        with_rules,
        raw_len,
        events,
        Some(gunzip),
    );
    println!(
        "with {} rules the split path keeps {:.0}% of its throughput without rules ({} alerts per pass)",
        alerter.detector.rules().len(),
        100.0 * split.as_secs_f64() / with_rules.as_secs_f64(),
        count_alerts(&gz, &alerter),
    );
    report(
        "  + drop pack as drop",
        dropping,
        raw_len,
        events,
        Some(gunzip),
    );
    report(
        "  + same as detection",
        as_detection,
        raw_len,
        events,
        Some(gunzip),
    );
    println!(
        "the drop pack ({} rules) drops {dropped} events ({:.1}%) and costs {:.2}x the split path; the same rules as detection rules cost {:.2}x",
        drops.rules().len(),
        100.0 * dropped as f64 / events as f64,
        dropping.as_secs_f64() / split.as_secs_f64(),
        as_detection.as_secs_f64() / split.as_secs_f64(),
    );
    let (candidates, parsed) = candidate_share(&gz, &alerter);
    println!(
        "rules to evaluate per event: {:.2} on average; {:.1}% of events are parsed (some rule may match)",
        candidates as f64 / events as f64,
        100.0 * parsed as f64 / events as f64
    );
    ecs_against_raw(&gz, raw_len, events, runs);
    let bodies = bulk_bodies(&gz);
    let (compress, gzip_bytes) = best(runs, || {
        bodies.iter().map(|b| request::gzip(b).len() as u64).sum()
    });
    println!(
        "bulk bodies: {:.1} MB plain, {:.1} MB gzipped ({:.1}x fewer bytes); gzip (fast) takes {:.0} ms per 100 MB of body, {:.0}% of the split path's time",
        plain_bytes as f64 / 1e6,
        gzip_bytes as f64 / 1e6,
        plain_bytes as f64 / gzip_bytes as f64,
        compress.as_secs_f64() * 1e3 * 1e8 / plain_bytes as f64,
        100.0 * compress.as_secs_f64() / split.as_secs_f64()
    );
}

/// The split path writing ECS documents with both GeoIP databases, against the raw one, in
/// alternating runs.
fn ecs_against_raw(gz: &[u8], raw_len: usize, events: u64, runs: usize) {
    let shaper = ecs_shaper();
    let mut raw_runs = Vec::new();
    let mut ecs_runs = Vec::new();
    for _ in 0..runs {
        raw_runs.push(best(1, || split_path(gz)));
        ecs_runs.push(best(1, || split_path_shaped(gz, &shaper)));
    }
    let (raw, raw_bytes) = raw_runs.into_iter().min().expect("at least one run");
    let (ecs, ecs_bytes) = ecs_runs.into_iter().min().expect("at least one run");
    report("gunzip+split+bulk body", raw, raw_len, events, None);
    report("  ECS + GeoIP + ASN", ecs, raw_len, events, None);
    println!(
        "ECS documents with GeoIP cost {:.2}x the raw split path's time per event; bulk bodies {:.1} MB raw, {:.1} MB ECS",
        ecs.as_secs_f64() / raw.as_secs_f64(),
        raw_bytes as f64 / 1e6,
        ecs_bytes as f64 / 1e6,
    );
}

/// The ECS step alone (the record's ECS document written, as the shaper does), over events
/// split beforehand, against the raw split path, in alternating runs.
fn shape_only(gz: &[u8], events: u64) {
    let mut split = Vec::new();
    events_as(gz, FreeForm::AsWritten, |event| split.push(event));
    let ecs = cloudtrail::ecs::Ecs::new("default", FreeForm::Objects, Some(geoip()));
    let created = cloudtrail::ecs::dates::created_at(std::time::SystemTime::now());
    let mut raw_runs = Vec::new();
    let mut shape_runs = Vec::new();
    let mut out = bytes::BytesMut::with_capacity(BULK_BYTES + 64 * 1024);
    for _ in 0..RUNS {
        raw_runs.push(best(1, || split_path(gz)));
        // Each parcel of events is read once before it is timed: in the split path a record
        // is still in the cache when it is shaped, just after it was split; read from memory
        // here, it would cost its cache misses on top.
        let mut took = Duration::ZERO;
        for parcel in split.chunks(64) {
            for event in parcel {
                std::hint::black_box(event.source.iter().fold(0u8, |a, &b| a ^ b));
            }
            out.clear();
            let start = Instant::now();
            for event in parcel {
                let timestamp = cloudtrail::ecs::dates::millis(event.time);
                cloudtrail::ecs::write(
                    &event.source,
                    &event.outline,
                    &timestamp,
                    &created,
                    &ecs,
                    &mut out,
                )
                .expect("an ECS document");
            }
            took += start.elapsed();
        }
        shape_runs.push((took, out.len() as u64));
    }
    let (raw, _) = raw_runs.into_iter().min().expect("at least one run");
    let (shape, _) = shape_runs.into_iter().min().expect("at least one run");
    println!(
        "raw split path {:.3} s; ECS step alone {:.3} s ({:.0} ns per event), {:.2}x the raw split path",
        raw.as_secs_f64(),
        shape.as_secs_f64(),
        shape.as_secs_f64() * 1e9 / events as f64,
        shape.as_secs_f64() / raw.as_secs_f64()
    );
}

/// MaxMind's test City and ASN databases.
fn geoip() -> GeoIp {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/geoip/");
    GeoIp::open(&[
        format!("{dir}GeoLite2-City-Test.mmdb").into(),
        format!("{dir}GeoLite2-ASN-Test.mmdb").into(),
    ])
    .expect("MaxMind's test databases")
}

/// [`split_path_shaped`]'s shaper: ECS documents with MaxMind's test City and ASN databases.
fn ecs_shaper() -> Shaper {
    let config = SchemaConfig {
        schema: Schema::Ecs,
        data_stream_namespace: "default".into(),
        ingest_pipeline: None,
        geoip_databases: Vec::new(),
    };
    Shaper::new(&config, FreeForm::Objects, Some(geoip())).expect("a shaper")
}

/// [`split_path`] with each event shaped by `shaper` before it is written: a parcel's events
/// are all shaped, then written, as the worker's sender shapes a parcel before the sink
/// takes it.
fn split_path_shaped(gz: &[u8], shaper: &Shaper) -> u64 {
    let mut total = 0u64;
    let mut body = Vec::with_capacity(BULK_BYTES + 64 * 1024);
    parcels_as(gz, FreeForm::AsWritten, |parcel| {
        let now = std::time::SystemTime::now();
        for event in parcel.iter_mut() {
            shaper.shape(event, now).expect("an ECS document");
        }
        for event in parcel.drain(..) {
            let index = index_name("cloudtrail", event.time);
            request::append_create(&mut body, &index, &event.id, None, &event.source);
            if body.len() >= BULK_BYTES {
                total += body.len() as u64;
                body.clear();
            }
        }
    });
    total + body.len() as u64
}

/// [`events_as`], gathered into parcels as the worker's [`Outbox`] gathers an object's
/// events (at most [`Outbox::PARCEL_EVENTS`] events or [`Outbox::PARCEL_BYTES`] bytes):
/// stages and shape see a parcel at a time, and the sink writes it after them.
fn parcels_as(gz: &[u8], free_form: FreeForm, mut each: impl FnMut(&mut Vec<Event>)) {
    let mut parcel = Vec::with_capacity(Outbox::PARCEL_EVENTS);
    let mut bytes = 0;
    events_as(gz, free_form, |event| {
        bytes += event.source.len() + event.id.len();
        parcel.push(event);
        if parcel.len() >= Outbox::PARCEL_EVENTS || bytes >= Outbox::PARCEL_BYTES {
            each(&mut parcel);
            parcel.clear();
            bytes = 0;
        }
    });
    if !parcel.is_empty() {
        each(&mut parcel);
    }
}

/// The bulk bodies of the corpus, kept for the compression measurement.
fn bulk_bodies(gz: &[u8]) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    split_into(gz, None, |body| bodies.push(body.clone()));
    bodies
}

/// The shipped drop pack (`rules/drop/`).
fn drop_pack() -> Detector {
    let pack = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/drop");
    let (loaded, failed) = load::load(&[pack.into()]).expect("the drop pack reads");
    assert!(failed.is_empty(), "{failed:?}");
    Detector::new(loaded, Level::Informational).0
}

/// [`split_path`], with each event examined by the drop rules of `drops` and the dropped
/// ones left out of the bulk bodies; returns how many were dropped.
fn split_path_dropping(gz: &[u8], drops: &Detector) -> u64 {
    let mut body = Vec::with_capacity(BULK_BYTES + 64 * 1024);
    let mut dropped = 0;
    parcels_as(gz, FreeForm::Objects, |parcel| {
        let kept: Vec<bool> = parcel.iter().map(|e| drops.examine(e).is_empty()).collect();
        for (event, kept) in parcel.drain(..).zip(kept) {
            if !kept {
                dropped += 1;
                continue;
            }
            let index = index_name("cloudtrail", event.time);
            request::append_create(&mut body, &index, &event.id, None, &event.source);
            if body.len() >= BULK_BYTES {
                std::hint::black_box(&body);
                body.clear();
            }
        }
    });
    dropped
}

/// The shipped rule pack plus a hundred CloudTrail-style rules: each pins an `eventSource`
/// and a few `eventName`s (as SigmaHQ's CloudTrail rules do) and tests more fields.
fn alerter() -> Alerter {
    let pack = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/detection");
    let (mut loaded, failed) = load::load(&[pack.into()]).expect("the rule pack reads");
    assert!(failed.is_empty(), "{failed:?}");
    let services = [
        "iam",
        "s3",
        "ec2",
        "kms",
        "sts",
        "lambda",
        "rds",
        "guardduty",
        "organizations",
        "secretsmanager",
    ];
    for n in 0..100 {
        let service = services[n % services.len()];
        let text = format!(
            "title: Generated rule {n}\nid: generated-{n}\nlevel: medium\nlogsource:\n    product: aws\n    service: cloudtrail\ndetection:\n    selection:\n        eventSource: {service}.amazonaws.com\n        eventName:\n            - Delete{n}Thing\n            - Put{n}Policy\n            - Modify{n}Attribute\n    filter:\n        userIdentity.arn|contains: ':role/automation-'\n        errorCode|exists: true\n    condition: selection and not filter\n"
        );
        let (_, rule) = load::compile_all(&text).remove(0);
        loaded.push(Loaded {
            rule: rule.expect("a generated rule compiles"),
            file: format!("generated-{n}.yml").into(),
        });
    }
    alerter_of(Detector::new(loaded, Level::Informational).0)
}

/// The alerter of `detector`'s rules.
fn alerter_of(detector: Detector) -> Alerter {
    let indices = Indices::new(vec![
        (cloudtrail::DATASET, "cloudtrail".into()),
        (alert::DATASET, "cloudtrail-alerts".into()),
    ]);
    let written = Arc::new(Written {
        counters: Arc::default(),
        notifier: None,
    });
    Alerter::new(detector, indices, FreeForm::Objects, written)
}

fn split_path_detecting(gz: &[u8], alerter: &Alerter) -> u64 {
    let mut total = 0u64;
    split_into(gz, Some(alerter), |body| total += body.len() as u64);
    total
}

fn count_alerts(gz: &[u8], alerter: &Alerter) -> u64 {
    let mut alerts = 0u64;
    split_into(gz, Some(alerter), |body| {
        alerts += memchr::memmem::find_iter(body, b"\"kind\":\"match\"").count() as u64
    });
    alerts
}

/// How many candidate rules the index gives over the corpus, and for how many events.
fn candidate_share(gz: &[u8], alerter: &Alerter) -> (u64, u64) {
    let index = alerter
        .detector
        .index(cloudtrail::DATASET)
        .expect("the pack has CloudTrail rules");
    let (mut candidates, mut parsed) = (0u64, 0u64);
    let mut out = Vec::new();
    events_of(gz, |event| {
        index.candidates(&event.source, &event.outline, &mut out);
        candidates += out.len() as u64;
        parsed += u64::from(!out.is_empty());
    });
    (candidates, parsed)
}

/// The fastest of `runs` runs, with what the run returned.
fn best(runs: usize, mut f: impl FnMut() -> u64) -> (Duration, u64) {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            let out = std::hint::black_box(f());
            (start.elapsed(), out)
        })
        .min()
        .expect("at least one run")
}

fn report(what: &str, took: Duration, raw_len: usize, events: u64, base: Option<Duration>) {
    let secs = took.as_secs_f64();
    let ratio = base
        .map(|b| {
            format!(
                "  {:.0}% of gunzip-only throughput",
                100.0 * b.as_secs_f64() / secs
            )
        })
        .unwrap_or_default();
    println!(
        "{what:<26} {:>8.3} s  {:>10.0} events/s  {:>7.1} MB/s{ratio}",
        secs,
        events as f64 / secs,
        raw_len as f64 / 1e6 / secs,
    );
}

fn gunzip_only(gz: &[u8]) -> u64 {
    let mut decoder = MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, gz));
    io::copy(&mut decoder, &mut io::sink()).expect("the corpus decodes")
}

/// What the worker does per object, minus the network: returns bytes of bulk bodies made.
fn split_path(gz: &[u8]) -> u64 {
    let mut total = 0u64;
    split_into(gz, None, |body| total += body.len() as u64);
    total
}

/// Gunzips, reads events with the CloudTrail format in parcels (and, with an `alerter`,
/// runs the rules on each event of a parcel, then writes each event followed by its alerts)
/// as the sink does into bulk bodies of 5 MiB, handing each to `flush`.
fn split_into(gz: &[u8], alerter: Option<&Alerter>, mut flush: impl FnMut(&Vec<u8>)) {
    let mut body = Vec::with_capacity(BULK_BYTES + 64 * 1024);
    parcels_as(gz, FreeForm::Objects, |parcel| {
        let alerts: Vec<Vec<Event>> = parcel
            .iter()
            .map(|event| alerter.map(|a| a.alerts(event)).unwrap_or_default())
            .collect();
        for (event, alerts) in parcel.drain(..).zip(alerts) {
            let index = index_name("cloudtrail", event.time);
            request::append_create(&mut body, &index, &event.id, None, &event.source);
            for alert in alerts {
                let index = index_name("cloudtrail-alerts", alert.time);
                request::append_create(&mut body, &index, &alert.id, None, &alert.source);
            }
            if body.len() >= BULK_BYTES {
                flush(&body);
                body.clear();
            }
        }
    });
    flush(&body);
}

/// Gunzips the corpus and reads its events with the CloudTrail format, handing each to `each`.
fn events_of(gz: &[u8], each: impl FnMut(Event)) {
    events_as(gz, FreeForm::Objects, each)
}

/// [`events_of`], with free-form values written the `free_form` way.
fn events_as(gz: &[u8], free_form: FreeForm, mut each: impl FnMut(Event)) {
    let format = CloudTrail {
        options: Options { free_form },
    };
    let decoder = MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, gz));
    let mut input = BufReader::with_capacity(64 * 1024, decoder);
    let mut emit = |item: Item| {
        let Item::Event(event) = item else {
            panic!("the corpus has no unreadable record")
        };
        each(event);
        Ok(())
    };
    format
        .read(
            &mut input,
            &PayloadContext {
                name: "s3://bench/corpus.json.gz",
                fallback_time: None,
            },
            &mut emit,
        )
        .expect("the corpus reads");
}

/// The order CloudTrail writes a record's top-level fields in (as its log files and the
/// record contents reference show); any other field follows.
const LOG_ORDER: [&str; 27] = [
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "errorCode",
    "errorMessage",
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "requestID",
    "eventID",
    "readOnly",
    "resources",
    "eventType",
    "apiVersion",
    "managementEvent",
    "recipientAccountId",
    "sharedEventID",
    "vpcEndpointId",
    "vpcEndpointAccountId",
    "eventCategory",
    "tlsDetails",
    "sessionCredentialFromConsole",
];

/// The order of `userIdentity`'s fields in CloudTrail's logs.
const IDENTITY_ORDER: [&str; 9] = [
    "type",
    "principalId",
    "arn",
    "accountId",
    "accessKeyId",
    "userName",
    "sessionContext",
    "invokedBy",
    "identityProvider",
];

/// `record` as CloudTrail writes it: top-level fields in [`LOG_ORDER`], `userIdentity`'s
/// in [`IDENTITY_ORDER`] (a `Value` alone would sort them, putting `userIdentity` last
/// and its `type` after its `sessionContext`, which no log does).
fn write_in_log_order(raw: &mut Vec<u8>, record: &Value) {
    write_object(raw, record, &LOG_ORDER, |raw, key, value| {
        match (key, value) {
            ("userIdentity", Value::Object(_)) => {
                write_object(raw, value, &IDENTITY_ORDER, |raw, _, value| {
                    serde_json::to_writer(raw, value).expect("writing to a Vec cannot fail")
                })
            }
            _ => serde_json::to_writer(raw, value).expect("writing to a Vec cannot fail"),
        }
    });
}

/// The object `value` with the fields named in `order` first, in that order, each value
/// written by `write`.
fn write_object(
    raw: &mut Vec<u8>,
    value: &Value,
    order: &[&str],
    mut write: impl FnMut(&mut Vec<u8>, &str, &Value),
) {
    let fields = value.as_object().expect("an object");
    let known = order.iter().filter_map(|k| fields.get_key_value(*k));
    let rest = fields.iter().filter(|(k, _)| !order.contains(&k.as_str()));
    raw.push(b'{');
    for (n, (key, value)) in known.chain(rest).enumerate() {
        if n > 0 {
            raw.push(b',');
        }
        serde_json::to_writer(&mut *raw, key).expect("writing to a Vec cannot fail");
        raw.push(b':');
        write(raw, key, value);
    }
    raw.push(b'}');
}

/// A gzipped log of about `target` bytes: the conformance records, cycled with fresh ids,
/// times, principals and addresses so that no two events are alike.
fn corpus(target: usize) -> (Vec<u8>, usize, u64) {
    let records = conformance_records();
    let mut raw = Vec::with_capacity(target + 1024 * 1024);
    raw.extend_from_slice(b"{\"Records\":[");
    let mut n = 0u64;
    while raw.len() < target {
        let mut record = records[n as usize % records.len()].clone();
        record["eventID"] = format!("{:08x}-bench-{n:012}", n.wrapping_mul(2654435761)).into();
        record["eventTime"] = format!(
            "2025-06-{:02}T{:02}:{:02}:{:02}Z",
            1 + n % 28,
            n % 24,
            n % 60,
            (n / 60) % 60
        )
        .into();
        record["sourceIPAddress"] = format!("198.51.{}.{}", n % 256, (n / 256) % 256).into();
        if let Some(identity) = record
            .get_mut("userIdentity")
            .and_then(Value::as_object_mut)
        {
            identity.insert("principalId".into(), format!("AIDA{n:016X}").into());
        }
        if n > 0 {
            raw.push(b',');
        }
        write_in_log_order(&mut raw, &record);
        n += 1;
    }
    raw.extend_from_slice(b"]}");
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(&raw).expect("compressing in memory");
    (enc.finish().expect("compressing in memory"), raw.len(), n)
}

fn conformance_records() -> Vec<Value> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/conformance");
    let index: Value =
        serde_json::from_slice(&std::fs::read(root.join("INDEX.json")).expect("corpus index"))
            .expect("corpus index is JSON");
    let mut records = Vec::new();
    for entry in index["objects"].as_array().expect("objects") {
        if entry["kind"] != "cloudtrail-log" {
            continue;
        }
        let gz = std::fs::read(root.join("objects").join(entry["key"].as_str().unwrap()))
            .expect("corpus object");
        let mut text = Vec::new();
        MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut text)
            .expect("corpus object decodes");
        let log: Value = serde_json::from_slice(&text).expect("corpus object is JSON");
        records.extend(log["Records"].as_array().cloned().unwrap_or_default());
    }
    records
}
