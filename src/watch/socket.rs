//! The watch daemon's query server: a Unix socket (`daemon.sock`, mode 0600) in the database
//! folder, so that `imgsim similar` and `imgsim status` use the daemon's loaded models instead
//! of loading their own, and `imgsim dupes` its open tables.
//!
//! One request per connection: a JSON line, then as many bytes of image as it announces; one
//! JSON line back. The daemon never opens a file on a client's behalf: the client sends the
//! query's bytes (it read the file itself) and its path, whose stored vector is used only if
//! the path is indexed. Malformed or oversized requests get an error reply.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{DaemonStatus, Shared};
use crate::error::{Error, Result};
use crate::models::WeightsSource;
use crate::search::{self, Query};

pub const SOCKET: &str = "daemon.sock";
const MAX_REQUEST_LINE: u64 = 64 * 1024;
/// The largest query image accepted over the socket.
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;
/// Connections answered at once; past that a client is told the daemon is busy and works
/// directly. Each connection is a thread and at most its image in memory.
const MAX_CONNECTIONS: usize = 64;
/// Query images held at once, all connections together; a request past it is told the
/// daemon is busy (and works directly). Without it, 64 clients could make the daemon hold
/// 64 images of 256 MiB.
const IMAGE_BYTES_AT_ONCE: u64 = MAX_IMAGE_BYTES;
static IMAGE_BYTES_HELD: AtomicU64 = AtomicU64::new(0);

/// A share of [`IMAGE_BYTES_AT_ONCE`], given back when dropped.
struct ImageBytes(u64);

impl ImageBytes {
    fn reserve(n: u64) -> Option<Self> {
        IMAGE_BYTES_HELD
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held + n <= IMAGE_BYTES_AT_ONCE).then_some(held + n)
            })
            .ok()
            .map(|_| Self(n))
    }
}

impl Drop for ImageBytes {
    fn drop(&mut self) {
        IMAGE_BYTES_HELD.fetch_sub(self.0, Ordering::AcqRel);
    }
}
/// A client has this long to send its request line, and this much more per 64 MiB of image:
/// one that trickles bytes cannot hold a connection for long.
const REQUEST_TIME: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Status,
    Similar(SimilarRequest),
    Dupes(DupesRequest),
    Search(SearchRequest),
}

