//! A fault-injection proxy for integration tests: an HTTP/1.1 reverse proxy on 127.0.0.1 in
//! front of one upstream (the search stand-in or the S3 stand-in). It forwards requests and, as
//! the test chooses with [`FaultProxy::set`], answers some of them with an error status, closes
//! the connection without answering, or holds the response back.
//!
//! Input: plain HTTP/1.1 requests in origin form (`/path?query`), bodies by `Content-Length` or
//! `Transfer-Encoding: chunked`, keep-alive connections. A request in absolute form
//! (`http://host:port/path`, what clients send to a forward proxy) goes to that URL instead of
//! the upstream, so the proxy can also stand as `HTTP_PROXY`. Output: the upstream's response, or the
//! injected one. Bodies are buffered whole, request trailers are dropped, and the upstream sees
//! its own `Host`. No TLS, no HTTP/2, no upgrades. A malformed request closes its connection; an
//! unreachable upstream is answered with 502. The proxy stops when the [`FaultProxy`] is dropped.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// A request head longer than this closes the connection.
const MAX_HEAD: usize = 64 * 1024;

/// Connection-level request headers: the proxy speaks for itself on both connections.
const HOP_BY_HOP: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "expect",
    "te",
    "trailer",
    "upgrade",
];

/// A fault the proxy injects, chosen per request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Forward everything.
    None,
    /// Answer every other matching request (1st, 3rd, 5th ... counted per proxy since the fault
    /// was set) with this status and a JSON error body, without forwarding; forward the others.
    EveryOther { status: u16, path_contains: String },
    /// Answer every matching request with this status and a JSON error body (e.g. 503), without
    /// forwarding.
    Status { status: u16, path_contains: String },
    /// Answer every matching request with this status and this exact JSON body, without
    /// forwarding (e.g. a 200 bulk response that does not match its request).
    Body {
        status: u16,
        body: String,
        path_contains: String,
    },
    /// Close every new/next connection at once without answering (the client sees a connection
    /// error): each request is read whole, counted, and its connection closed.
    Drop,
    /// Forward, but hold the response headers back for `delay` for requests whose method equals
    /// `method` and whose path contains `path_contains`: the response is written no earlier than
    /// `delay` after the request head was read, so a client timeout shorter than `delay` fires
    /// even though the upstream has already acted on the request.
    Delay {
        method: String,
        path_contains: String,
        delay: Duration,
    },
}

/// The proxy; it listens until dropped. `path_contains` is matched against the request target
/// as sent (path and query), and an empty one matches every request.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 with a random port and forwards to `upstream` (e.g.
    /// "http://127.0.0.1:41234").
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fault proxy on 127.0.0.1");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        // Bodies pass through untouched (no decompression) and redirects reach the client.
        let client = reqwest::Client::builder()
            .no_gzip()
            .no_brotli()
            .no_deflate()
            .no_zstd()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .http1_only()
            .build()
            .expect("the proxy's HTTP client builds");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client,
            active: Mutex::new(Active {
                fault: Fault::None,
                matched: 0,
            }),
            requests: AtomicU64::new(0),
            faulted: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept(listener, shared.clone()));
        FaultProxy {
            addr,
            shared,
            accept,
        }
    }

    /// "http://127.0.0.1:PORT"
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        *self.shared.lock() = Active { fault, matched: 0 };
    }

    /// Requests seen (complete request heads read).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// `METHOD target` (path and query as sent) of every request so far, and forgets them.
    pub fn take_seen(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .shared
                .seen
                .lock()
                .expect("the request log is not poisoned"),
        )
    }

    /// Requests answered with an injected fault (status or drop or delayed).
    pub fn faulted(&self) -> u64 {
        self.shared.faulted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    /// Aborting the accept task drops its connection tasks with it.
    fn drop(&mut self) {
        self.accept.abort();
    }
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    active: Mutex<Active>,
    requests: AtomicU64,
    faulted: AtomicU64,
    /// `METHOD target` of every request, in arrival order.
    seen: Mutex<Vec<String>>,
}

/// The fault and its match count, replaced together so that a new fault counts from zero.
struct Active {
    fault: Fault,
    matched: u64,
}

