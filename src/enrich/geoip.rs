//! GeoIP: the location and the autonomous system of an address, from MaxMind databases.
//!
//! Input: the `--geoip-database` paths, at most one location database (`database_type`
//! containing `City`, `Enterprise` or `Country`: GeoLite2-City, GeoIP2-City, GeoLite2-Country,
//! ...) and at most one AS database (`ASN`, or `-ISP`: GeoLite2-ASN, GeoIP2-ISP), each file's
//! own metadata saying which it is; then, per event, the source address.
//!
//! Output: [`Answer::members`], the `"geo":{...}` and/or `"as":{...}` members (comma-separated,
//! no braces around) to put inside the event's `"source":{...}`, exactly what Elasticsearch's
//! `geoip` ingest processor writes there for Elastic's AWS CloudTrail integration:
//! - `geo`, from a City database: the processor's default properties, `city_name`,
//!   `continent_name`, `country_iso_code`, `country_name`, `location` (`lat`, `lon`, only when
//!   the database has both), `region_iso_code` (country code, `-`, subdivision code) and
//!   `region_name`; names in English (`en`), the region being the *most specific* (last)
//!   subdivision, as the processor takes it. No `timezone`, `continent_code`, `postal_code` or
//!   `accuracy_radius`: the processor writes those only when asked. From a Country database:
//!   `continent_name`, `country_iso_code`, `country_name`.
//! - `as`: `number` (an integer) and `organization.name`, the processor's `asn` and
//!   `organization_name` as the integration renames them.
//!
//! Each member is written only when the database has it for the address, an object with no
//! member is left out, and [`GeoIp::lookup`] gives `None` when no database knows the address
//! (private ranges, addresses not in the database), as the processor then writes nothing.
//!
//! Failure policy: [`GeoIp::open`] fails, naming the path, on a missing or unreadable file, a
//! file that is not a MaxMind database, a `database_type` of no known kind, two location or two
//! AS databases, or no path at all. A lookup never fails: a record that does not decode counts
//! as unknown. A database file replaced on disk (`geoipupdate` renames a new file over the old
//! one, weekly) is picked up without a restart: lookups compare the clock with the next check
//! time (an atomic load; each thread reads the clock once every 32 lookups) and, once a
//! minute, the one thread that wins the compare-exchange stats the files and reopens those
//! whose modification time, length or inode changed; [`GeoIp::refresh`] does the
//! same at once. A replacement that cannot be opened is logged (`warn`, once per version of
//! the file) and the database already open stays in use.
//!
//! Memory: the files are memory-mapped (`maxminddb`'s `mmap` feature), never read into the
//! heap. Only the pages the lookups touch (the search-tree nodes on the way to an address and
//! the records read) become resident; they count in RSS as shared file-backed pages, which the
//! kernel can drop and read again under pressure, so the 60-70 MB of GeoLite2-City never sit
//! whole in the worker's heap. A map stays valid when its file is replaced by rename (the old
//! inode lives until unmapped), but a file truncated or rewritten in place while mapped makes
//! lookups undefined (a `SIGBUS` at worst): replace database files by rename, as
//! `geoipupdate` does.
//!
//! Speed: each thread keeps a cache of the answers of the last addresses it looked up (up to
//! 4096, emptied when full, and when a database is reloaded); a cached answer costs a hash, a
//! probe and a reference count. A thread's cache keeps the databases it last used mapped until
//! its next lookup after a reload.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use maxminddb::{MaxMindDbError, Mmap, Reader};
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use tracing::{info, warn};

/// How often lookups check whether a database file was replaced.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// How many addresses each thread's cache holds before it is emptied.
const CACHE_CAPACITY: usize = 4096;

/// How many lookups a thread makes between two readings of the clock: the clock costs more
/// than a cached lookup, and about half as much as a database's search for an address.
const CLOCK_EVERY: u32 = 32;

/// Databases opened from `--geoip-database` paths. Cheap to clone (the clones share the
/// databases, their reloads and the check interval).
#[derive(Clone, Debug)]
pub struct GeoIp {
    shared: Arc<Shared>,
}

/// The `"geo":{...}` and/or `"as":{...}` members for one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer(Arc<[u8]>);

impl Answer {
    /// The members as JSON, comma-separated, without braces around.
    pub fn members(&self) -> &[u8] {
        &self.0
    }
}

/// Why the databases cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum GeoIpError {
    #[error("--geoip-database: no database file given")]
    NoPath,
    #[error("--geoip-database {}: cannot read the file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--geoip-database {}: not a MaxMind database (MMDB): {source}", path.display())]
    NotMmdb {
        path: PathBuf,
        source: MaxMindDbError,
    },
    #[error(
        "--geoip-database {}: database_type {database_type:?} is neither a location database \
         (City, Country) nor an AS database (ASN)",
        path.display()
    )]
    UnknownType {
        path: PathBuf,
        database_type: String,
    },
    #[error(
        "--geoip-database: two {role} databases, {} and {}; give at most one",
        first.display(),
        second.display()
    )]
    Duplicate {
        role: &'static str,
        first: PathBuf,
        second: PathBuf,
    },
}