/// `imgsim search`: words, indexed paths and pictures, weighted. The pictures' bytes follow
/// the request line, in the order of their terms.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SearchRequest {
    /// The model as the user named it, unless `model_dir`.
    pub model: String,
    /// Canonical path of a `--model-dir`.
    pub model_dir: Option<PathBuf>,
    pub terms: Vec<WireTerm>,
    pub k: usize,
    pub filter: Option<String>,
    pub min_score: Option<f32>,
    /// The precision the client searches in (each has its own table); f32 from older clients.
    #[serde(default)]
    pub precision: crate::models::Precision,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireTerm {
    /// Signed: a `-` term has a negative weight.
    pub weight: f32,
    pub source: TermSource,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TermSource {
    Text {
        text: String,
    },
    /// A path that is not a file here: its stored vector, if it is indexed.
    Indexed {
        path: String,
    },
    /// A picture the client read: its canonical path (whose stored vector is used if
    /// indexed) and how many of the bytes after the request line are its.
    Image {
        path: String,
        bytes: u64,
    },
}

/// `imgsim dupes` without acting: the groups of one model's table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DupesRequest {
    pub model_id: String,
    pub threshold: f32,
    /// `--keep` as the user wrote it.
    pub keep: String,
    pub min_group: usize,
    /// Canonical folders the images must be under (none: all).
    pub within: Vec<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SimilarRequest {
    /// The model as the user named it (`clip`, `dinov2-small`, `phash`), unless `model_dir`.
    pub model: String,
    /// Canonical path of a `--model-dir`.
    pub model_dir: Option<PathBuf>,
    /// Canonical path of the query image.
    pub query_path: String,
    pub k: usize,
    pub filter: Option<String>,
    pub min_score: Option<f32>,
    /// How many bytes of image follow the request line.
    pub image_bytes: u64,
    /// The precision the client searches in (each has its own table); f32 from older clients.
    #[serde(default)]
    pub precision: crate::models::Precision,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Status(DaemonStatus),
    Hits {
        model: String,
        hits: Vec<WireHit>,
        indexed: usize,
        query_indexed: bool,
    },
    Dupes {
        report: crate::dupes::Report,
    },
    /// `search`'s hits, and how each term was read (`text`, `indexed` or `image`).
    Found {
        model: String,
        hits: Vec<WireHit>,
        indexed: usize,
        kinds: Vec<String>,
    },
    /// The daemon does not hold that model: the client works directly.
    NotLoaded {
        loaded: Vec<String>,
    },
    /// Too many clients at once: the client works directly.
    Busy,
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireHit {
    pub path: String,
    pub score: f32,
}

/// How the daemon recognises a model a client names.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelKey {
    /// A registry model or `phash`, by its registry name.
    Named(String),
    /// A `--model-dir`, by its canonical path.
    Dir(PathBuf),
}

impl ModelKey {
    pub fn of(source: &WeightsSource) -> Self {
        match source {
            WeightsSource::Hub(spec) | WeightsSource::Random(spec) => {
                ModelKey::Named(spec.name.clone())
            }
            WeightsSource::Phash => ModelKey::Named(crate::models::PHASH.to_string()),
            WeightsSource::Dir(dir) => {
                ModelKey::Dir(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()))
            }
        }
    }
}

fn socket_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        cause: std::io::Error::other(e.to_string()),
    }
}

pub struct Server {
    listener: UnixListener,
}

impl Server {
    /// Binds `<db>/daemon.sock`, replacing a stale one (the caller holds the daemon lock, so
    /// any socket there belongs to a daemon that is gone). The socket is made private (0600)
    /// before it gets its public name.
    pub fn bind(db_dir: &Path) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let path = db_dir.join(SOCKET);
        let temporary = db_dir.join(format!("{SOCKET}.{}", std::process::id()));
        let _ = std::fs::remove_file(&temporary);
        let listener = UnixListener::bind(&temporary).map_err(|e| socket_error(&temporary, e))?;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::rename(&temporary, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&temporary);
                socket_error(&path, e)
            })?;
        Ok(Self { listener })
    }

    /// Answers requests on a thread of its own, one thread per connection.
    pub fn spawn(self, shared: Arc<Shared>, keys: Vec<ModelKey>) -> std::thread::JoinHandle<()> {
        let keys = Arc::new(keys);
        let busy = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for stream in self.listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if busy.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    // Said without reading the request: the client may still be sending it,
                    // and takes a write error as the same answer.
                    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
                    let _ = reply(&mut stream, &Response::Busy);
                    continue;
                }
                busy.fetch_add(1, Ordering::Relaxed);
                let slot = Slot(busy.clone());
                let (shared, keys) = (shared.clone(), keys.clone());
                std::thread::spawn(move || {
                    let _slot = slot;
                    // A bug met by one request must cost neither the daemon nor a slot.
                    let response = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        handle(&mut stream, &shared, &keys)
                    }))
                    .unwrap_or_else(|_| Response::Error {
                        message: "the daemon met a bug answering this request (please report \
                                  it); `--no-daemon` works directly"
                            .into(),
                    });
                    let _ = reply(&mut stream, &response);
                });
            }
        })
    }
}

/// One connection's place in the count of those answered at once, given back however its
/// thread ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Removes the socket (at the daemon's orderly end).
/// The state of the watch daemon on this database, if one answers.
pub fn daemon_status(db_dir: &Path) -> Option<crate::watch::DaemonStatus> {
    match ask(db_dir, &Request::Status, &[]) {
        Ok(Some(Response::Status(status))) => Some(status),
        _ => None,
    }
}