/// What to do with one request.
enum Action {
    Forward,
    Answer(u16),
    Body(u16, String),
    Close,
    Delay(Duration),
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Active> {
        self.active
            .lock()
            .expect("the fault lock is never held across a panic")
    }

    fn decide(&self, method: &str, target: &str) -> Action {
        let mut guard = self.lock();
        let active = &mut *guard;
        let action = match &active.fault {
            Fault::None => Action::Forward,
            Fault::EveryOther {
                status,
                path_contains,
            } if target.contains(path_contains.as_str()) => {
                active.matched += 1;
                if active.matched % 2 == 1 {
                    Action::Answer(*status)
                } else {
                    Action::Forward
                }
            }
            Fault::Status {
                status,
                path_contains,
            } if target.contains(path_contains.as_str()) => Action::Answer(*status),
            Fault::Body {
                status,
                body,
                path_contains,
            } if target.contains(path_contains.as_str()) => Action::Body(*status, body.clone()),
            Fault::Drop => Action::Close,
            Fault::Delay {
                method: delayed,
                path_contains,
                delay,
            } if method.eq_ignore_ascii_case(delayed)
                && target.contains(path_contains.as_str()) =>
            {
                Action::Delay(*delay)
            }
            _ => Action::Forward,
        };
        if !matches!(action, Action::Forward) {
            self.faulted.fetch_add(1, Ordering::SeqCst);
        }
        action
    }

    /// The upstream's response, or a 502 when the upstream cannot be reached.
    async fn forward(&self, request: &Request, body: Vec<u8>) -> Reply {
        match self.send(request, body).await {
            Ok(reply) => reply,
            Err(err) => Reply::error(502, "upstream_unreachable", &err.to_string()),
        }
    }

    async fn send(&self, request: &Request, body: Vec<u8>) -> Result<Reply, reqwest::Error> {
        let mut headers = HeaderMap::new();
        for (name, value) in &request.headers {
            if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                continue;
            }
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.append(name, value);
            }
        }
        let url = if request.target.starts_with("http://") {
            request.target.clone()
        } else {
            format!("{}{}", self.upstream, request.target)
        };
        let mut upstream = self
            .client
            .request(request.method.clone(), url)
            .headers(headers);
        if request.has_body() {
            upstream = upstream.body(body);
        }
        let response = upstream.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?.to_vec();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(shared.clone(), stream));
                }
                // Out of descriptors and the like: let connections finish, then accept again.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves one client connection until it closes, asks to close, or a fault closes it.
async fn serve(shared: Arc<Shared>, stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
    };
    while let Some(request) = conn.read_head().await? {
        let received = Instant::now();
        shared.requests.fetch_add(1, Ordering::SeqCst);
        shared
            .seen
            .lock()
            .expect("the request log is not poisoned")
            .push(format!("{} {}", request.method, request.target));
        if request.expects_continue() && request.has_body() {
            conn.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
        }
        let body = conn.read_body(&request).await?;
        let reply = match shared.decide(request.method.as_str(), &request.target) {
            Action::Close => return Ok(()),
            Action::Answer(status) => {
                let reason = format!(
                    "{} {} failed by the test proxy",
                    request.method, request.target
                );
                Reply::error(status, "injected_fault", &reason)
            }
            Action::Body(status, body) => Reply::json(status, body.into_bytes()),
            Action::Forward => shared.forward(&request, body).await,
            Action::Delay(delay) => {
                let reply = shared.forward(&request, body).await;
                tokio::time::sleep_until(received + delay).await;
                reply
            }
        };
        let close = request.wants_close();
        conn.stream
            .write_all(&reply.encode(&request.method, close))
            .await?;
        if close {
            return Ok(());
        }
    }
    Ok(())
}

struct Conn {
    stream: TcpStream,
    /// Bytes read but not yet consumed; may hold the start of the next request.
    buf: Vec<u8>,
}