impl GeoIpError {
    /// Opening the same files again fails the same way.
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// What a database answers, from its `database_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    City,
    Country,
    As,
}

impl Kind {
    fn of(database_type: &str) -> Option<Kind> {
        if database_type.contains("City") || database_type.contains("Enterprise") {
            Some(Kind::City)
        } else if database_type.contains("Country") {
            Some(Kind::Country)
        } else if database_type.contains("ASN") || database_type.ends_with("-ISP") {
            Some(Kind::As)
        } else {
            None
        }
    }

    /// The role the kind fills: one database of each role at most.
    fn role(self) -> &'static str {
        match self {
            Kind::City | Kind::Country => "location (City or Country)",
            Kind::As => "AS (ASN)",
        }
    }
}

/// A file as last seen on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    device: u64,
    inode: u64,
}

impl Stamp {
    fn of(metadata: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        let (device, inode) = {
            use std::os::unix::fs::MetadataExt;
            (metadata.dev(), metadata.ino())
        };
        #[cfg(not(unix))]
        let (device, inode) = (0, 0);
        Stamp {
            modified: metadata.modified().ok(),
            len: metadata.len(),
            device,
            inode,
        }
    }
}

/// One open database.
#[derive(Clone, Debug)]
struct Db {
    kind: Kind,
    reader: Arc<Reader<Mmap>>,
}

/// The databases in use, location first.
#[derive(Debug, Default)]
struct Databases {
    list: Vec<Db>,
}

/// A database file, in the order of [`Databases::list`].
#[derive(Debug)]
struct Source {
    path: PathBuf,
    /// The version of the file last looked at (loaded, or refused); `None` when it was missing.
    seen: Option<Stamp>,
}

#[derive(Debug)]
struct Shared {
    /// Tells one `GeoIp` from another in the per-thread caches.
    id: u64,
    files: Mutex<Vec<Source>>,
    current: RwLock<Arc<Databases>>,
    /// Bumped by every reload; the per-thread caches start over when it moves.
    generation: AtomicU64,
    started: Instant,
    /// Milliseconds since `started` at which a lookup next checks the files.
    next_check: AtomicU64,
    interval: AtomicU64,
}

