//! Body: a request body read within its limits, and decompressed when it is gzip.
//!
//! The body may take at most [`BODY_TIMEOUT`] to arrive and hold at most `max` bytes
//! as sent; gzip (by its magic bytes, or a `Content-Encoding` naming gzip, as Konnect's
//! `application/gzip` does) is decompressed to at most `max` bytes too, so a decompression
//! bomb stops at the limit. A body that says it is gzip but is not is returned as it came,
//! with the reason, for the dead-letter index.

use std::io::Read;

use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

/// A request body must arrive within this.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body is larger than --webhook-max-body ({0} bytes)")]
    TooLarge(usize),
    #[error("the body decompresses to more than --webhook-max-body ({0} bytes)")]
    BombLike(usize),
    #[error("the body did not arrive within {0:?}")]
    Slow(std::time::Duration),
    #[error("the body could not be read: {0}")]
    Broken(String),
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge(_) | BodyError::BombLike(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Slow(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::Broken(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// A body ready for the format.
#[derive(Debug)]
pub enum Decoded {
    Plain(Vec<u8>),
    /// Announced or detected as gzip, but not valid gzip.
    NotGzip {
        raw: Vec<u8>,
        reason: String,
    },
}

/// Reads and decompresses the body of `request`.
pub async fn read(request: Request<Incoming>, max: usize) -> Result<Decoded, BodyError> {
    let says_gzip = request
        .headers()
        .get(hyper::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("gzip"));
    let announced = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > max) {
        return Err(BodyError::TooLarge(max));
    }
    let collected = tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(request.into_body(), max).collect(),
    )
    .await
    .map_err(|_| BodyError::Slow(BODY_TIMEOUT))?;
    let bytes: Bytes = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(err)
            if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(BodyError::TooLarge(max))
        }
        Err(err) => return Err(BodyError::Broken(err.to_string())),
    };
    decode(&bytes, says_gzip, max)
}

/// Decompresses `bytes` when they are gzip (by magic or as announced), to at most `max`.
pub fn decode(bytes: &[u8], says_gzip: bool, max: usize) -> Result<Decoded, BodyError> {
    let magic = bytes.starts_with(&[0x1f, 0x8b]);
    if !magic && !says_gzip {
        return Ok(Decoded::Plain(bytes.to_vec()));
    }
    if !magic {
        // Announced as gzip but sent plain: read it as it is.
        return Ok(Decoded::Plain(bytes.to_vec()));
    }
    let mut out = Vec::with_capacity((bytes.len() * 4).min(max));
    let limit = u64::try_from(max).unwrap_or(u64::MAX) + 1;
    match MultiGzDecoder::new(bytes).take(limit).read_to_end(&mut out) {
        Ok(_) if out.len() > max => Err(BodyError::BombLike(max)),
        Ok(_) => Ok(Decoded::Plain(out)),
        Err(err) => Ok(Decoded::NotGzip {
            raw: bytes.to_vec(),
            reason: format!("the body starts like gzip but does not decompress: {err}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_by_magic_or_header_and_plain_otherwise() {
        let body = b"{\"a\":1}\n".repeat(10);
        assert!(matches!(decode(&gzip(&body), false, 1 << 20), Ok(Decoded::Plain(b)) if b == body));
        assert!(matches!(decode(&body, false, 1 << 20), Ok(Decoded::Plain(b)) if b == body));
        assert!(matches!(decode(&body, true, 1 << 20), Ok(Decoded::Plain(b)) if b == body));
    }

    #[test]
    fn a_bomb_stops_at_the_limit_and_broken_gzip_is_kept() {
        let bomb = gzip(&vec![b'a'; 50 << 20]);
        assert!(
            bomb.len() < 100 << 10,
            "50 MiB of one byte compresses to {}",
            bomb.len()
        );
        assert!(matches!(
            decode(&bomb, false, 1 << 20),
            Err(BodyError::BombLike(_))
        ));
        let mut broken = gzip(b"hello");
        broken.truncate(8);
        assert!(matches!(
            decode(&broken, false, 1 << 20),
            Ok(Decoded::NotGzip { .. })
        ));
    }
}