impl Conn {
    /// Reads more bytes into `buf`; an error at end of stream.
    async fn fill(&mut self) -> io::Result<()> {
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// The next request head, or `None` when the client closed between requests.
    async fn read_head(&mut self) -> io::Result<Option<Request>> {
        loop {
            // Empty lines before a request line are allowed (RFC 9112, section 2.2).
            while self.buf.starts_with(b"\r\n") {
                self.buf.drain(..2);
            }
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return parse_head(&head).map(Some);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("request head too long"));
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }

    async fn read_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let mut line: Vec<u8> = self.buf.drain(..end + 2).collect();
                line.truncate(end);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("chunk line too long"));
            }
            self.fill().await?;
        }
    }

    async fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// The whole request body, de-chunked.
    async fn read_body(&mut self, request: &Request) -> io::Result<Vec<u8>> {
        if !request.chunked {
            return self.take(request.content_length.unwrap_or(0)).await;
        }
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size = std::str::from_utf8(&line)
                .ok()
                .and_then(|l| l.split(';').next())
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .ok_or_else(|| invalid("bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line that ends the message.
                while !self.read_line().await?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.take(size).await?);
            if !self.take(2).await?.eq(b"\r\n") {
                return Err(invalid("chunk not followed by CRLF"));
            }
        }
    }
}

struct Request {
    method: Method,
    target: String,
    http10: bool,
    headers: Vec<(String, String)>,
    content_length: Option<usize>,
    chunked: bool,
}

impl Request {
    fn header<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a comma-separated header holds `token`, in any of its lines.
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.header(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    fn has_body(&self) -> bool {
        self.chunked || self.content_length.is_some_and(|n| n > 0)
    }

    fn expects_continue(&self) -> bool {
        self.has_token("expect", "100-continue")
    }

    fn wants_close(&self) -> bool {
        self.has_token("connection", "close")
            || (self.http10 && !self.has_token("connection", "keep-alive"))
    }
}

fn parse_head(head: &[u8]) -> io::Result<Request> {
    let text = std::str::from_utf8(head).map_err(|_| invalid("request head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version), None) = (
        request_line.next(),
        request_line.next(),
        request_line.next(),
        request_line.next(),
    ) else {
        return Err(invalid("bad request line"));
    };
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| invalid("bad method"))?;
    if !target.starts_with('/') && !target.starts_with("http://") {
        return Err(invalid(
            "request target is neither in origin nor in absolute form",
        ));
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(invalid("not HTTP/1.x")),
    };
    let mut request = Request {
        method,
        target: target.to_string(),
        http10,
        headers: Vec::new(),
        content_length: None,
        chunked: false,
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid("header without colon"))?;
        request
            .headers
            .push((name.trim().to_string(), value.trim().to_string()));
    }
    request.chunked = request.has_token("transfer-encoding", "chunked");
    let length = request.header("content-length").next();
    if !request.chunked {
        request.content_length = match length {
            Some(length) => Some(length.parse().map_err(|_| invalid("bad content-length"))?),
            None => None,
        };
    }
    Ok(request)
}

/// A response to write back: the upstream's, or one made up by the proxy.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    /// An Elasticsearch-shaped JSON error.
    fn error(status: u16, kind: &str, reason: &str) -> Reply {
        let body = json!({
            "error": {"type": kind, "reason": reason},
            "status": status,
        });
        Reply::json(status, body.to_string().into_bytes())
    }

    /// A JSON answer with exactly this body.
    fn json(status: u16, body: Vec<u8>) -> Reply {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Status line, headers with the proxy's own framing, and the body.
    fn encode(&self, method: &Method, close: bool) -> Vec<u8> {
        let status = self.status;
        let mut out = format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_str(),
            status.canonical_reason().unwrap_or("")
        )
        .into_bytes();
        // HEAD and 304 answers describe a body they do not carry: keep the upstream's length.
        let bodiless = *method == Method::HEAD || status == StatusCode::NOT_MODIFIED;
        let no_length = status.is_informational() || status == StatusCode::NO_CONTENT;
        for (name, value) in &self.headers {
            let framing = [
                "transfer-encoding",
                "connection",
                "keep-alive",
                "content-length",
            ]
            .contains(&name.as_str());
            if framing && !(bodiless && name == reqwest::header::CONTENT_LENGTH) {
                continue;
            }
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !bodiless && !no_length {
            out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !bodiless && !no_length {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}