impl Shared {
    fn current(&self) -> Arc<Databases> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether this caller is the one to check the files now.
    fn due(&self) -> bool {
        let next = self.next_check.load(Ordering::Relaxed);
        let now = self.now();
        if now < next {
            return false;
        }
        let then = now.saturating_add(self.interval.load(Ordering::Relaxed));
        self.next_check
            .compare_exchange(next, then, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

fn millis(interval: Duration) -> u64 {
    u64::try_from(interval.as_millis()).unwrap_or(u64::MAX)
}

/// Maps the file at `path` and reads its metadata.
fn map(path: &Path) -> Result<(Stamp, Kind, Reader<Mmap>), GeoIpError> {
    let read = |source| GeoIpError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let metadata = file.metadata().map_err(read)?;
    if !metadata.is_file() {
        return Err(read(std::io::Error::other("not a regular file")));
    }
    // SAFETY: the map is only read, and stays valid when the file is replaced by rename (the
    // old inode lives on until unmapped). A file truncated or rewritten in place while mapped
    // would make reads undefined; the module documentation says to replace files by rename,
    // as geoipupdate does.
    let mmap = unsafe { Mmap::map(&file) }.map_err(read)?;
    let reader = Reader::from_source(mmap).map_err(|source| GeoIpError::NotMmdb {
        path: path.to_owned(),
        source,
    })?;
    let database_type = &reader.metadata().database_type;
    let kind = Kind::of(database_type).ok_or_else(|| GeoIpError::UnknownType {
        path: path.to_owned(),
        database_type: database_type.clone(),
    })?;
    Ok((Stamp::of(&metadata), kind, reader))
}

fn log_opened(path: &Path, reader: &Reader<Mmap>, what: &str) {
    let metadata = reader.metadata();
    info!(
        path = %path.display(),
        database_type = %metadata.database_type,
        build_epoch = metadata.build_epoch,
        "GeoIP database {what}"
    );
}

impl GeoIp {
    /// Opens every path; each file's own metadata says which kind of database it is.
    pub fn open(paths: &[PathBuf]) -> Result<GeoIp, GeoIpError> {
        if paths.is_empty() {
            return Err(GeoIpError::NoPath);
        }
        let mut opened: Vec<(Source, Db)> = Vec::with_capacity(paths.len());
        for path in paths {
            let (stamp, kind, reader) = map(path)?;
            if let Some((first, _)) = opened.iter().find(|(_, db)| db.kind.role() == kind.role()) {
                return Err(GeoIpError::Duplicate {
                    role: kind.role(),
                    first: first.path.clone(),
                    second: path.clone(),
                });
            }
            log_opened(path, &reader, "opened");
            let source = Source {
                path: path.clone(),
                seen: Some(stamp),
            };
            let reader = Arc::new(reader);
            opened.push((source, Db { kind, reader }));
        }
        opened.sort_by_key(|(_, db)| db.kind == Kind::As);
        let (files, list): (Vec<Source>, Vec<Db>) = opened.into_iter().unzip();
        static IDS: AtomicU64 = AtomicU64::new(1);
        let shared = Shared {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            files: Mutex::new(files),
            current: RwLock::new(Arc::new(Databases { list })),
            generation: AtomicU64::new(0),
            started: Instant::now(),
            next_check: AtomicU64::new(millis(CHECK_INTERVAL)),
            interval: AtomicU64::new(millis(CHECK_INTERVAL)),
        };
        Ok(GeoIp {
            shared: Arc::new(shared),
        })
    }

    /// Sets how often lookups check for replaced files ([`CHECK_INTERVAL`] unless set; zero:
    /// at every lookup). Applies to every clone.
    pub fn with_check_interval(self, interval: Duration) -> Self {
        let interval = millis(interval);
        let shared = &self.shared;
        shared.interval.store(interval, Ordering::Relaxed);
        let next = shared.now().saturating_add(interval);
        shared.next_check.store(next, Ordering::Relaxed);
        self
    }

    /// The `"geo":{...}` and/or `"as":{...}` members for `ip` (see the module documentation);
    /// `None` when no database knows the address.
    pub fn lookup(&self, ip: IpAddr) -> Option<Answer> {
        CACHE
            .try_with(|cache| {
                let mut cache = cache.try_borrow_mut().ok()?;
                Some(cache.lookup(self, ip))
            })
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                self.check();
                self.shared.current().answer(ip, &mut String::new())
            })
    }

    /// Reloads replaced files when the check is due and this caller won the turn.
    fn check(&self) {
        if self.shared.due() {
            self.refresh();
        }
    }

    /// Re-reads every database file replaced on disk (other modification time, length or
    /// inode) since it was opened; a file that now fails to open is logged and the database
    /// already open stays in use. Returns how many databases were reloaded.
    pub fn refresh(&self) -> usize {
        let shared = &*self.shared;
        let mut files = shared.files.lock().unwrap_or_else(PoisonError::into_inner);
        let current = shared.current();
        let mut list: Option<Vec<Db>> = None;
        for (at, file) in files.iter_mut().enumerate() {
            let was = current.list[at].kind;
            if let Some(db) = file.reload(was) {
                list.get_or_insert_with(|| current.list.clone())[at] = db;
            }
        }
        let Some(list) = list else {
            return 0;
        };
        let reloaded = list
            .iter()
            .zip(&current.list)
            .filter(|(new, old)| !Arc::ptr_eq(&new.reader, &old.reader))
            .count();
        *shared
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(Databases { list });
        shared.generation.fetch_add(1, Ordering::Release);
        reloaded
    }
}

impl Source {
    /// The file's new version, when it changed since last seen and opens as a database of the
    /// same role as `was`.
    fn reload(&mut self, was: Kind) -> Option<Db> {
        let path = self.path.display();
        let seen = match std::fs::metadata(&self.path) {
            Ok(metadata) => Stamp::of(&metadata),
            Err(error) => {
                if self.seen.take().is_some() {
                    warn!(%path, %error, "GeoIP database file gone; the one loaded stays in use");
                }
                return None;
            }
        };
        if self.seen == Some(seen) {
            return None;
        }
        self.seen = Some(seen);
        let refused = match map(&self.path) {
            Ok((stamp, kind, reader)) if kind.role() == was.role() => {
                self.seen = Some(stamp);
                log_opened(&self.path, &reader, "reloaded");
                let reader = Arc::new(reader);
                return Some(Db { kind, reader });
            }
            Ok((stamp, kind, _)) => {
                self.seen = Some(stamp);
                format!("now a {} database, was {}", kind.role(), was.role())
            }
            Err(error) => error.to_string(),
        };
        warn!(%path, error = %refused, "GeoIP database replaced on disk but not usable; the one loaded stays in use");
        None
    }
}

impl Databases {
    /// The members every database gives for `ip`, uncached, written in `out` first (cleared
    /// here, and kept by the caller for the next lookup: an address no database holds
    /// allocates nothing).
    fn answer(&self, ip: IpAddr, out: &mut String) -> Option<Answer> {
        out.clear();
        for db in &self.list {
            let before = out.len();
            if before > 0 {
                out.push(',');
            }
            let wrote = match db.kind {
                Kind::City | Kind::Country => write_geo(&db.reader, db.kind, ip, out),
                Kind::As => write_as(&db.reader, ip, out),
            };
            if !wrote {
                out.truncate(before);
            }
        }
        (!out.is_empty()).then(|| Answer(Arc::from(out.as_bytes())))
    }
}

/// `names` of a City, Country or Continent: only the English one is written.
#[derive(Debug, Default, Deserialize)]
struct Names<'a> {
    #[serde(borrow, default)]
    en: Option<&'a str>,
}