pub fn remove_socket(db_dir: &Path) {
    let _ = std::fs::remove_file(db_dir.join(SOCKET));
}

fn reply(stream: &mut UnixStream, response: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(response).expect("serialisable");
    line.push(b'\n');
    stream.write_all(&line)
}

/// Reads from a client until a deadline, however slowly the bytes come.
struct Deadline {
    stream: UnixStream,
    until: Instant,
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request took too long to arrive",
            ));
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

fn handle(stream: &mut UnixStream, shared: &Shared, keys: &[ModelKey]) -> Response {
    let error = |message: String| Response::Error { message };
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let Ok(clone) = stream.try_clone() else {
        return error("socket error".into());
    };
    let deadline = Deadline {
        stream: clone,
        until: Instant::now() + REQUEST_TIME,
    };
    let mut reader = BufReader::new(deadline).take(MAX_REQUEST_LINE);
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(_) if line.ends_with('\n') => {}
        Ok(_) => return error("request line missing or over 64 KiB".into()),
        Err(e) => return error(format!("reading the request: {e}")),
    }
    let request: Request = match serde_json::from_str(&line) {
        Ok(request) => request,
        Err(e) => return error(format!("malformed request: {e}")),
    };
    match request {
        Request::Status => {
            let mut status = shared.status.lock().map(|s| s.clone()).unwrap_or_default();
            status.resident_bytes = crate::util::resident_memory_mb()
                .map_or(0, |(_, current)| (current * 1024.0 * 1024.0) as u64);
            Response::Status(status)
        }
        Request::Similar(request) => {
            if request.image_bytes > MAX_IMAGE_BYTES {
                return error(format!(
                    "query image of {} bytes is over the limit of {MAX_IMAGE_BYTES}",
                    request.image_bytes
                ));
            }
            let Some(_held) = ImageBytes::reserve(request.image_bytes) else {
                return Response::Busy;
            };
            // Memory grows with what arrives, not with what was announced.
            let mut image = Vec::new();
            let mut rest = reader.into_inner();
            rest.get_mut().until += REQUEST_TIME * (1 + (request.image_bytes >> 26) as u32);
            let mut rest = rest.take(request.image_bytes);
            if let Err(e) = rest.read_to_end(&mut image) {
                return error(format!("reading the query image: {e}"));
            }
            if image.len() as u64 != request.image_bytes {
                return error("the query image ended early".into());
            }
            similar(shared, keys, &request, &image).unwrap_or_else(|e| error(e.to_string()))
        }
        Request::Dupes(request) => dupes(shared, &request).unwrap_or_else(|e| error(e.to_string())),
        Request::Search(request) => {
            let bytes: u64 = request
                .terms
                .iter()
                .map(|t| match t.source {
                    TermSource::Image { bytes, .. } => bytes,
                    _ => 0,
                })
                .fold(0u64, u64::saturating_add);
            if bytes > MAX_IMAGE_BYTES {
                return error(format!(
                    "query images of {bytes} bytes are over the limit of {MAX_IMAGE_BYTES}"
                ));
            }
            let Some(_held) = ImageBytes::reserve(bytes) else {
                return Response::Busy;
            };
            let mut images = Vec::new();
            let mut rest = reader.into_inner();
            rest.get_mut().until += REQUEST_TIME * (1 + (bytes >> 26) as u32);
            if let Err(e) = rest.take(bytes).read_to_end(&mut images) {
                return error(format!("reading the query images: {e}"));
            }
            if images.len() as u64 != bytes {
                return error("the query images ended early".into());
            }
            search_terms(shared, keys, &request, &images).unwrap_or_else(|e| error(e.to_string()))
        }
    }
}

