//! Enrich: what is added to an event from outside the record: GeoIP and ASN of its source
//! address.
//!
//! - [`geoip`]: `--geoip-database` files (MaxMind City or Country, ASN) -> the `geo` and `as`
//!   members of `source`, as Elasticsearch's `geoip` processor writes them for Elastic's AWS
//!   CloudTrail integration.

pub mod geoip;

pub use geoip::{Answer, GeoIp};