#[derive(Debug, Default, Deserialize)]
struct Place<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
    #[serde(borrow, default)]
    names: Names<'a>,
}

#[derive(Debug, Default, Deserialize)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// The fields of a City (or Country) record the processor's defaults read.
#[derive(Debug, Default, Deserialize)]
struct LocationRecord<'a> {
    #[serde(borrow, default)]
    city: Place<'a>,
    #[serde(borrow, default)]
    continent: Place<'a>,
    #[serde(borrow, default)]
    country: Place<'a>,
    #[serde(default)]
    location: Location,
    /// The most specific subdivision: the last of the list.
    #[serde(
        borrow,
        default,
        rename = "subdivisions",
        deserialize_with = "last_subdivision"
    )]
    subdivision: Option<Place<'a>>,
}

fn last_subdivision<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Place<'de>>, D::Error> {
    struct Last;
    impl<'de> Visitor<'de> for Last {
        type Value = Option<Place<'de>>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a list of subdivisions")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut last = None;
            while let Some(place) = seq.next_element()? {
                last = Some(place);
            }
            Ok(last)
        }
    }
    deserializer.deserialize_seq(Last)
}

/// The fields of an ASN (or ISP) record.
#[derive(Debug, Deserialize)]
struct AsRecord<'a> {
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
}

/// Writes `"geo":{...}` for `ip`; false when there is nothing to write.
fn write_geo(reader: &Reader<Mmap>, kind: Kind, ip: IpAddr, out: &mut String) -> bool {
    let Some(record) = reader
        .lookup(ip)
        .and_then(|found| found.decode::<LocationRecord>())
        .ok()
        .flatten()
    else {
        return false;
    };
    let city = kind == Kind::City;
    let mut geo = Object::open(out, "geo");
    if city {
        geo.string("city_name", record.city.names.en);
    }
    geo.string("continent_name", record.continent.names.en);
    geo.string("country_iso_code", record.country.iso_code);
    geo.string("country_name", record.country.names.en);
    if !city {
        return geo.close();
    }
    if let (Some(lat), Some(lon)) = (record.location.latitude, record.location.longitude) {
        if lat.is_finite() && lon.is_finite() {
            geo.key("location");
            write!(geo.out, "{{\"lat\":{lat:?},\"lon\":{lon:?}}}")
                .expect("a String takes any text");
        }
    }
    let subdivision = record.subdivision.unwrap_or_default();
    if let (Some(country), Some(region)) = (record.country.iso_code, subdivision.iso_code) {
        geo.key("region_iso_code");
        geo.out.push('"');
        escape(country, geo.out);
        geo.out.push('-');
        escape(region, geo.out);
        geo.out.push('"');
    }
    geo.string("region_name", subdivision.names.en);
    geo.close()
}

/// Writes `"as":{...}` for `ip`; false when there is nothing to write.
fn write_as(reader: &Reader<Mmap>, ip: IpAddr, out: &mut String) -> bool {
    let Some(record) = reader
        .lookup(ip)
        .and_then(|found| found.decode::<AsRecord>())
        .ok()
        .flatten()
    else {
        return false;
    };
    let mut as_ = Object::open(out, "as");
    if let Some(number) = record.autonomous_system_number {
        as_.key("number");
        write!(as_.out, "{number}").expect("a String takes any text");
    }
    if let Some(name) = record.autonomous_system_organization {
        as_.key("organization");
        as_.out.push_str("{\"name\":\"");
        escape(name, as_.out);
        as_.out.push_str("\"}");
    }
    as_.close()
}

/// One JSON object being written: `"name":{` then members, commas between.
struct Object<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> Object<'a> {
    fn open(out: &'a mut String, name: &str) -> Self {
        out.push('"');
        out.push_str(name);
        out.push_str("\":{");
        Object { out, empty: true }
    }

    /// `"key":`, after a comma unless first.
    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    fn string(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.key(key);
            self.out.push('"');
            escape(value, self.out);
            self.out.push('"');
        }
    }

    /// Closes the object; false when it has no member.
    fn close(self) -> bool {
        self.out.push('}');
        !self.empty
    }
}