/// The same report `imgsim dupes` makes by itself, from the daemon's open store. It needs no
/// model, only the table: a model the daemon does not watch is answered too, if indexed.
fn dupes(shared: &Shared, request: &DupesRequest) -> Result<Response> {
    let keep: crate::dupes::Keep = request
        .keep
        .parse()
        .map_err(|reason: String| Error::Unsupported(reason))?;
    let Some(table) = shared.store.table(&request.model_id)? else {
        return Ok(Response::NotLoaded { loaded: Vec::new() });
    };
    let decisions = crate::dupes::ignored::Ignored::load(shared.store.dir())?;
    // One query at a time: a large library's vectors are held while it runs.
    let _one_at_a_time = shared.queries.lock().unwrap_or_else(|e| e.into_inner());
    let report = crate::dupes::Dupes::new(&table, request.threshold)
        .ignoring(&decisions)
        .keep(keep)
        .min_group(request.min_group)
        .within(&request.within)
        .execute(
            &mut crate::progress::Quiet,
            &std::sync::atomic::AtomicBool::new(false),
        )?;
    Ok(Response::Dupes { report })
}

fn similar(
    shared: &Shared,
    keys: &[ModelKey],
    request: &SimilarRequest,
    image: &[u8],
) -> Result<Response> {
    let (_, i) = match held(
        shared,
        keys,
        &request.model,
        request.model_dir.as_ref(),
        request.precision,
    )? {
        Ok(held) => held,
        Err(not_loaded) => return Ok(not_loaded),
    };
    let embedder = &shared.models[i];
    let model = embedder.model();
    let Some(table) = shared.store.table(&model.id)? else {
        return Ok(Response::Hits {
            model: model.name.clone(),
            hits: Vec::new(),
            indexed: 0,
            query_indexed: false,
        });
    };
    let query = Query {
        path: &request.query_path,
        k: request.k,
        filter: request.filter.as_deref(),
        min_score: request.min_score,
    };
    let embed = || embedder.embed_bytes(image, &request.query_path);
    let _one_at_a_time = shared.queries.lock().unwrap_or_else(|e| e.into_inner());
    let results = search::similar(&table, &query, embed, Some(&shared.filters))?;
    Ok(Response::Hits {
        model: model.name.clone(),
        hits: results
            .hits
            .into_iter()
            .map(|h| WireHit {
                path: h.path,
                score: h.score,
            })
            .collect(),
        indexed: results.indexed,
        query_indexed: results.query_indexed,
    })
}

/// The model a client names, if the daemon holds it: its key and its index in
/// `shared.models`; else the answer that sends the client to work directly.
fn held(
    shared: &Shared,
    keys: &[ModelKey],
    model: &str,
    model_dir: Option<&PathBuf>,
    precision: crate::models::Precision,
) -> Result<std::result::Result<(ModelKey, usize), Response>> {
    let wanted = match model_dir {
        Some(dir) => ModelKey::Dir(dir.clone()),
        None => ModelKey::of(&crate::models::source_for(model)?),
    };
    let found = keys
        .iter()
        .zip(&shared.models)
        .position(|(k, m)| *k == wanted && m.model().precision == precision);
    Ok(match found {
        Some(i) => Ok((wanted, i)),
        None => Err(Response::NotLoaded {
            loaded: shared
                .models
                .iter()
                .map(|m| m.model().name.clone())
                .collect(),
        }),
    })
}