/// `text` as the inside of a JSON string: UTF-8 kept, only what JSON requires escaped.
fn escape(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(at) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
        out.push_str(&rest[..at]);
        let c = rest[at..]
            .chars()
            .next()
            .expect("find returned a char boundary");
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            _ => write!(out, "\\u{:04x}", u32::from(c)).expect("a String takes any text"),
        }
        rest = &rest[at + c.len_utf8()..];
    }
    out.push_str(rest);
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::new());
}

/// One thread's answers, for one `GeoIp` and one generation of its databases.
struct Cache {
    owner: u64,
    generation: u64,
    /// Cached lookups left before the next clock read.
    countdown: u32,
    databases: Arc<Databases>,
    answers: HashMap<IpAddr, Option<Answer>, Seeded>,
    /// Where an answer is written before it is kept.
    scratch: String,
}

impl Cache {
    fn new() -> Self {
        let seed = RandomState::new().hash_one(0u8);
        Cache {
            owner: 0,
            generation: 0,
            countdown: 0,
            databases: Arc::default(),
            answers: HashMap::with_capacity_and_hasher(CACHE_CAPACITY, Seeded(seed)),
            scratch: String::with_capacity(512),
        }
    }

    fn lookup(&mut self, geoip: &GeoIp, ip: IpAddr) -> Option<Answer> {
        let shared = &*geoip.shared;
        // The clock is read every CLOCK_EVERY lookups.
        if self.countdown == 0 || shared.interval.load(Ordering::Relaxed) == 0 {
            self.countdown = CLOCK_EVERY;
            geoip.check();
        }
        self.countdown -= 1;
        let generation = shared.generation.load(Ordering::Acquire);
        if self.owner != shared.id || self.generation != generation {
            self.owner = shared.id;
            self.generation = generation;
            self.databases = shared.current();
            self.answers.clear();
        }
        if let Some(answer) = self.answers.get(&ip) {
            return answer.clone();
        }
        let answer = self.databases.answer(ip, &mut self.scratch);
        if self.answers.len() >= CACHE_CAPACITY {
            self.answers.clear();
        }
        self.answers.insert(ip, answer.clone());
        answer
    }
}

/// A fast hash for addresses (the cache is small and emptied when full), seeded per thread.
#[derive(Clone)]
struct Seeded(u64);

impl BuildHasher for Seeded {
    type Hasher = AddressHasher;

    fn build_hasher(&self) -> AddressHasher {
        AddressHasher(self.0)
    }
}

struct AddressHasher(u64);

impl AddressHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        // splitmix64's finalizer: every input bit reaches the low bits the table indexes by.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_u128(&mut self, n: u128) {
        self.add(n as u64);
        self.add((n >> 64) as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.add(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const CITY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/geoip/GeoLite2-City-Test.mmdb"
    );
    const COUNTRY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/geoip/GeoLite2-Country-Test.mmdb"
    );
    const ASN: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/geoip/GeoLite2-ASN-Test.mmdb"
    );

    fn open(paths: &[&str]) -> Result<GeoIp, GeoIpError> {
        let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
        GeoIp::open(&paths)
    }

    /// The answer for `ip`, parsed as the object it goes into.
    fn source(geoip: &GeoIp, ip: &str) -> Option<Value> {
        let answer = geoip.lookup(ip.parse().unwrap())?;
        let text = std::str::from_utf8(answer.members()).unwrap();
        Some(serde_json::from_str(&format!("{{{text}}}")).unwrap())
    }

    fn linkoping() -> Value {
        json!({
            "city_name": "Link\u{f6}ping",
            "continent_name": "Europe",
            "country_iso_code": "SE",
            "country_name": "Sweden",
            "location": {"lat": 58.4167, "lon": 15.6167},
            "region_iso_code": "SE-E",
            "region_name": "\u{d6}sterg\u{f6}tland County"
        })
    }

    #[test]
    fn a_city_database_gives_the_processor_defaults() {
        let geoip = open(&[CITY]).unwrap();
        assert_eq!(
            source(&geoip, "89.160.20.156").unwrap(),
            json!({"geo": linkoping()})
        );
        assert_eq!(
            source(&geoip, "81.2.69.144").unwrap(),
            json!({"geo": {
                "city_name": "London",
                "continent_name": "Europe",
                "country_iso_code": "GB",
                "country_name": "United Kingdom",
                "location": {"lat": 51.5142, "lon": -0.0931},
                "region_iso_code": "GB-ENG",
                "region_name": "England"
            }})
        );
    }

    #[test]
    fn members_are_written_in_order_as_utf8_with_numbers_as_written() {
        let geoip = open(&[CITY, ASN]).unwrap();
        let answer = geoip.lookup("89.160.20.156".parse().unwrap()).unwrap();
        assert_eq!(
            std::str::from_utf8(answer.members()).unwrap(),
            "\"geo\":{\"city_name\":\"Link\u{f6}ping\",\"continent_name\":\"Europe\",\
             \"country_iso_code\":\"SE\",\"country_name\":\"Sweden\",\
             \"location\":{\"lat\":58.4167,\"lon\":15.6167},\"region_iso_code\":\"SE-E\",\
             \"region_name\":\"\u{d6}sterg\u{f6}tland County\"},\
             \"as\":{\"number\":29518,\"organization\":{\"name\":\"Bredband2 AB\"}}"
        );
    }

    #[test]
    fn the_region_is_the_most_specific_subdivision() {
        // 2.125.160.216: England, then West Berkshire; the processor takes the last.
        let geoip = open(&[CITY]).unwrap();
        let geo = &source(&geoip, "2.125.160.216").unwrap()["geo"];
        assert_eq!(geo["city_name"], "Boxford");
        assert_eq!(geo["region_iso_code"], "GB-WBK");
        assert_eq!(geo["region_name"], "West Berkshire");
    }

    #[test]
    fn city_and_asn_together_and_in_either_order() {
        for paths in [[CITY, ASN], [ASN, CITY]] {
            let geoip = open(&paths).unwrap();
            assert_eq!(
                source(&geoip, "89.160.20.156").unwrap(),
                json!({
                    "geo": linkoping(),
                    "as": {"number": 29518, "organization": {"name": "Bredband2 AB"}}
                })
            );
        }
    }

    #[test]
    fn an_address_only_one_database_knows_gets_only_its_member() {
        let geoip = open(&[CITY, ASN]).unwrap();
        // In the ASN test data but not in the City test data.
        let only_as = source(&geoip, "1.128.0.1").unwrap();
        assert_eq!(only_as.as_object().unwrap().len(), 1, "{only_as}");
        assert_eq!(only_as["as"]["number"], 1221);
        assert_eq!(only_as["as"]["organization"]["name"], "Telstra Pty Ltd");
    }

    #[test]
    fn the_country_database_gives_continent_and_country_only() {
        let geoip = open(&[COUNTRY]).unwrap();
        assert_eq!(
            source(&geoip, "89.160.20.156").unwrap(),
            json!({"geo": {
                "continent_name": "Europe",
                "country_iso_code": "SE",
                "country_name": "Sweden"
            }})
        );
    }

    #[test]
    fn the_asn_database_alone() {
        let geoip = open(&[ASN]).unwrap();
        assert_eq!(
            source(&geoip, "89.160.20.156").unwrap(),
            json!({"as": {"number": 29518, "organization": {"name": "Bredband2 AB"}}})
        );
    }

    #[test]
    fn unknown_and_private_addresses_give_none() {
        let geoip = open(&[CITY, ASN]).unwrap();
        for ip in [
            "10.0.0.1",
            "127.0.0.1",
            "192.168.1.1",
            "::1",
            "fe80::1",
            "8.8.8.8",
        ] {
            assert_eq!(geoip.lookup(ip.parse().unwrap()), None, "{ip}");
            // Cached the same way.
            assert_eq!(geoip.lookup(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn ipv6_addresses_are_looked_up() {
        let geoip = open(&[CITY, ASN]).unwrap();
        // 2001:218::/32 in the City test data: Japan, no city.
        let geo = &source(&geoip, "2001:218::1").unwrap()["geo"];
        assert_eq!(geo["country_iso_code"], "JP");
        assert_eq!(geo["country_name"], "Japan");
        assert_eq!(geo["continent_name"], "Asia");
        assert_eq!(geo.get("city_name"), None);
        // An IPv4-mapped address answers as the IPv4 one.
        assert_eq!(
            source(&geoip, "::ffff:89.160.20.156"),
            source(&geoip, "89.160.20.156")
        );
    }

    #[test]
    fn opening_fails_clearly() {
        let missing = "/nonexistent/GeoLite2-City.mmdb";
        let error = open(&[missing]).unwrap_err();
        assert!(matches!(error, GeoIpError::Read { .. }), "{error:?}");
        assert!(error.to_string().contains(missing), "{error}");

        let not_mmdb = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let error = open(&[not_mmdb]).unwrap_err();
        assert!(matches!(error, GeoIpError::NotMmdb { .. }), "{error:?}");
        assert!(error.to_string().contains(not_mmdb), "{error}");

        let error = open(&[CITY, CITY]).unwrap_err();
        assert!(matches!(error, GeoIpError::Duplicate { .. }), "{error:?}");
        assert!(error.to_string().contains("two location"), "{error}");
        let error = open(&[COUNTRY, ASN, CITY]).unwrap_err();
        assert!(matches!(error, GeoIpError::Duplicate { .. }), "{error:?}");
        let error = open(&[ASN, CITY, ASN]).unwrap_err();
        assert!(error.to_string().contains("two AS"), "{error}");

        let error = open(&[]).unwrap_err();
        assert!(matches!(error, GeoIpError::NoPath), "{error:?}");

        let dir = env!("CARGO_MANIFEST_DIR");
        let error = open(&[dir]).unwrap_err();
        assert!(matches!(error, GeoIpError::Read { .. }), "{error:?}");
        assert!(!error.is_transient());
    }

    /// A fresh folder under the system's temporary one.
    fn scratch(name: &str) -> PathBuf {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cloudtrail-ingest-geoip-{}-{}-{name}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn an_unknown_database_type_and_an_empty_file_are_refused() {
        // The Country database with its database_type changed to one of the same length.
        let mut bytes = std::fs::read(COUNTRY).unwrap();
        let marker = b"\xab\xcd\xefMaxMind.com";
        let metadata = bytes
            .windows(marker.len())
            .rposition(|w| w == marker)
            .unwrap();
        let old = b"GeoLite2-Country";
        let at = metadata
            + bytes[metadata..]
                .windows(old.len())
                .position(|w| w == old)
                .unwrap();
        bytes[at..at + old.len()].copy_from_slice(b"GeoLite2-Unknown");
        let dir = scratch("unknown");
        let path = dir.join("odd.mmdb");
        std::fs::write(&path, bytes).unwrap();
        let error = GeoIp::open(std::slice::from_ref(&path)).unwrap_err();
        assert!(
            matches!(&error, GeoIpError::UnknownType { database_type, .. } if database_type == "GeoLite2-Unknown"),
            "{error:?}"
        );
        assert!(error.to_string().contains("odd.mmdb"), "{error}");

        let empty = dir.join("empty.mmdb");
        std::fs::write(&empty, b"").unwrap();
        let error = GeoIp::open(&[empty]).unwrap_err();
        assert!(matches!(error, GeoIpError::NotMmdb { .. }), "{error:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// What `f` returns, and what it logged.
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Logged(Arc::clone(&writer)))
            .finish();
        let value = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        (value, text)
    }

    struct Logged(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Logged {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_database_replaced_by_rename_is_reloaded() {
        let dir = scratch("replace");
        let path = dir.join("GeoLite2-City.mmdb");
        std::fs::copy(COUNTRY, &path).unwrap();
        let geoip = GeoIp::open(std::slice::from_ref(&path)).unwrap();
        let ip: IpAddr = "89.160.20.156".parse().unwrap();
        assert_eq!(
            source(&geoip, "89.160.20.156").unwrap()["geo"].get("city_name"),
            None
        );
        assert_eq!(geoip.refresh(), 0, "nothing changed yet");

        let next = dir.join("GeoLite2-City.mmdb.new");
        std::fs::copy(CITY, &next).unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(geoip.refresh(), 1);
        assert_eq!(geoip.refresh(), 0, "reloaded once");
        assert_eq!(
            source(&geoip, "89.160.20.156").unwrap(),
            json!({"geo": linkoping()})
        );

        // A corrupt replacement: refused, the City database keeps answering.
        std::fs::write(&next, b"not a database").unwrap();
        std::fs::rename(&next, &path).unwrap();
        let (reloaded, logged) = logged(|| [geoip.refresh(), geoip.refresh()]);
        assert_eq!(reloaded, [0, 0]);
        assert_eq!(
            logged.matches("WARN").count(),
            1,
            "once per version: {logged}"
        );
        assert!(
            logged.contains(&format!("path={}", path.display())),
            "{logged}"
        );
        assert!(logged.contains("error=--geoip-database"), "{logged}");
        assert!(logged.contains("not a MaxMind database"), "{logged}");
        assert_eq!(geoip.lookup(ip), open(&[CITY]).unwrap().lookup(ip));

        // An AS database in the location database's place: refused too.
        std::fs::copy(ASN, &next).unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(geoip.refresh(), 0);
        assert_eq!(
            source(&geoip, "89.160.20.156").unwrap(),
            json!({"geo": linkoping()})
        );

        // A file gone keeps the database too, and its return is picked up.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(geoip.refresh(), 0);
        std::fs::copy(COUNTRY, &path).unwrap();
        assert_eq!(geoip.refresh(), 1);
        assert_eq!(
            source(&geoip, "89.160.20.156").unwrap()["geo"].get("city_name"),
            None
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn lookups_pick_up_a_replaced_file_by_themselves() {
        let dir = scratch("auto");
        let path = dir.join("GeoLite2-City.mmdb");
        std::fs::copy(COUNTRY, &path).unwrap();
        let geoip = GeoIp::open(std::slice::from_ref(&path)).unwrap();
        let clone = geoip.clone().with_check_interval(Duration::ZERO);
        let ip = "89.160.20.156";
        assert_eq!(source(&geoip, ip).unwrap()["geo"].get("city_name"), None);

        let next = dir.join("GeoLite2-City.mmdb.new");
        std::fs::copy(CITY, &next).unwrap();
        std::fs::rename(&next, &path).unwrap();
        // The cached answer is dropped too.
        assert_eq!(
            source(&geoip, ip).unwrap()["geo"]["city_name"],
            "Link\u{f6}ping"
        );
        assert_eq!(
            source(&clone, ip).unwrap()["geo"]["city_name"],
            "Link\u{f6}ping"
        );

        // With the default interval, nothing is checked before a minute has passed.
        let slow = GeoIp::open(&[PathBuf::from(COUNTRY)]).unwrap();
        assert!(!slow.shared.due());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn answers_are_the_same_from_every_thread_and_clone() {
        let geoip = open(&[CITY, ASN]).unwrap();
        let expected = geoip.lookup("81.2.69.144".parse().unwrap());
        assert!(expected.is_some());
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let geoip = geoip.clone();
                let expected = expected.clone();
                scope.spawn(move || {
                    for _ in 0..1000 {
                        assert_eq!(geoip.lookup("81.2.69.144".parse().unwrap()), expected);
                    }
                });
            }
        });
        // Another GeoIp on the same thread does not see this one's cache.
        let country = open(&[COUNTRY]).unwrap();
        assert_ne!(country.lookup("81.2.69.144".parse().unwrap()), expected);
    }

    #[test]
    fn the_cache_is_bounded() {
        let geoip = open(&[CITY]).unwrap();
        for n in 0..(CACHE_CAPACITY as u32 * 2 + 7) {
            geoip.lookup(IpAddr::from(std::net::Ipv4Addr::from(n)));
        }
        CACHE.with(|cache| assert!(cache.borrow().answers.len() <= CACHE_CAPACITY));
        assert!(geoip.lookup("89.160.20.156".parse().unwrap()).is_some());
    }

    #[test]
    fn strings_are_escaped_as_json_requires() {
        let mut out = String::new();
        escape("a\"b\\c\nd\u{1}e Link\u{f6}ping /", &mut out);
        assert_eq!(out, "a\\\"b\\\\c\\nd\\u0001e Link\u{f6}ping /");
    }

    #[test]
    fn geoip_is_send_and_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<GeoIp>();
        check::<Answer>();
    }

    /// `cargo test --release --lib enrich::geoip::tests::timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn timing() {
        let geoip = open(&[CITY, ASN]).unwrap();
        let ip: IpAddr = "89.160.20.156".parse().unwrap();
        let rounds = 5_000_000u32;
        let start = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(geoip.lookup(std::hint::black_box(ip)));
        }
        let cached = start.elapsed() / rounds;
        let databases = geoip.shared.current();
        let rounds = 200_000u32;
        let mut scratch = String::new();
        let start = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(databases.answer(std::hint::black_box(ip), &mut scratch));
        }
        let uncached = start.elapsed() / rounds;
        let reader = &databases.list[0].reader;
        let start = Instant::now();
        for _ in 0..rounds {
            let found = reader.lookup(std::hint::black_box(ip)).unwrap();
            std::hint::black_box(found.offset());
        }
        let search = start.elapsed() / rounds;
        let start = Instant::now();
        for _ in 0..rounds {
            let found = reader.lookup(std::hint::black_box(ip)).unwrap();
            std::hint::black_box(found.decode::<LocationRecord>().unwrap());
        }
        let decode = start.elapsed() / rounds - search;
        // Many addresses, all in the cache: 3000 distinct, most of them in no database.
        let many: Vec<IpAddr> = (0..3000u32)
            .map(|n| IpAddr::from(std::net::Ipv4Addr::from(0x5900_0000 + n * 7919)))
            .collect();
        let rounds = 2000u32;
        let start = Instant::now();
        for _ in 0..rounds {
            for ip in &many {
                std::hint::black_box(geoip.lookup(*ip));
            }
        }
        let spread = start.elapsed() / (rounds * many.len() as u32);
        let start = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(geoip.shared.now());
        }
        let clock = start.elapsed() / rounds;
        println!(
            "cached {cached:?}, cached over 3000 addresses {spread:?}, uncached (City + ASN) \
             {uncached:?} (City search {search:?}, City decode {decode:?}), clock read {clock:?}"
        );
    }
}