/// `search` on the daemon's loaded models: words through its text tower (loaded on first
/// use, recent texts remembered), pictures through its image tower or their stored vectors.
fn search_terms(
    shared: &Shared,
    keys: &[ModelKey],
    request: &SearchRequest,
    images: &[u8],
) -> Result<Response> {
    let (wanted, i) = match held(
        shared,
        keys,
        &request.model,
        request.model_dir.as_ref(),
        request.precision,
    )? {
        Ok(held) => held,
        Err(not_loaded) => return Ok(not_loaded),
    };
    let embedder = &shared.models[i];
    let model = embedder.model();
    let _one_at_a_time = shared.queries.lock().unwrap_or_else(|e| e.into_inner());
    let table = shared.store.table(&model.id)?;
    let stored = |path: &str| -> Result<Option<Vec<f32>>> {
        Ok(match &table {
            Some(t) => t.row(path)?.map(|row| row.vector),
            None => None,
        })
    };
    let (mut weighted, mut kinds, mut exclude) = (Vec::new(), Vec::new(), Vec::new());
    let mut offset = 0usize;
    for term in &request.terms {
        let (vector, kind) = match &term.source {
            TermSource::Text { text } => (
                shared
                    .text
                    .embed(&wanted, &model.id, text, embedder.device())?,
                "text",
            ),
            TermSource::Indexed { path } => {
                exclude.push(path.as_str());
                let vector =
                    stored(path)?.ok_or_else(|| Error::UnknownPath { path: path.clone() })?;
                (vector, "indexed")
            }
            TermSource::Image { path, bytes } => {
                let end = offset + *bytes as usize;
                let image = &images[offset..end];
                offset = end;
                exclude.push(path.as_str());
                match stored(path)? {
                    Some(vector) => (vector, "indexed"),
                    None => (embedder.embed_bytes(image, path)?, "image"),
                }
            }
        };
        weighted.push((term.weight, vector));
        kinds.push(kind.to_string());
    }
    let vector = search::combine(&weighted).ok_or(Error::TermsCancel)?;
    let Some(table) = table else {
        return Ok(Response::Found {
            model: model.name.clone(),
            hits: Vec::new(),
            indexed: 0,
            kinds,
        });
    };
    let indexed = table.count()?;
    let hits = search::nearest(
        &table,
        &vector,
        indexed,
        &search::Narrowing {
            k: request.k,
            filter: request.filter.as_deref(),
            min_score: request.min_score,
            exclude: &exclude,
        },
        Some(&shared.filters),
    )?;
    Ok(Response::Found {
        model: model.name.clone(),
        hits: hits
            .into_iter()
            .map(|h| WireHit {
                path: h.path,
                score: h.score,
            })
            .collect(),
        indexed,
        kinds,
    })
}

/// Asks the daemon of `db_dir`; `Ok(None)` when no daemon listens there.
pub fn ask(db_dir: &Path, request: &Request, image: &[u8]) -> Result<Option<Response>> {
    let path = db_dir.join(SOCKET);
    let mut stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        // No socket, or one left by a daemon that is gone.
        Err(_) => return Ok(None),
    };
    let io = |e: std::io::Error| socket_error(&path, e);
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(io)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    let mut line = serde_json::to_vec(request).expect("serialisable");
    line.push(b'\n');
    let sent = stream
        .write_all(&line)
        .and_then(|()| stream.write_all(image));
    let mut answer = String::new();
    let read = BufReader::new(stream)
        .take(MAX_IMAGE_BYTES)
        .read_line(&mut answer);
    match (sent, read) {
        // A busy daemon answers at once and closes: the write may fail before the answer is
        // read. Either way the client works directly.
        (_, Ok(_)) if answer.ends_with('\n') => {}
        // A daemon that hung up (busy, or stopping) leaves the work to the client too.
        (Err(e), _) | (Ok(()), Err(e)) if is_hang_up(&e) => return Ok(None),
        (Err(e), _) | (Ok(()), Err(e)) => return Err(io(e)),
        (Ok(()), Ok(_)) => {
            return Err(socket_error(
                &path,
                "the daemon closed the connection without an answer",
            ))
        }
    }
    match serde_json::from_str(&answer) {
        Ok(Response::Busy) => Ok(None),
        Ok(response) => Ok(Some(response)),
        Err(e) => Err(socket_error(
            &path,
            format!("unreadable answer from the daemon: {e}"),
        )),
    }
}

fn is_hang_up(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
    )
}
