//! `imgsim serve`: a local web page to search, browse and clean up the library.
//!
//! One binary and no files outside it: the page (HTML, CSS and a hand-written script) is
//! compiled in; an HTTP server (axum, on a small tokio runtime of its own) answers it. Every
//! answer comes from the same library code as the commands: `search::similar`/`nearest` for
//! searches, `Dupes`/`Apply`/`Undo` for duplicates (so the page's "move to trash" writes the
//! same undo journal as `imgsim dupes --trash --apply`).
//!
//! Images are addressed by row id (a hash of the row's path), never by a path from the
//! request: the server only ever opens files that are in the index. `guard.rs` holds the
//! rules every request passes (Host, token, origin); `thumbs.rs` the thumbnail cache.
//!
//! - `mod.rs`: the builder (`Serve::new(db).bind(addr).execute(stop, ready)`), the routes
//! - `api.rs`: what each route answers (synchronous, called on tokio's blocking threads)
//! - `guard.rs`: who may ask what (pure rules, unit-tested)
//! - `thumbs.rs`: thumbnails made on demand, cached by content hash, bounded in size
//! - `page/`: the page itself

mod api;
pub mod guard;
pub mod thumbs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::error::{Error, Result};
use crate::store::Store;
pub use api::{row_id, App};

/// The address `imgsim serve` binds by default: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:8417";

/// The largest query image the page may upload (the daemon's socket has the same bound).
pub const MAX_UPLOAD_BYTES: usize = 64 << 20;

/// `Serve::new(db_dir).bind(addr).execute(&stop, |started| ...)`.
pub struct Serve {
    db_dir: PathBuf,
    bind: SocketAddr,
    access_token: Option<String>,
    thumbs_max_bytes: u64,
    model_dir: Option<PathBuf>,
}

/// What a started server tells its caller.
#[derive(Debug, Clone)]
pub struct Started {
    pub addr: SocketAddr,
    /// The address to open (with `?token=` when one is needed).
    pub url: String,
    /// Bound beyond loopback: other machines can reach it.
    pub exposed: bool,
}

impl Serve {
    pub fn new(db_dir: &Path) -> Self {
        Self {
            db_dir: db_dir.to_path_buf(),
            bind: DEFAULT_BIND.parse().expect("a valid address"),
            access_token: None,
            thumbs_max_bytes: 512 << 20,
            model_dir: None,
        }
    }

    /// Where to listen (port 0: any free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// A token every request must carry (for access from another machine).
    pub fn access_token(mut self, token: Option<String>) -> Self {
        self.access_token = token;
        self
    }

    /// The thumbnail cache's size limit.
    pub fn thumbs_max_bytes(mut self, bytes: u64) -> Self {
        self.thumbs_max_bytes = bytes;
        self
    }

    /// Weights for a table made with `--model-dir` (its model id must match the table's).
    pub fn model_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.model_dir = dir;
        self
    }

    /// Serves until `stop` is set; `ready` is called once the socket listens.
    pub fn execute(self, stop: &AtomicBool, ready: impl FnOnce(&Started)) -> Result<()> {
        let store = Store::open(&self.db_dir, false)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(8)
            .thread_name("imgsim-serve")
            .enable_all()
            .build()
            .map_err(|e| io_error(&self.db_dir, e))?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(self.bind))
            .map_err(|e| Error::Io {
                path: PathBuf::from(self.bind.to_string()),
                cause: e,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| io_error(&self.db_dir, e))?;
        let rules = guard::Rules {
            hosts: guard::Rules::hosts_for(&addr),
            session_token: guard::new_token(),
            access_token: self.access_token.clone(),
        };
        let app = Arc::new(App::new(
            store,
            rules,
            thumbs::Thumbs::open(&self.db_dir, self.thumbs_max_bytes),
            self.model_dir.clone(),
        ));
        let url = match &self.access_token {
            Some(t) => format!("http://{}/?token={t}", rules_host(&addr)),
            None => format!("http://{}/", rules_host(&addr)),
        };
        ready(&Started {
            addr,
            url,
            exposed: !addr.ip().is_loopback(),
        });
        // The last reference to the app (and the store's own runtime in it) is dropped here,
        // after the server's runtime ended: a runtime cannot be dropped inside another.
        let keep = app.clone();
        let router = routes(app);
        // The shutdown signal must be owned by the server's future: a thread watches `stop`.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) && !served.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = tx.send(());
            });
            let result = runtime.block_on(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = rx.await;
                    })
                    .await
            });
            served.store(true, Ordering::Relaxed);
            result
        });
        result.map_err(|e| io_error(&self.db_dir, e))?;
        // Requests still running on blocking threads are not waited for.
        runtime.shutdown_timeout(Duration::from_secs(2));
        drop(keep);
        Ok(())
    }
}

fn rules_host(addr: &SocketAddr) -> String {
    guard::Rules::hosts_for(addr).remove(0)
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        cause: std::io::Error::other(e.to_string()),
    }
}

/// The routes; every one behind the guard.
pub fn routes(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(api::page))
        .route("/app.js", get(api::script))
        .route("/app.css", get(api::style))
        .route("/api/status", get(api::status))
        .route("/api/rows", get(api::rows))
        .route(
            "/api/similar",
            get(api::similar_to_row).post(api::similar_to_upload),
        )
        .route("/api/search", get(api::search_words))
        .route("/api/row", get(api::row))
        .route("/api/thumb", get(api::thumb))
        .route("/api/reveal", post(api::reveal))
        .route("/api/dupes", get(api::dupes))
        .route("/api/dupes/trash", post(api::dupes_trash))
        .route("/api/dupes/undo", post(api::dupes_undo))
        .route("/api/dupes/ignore", post(api::dupes_ignore))
        .route("/api/thumbs/clear", post(api::thumbs_clear))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .layer(axum::middleware::from_fn_with_state(app.clone(), guarded))
        .with_state(app)
}

/// The guard before every route, and the headers after it.
async fn guarded(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let query_token = request.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(str::to_string)
    });
    let cookie_token = cookie(headers, guard::ACCESS_COOKIE);
    let bearer = text(header::AUTHORIZATION).and_then(|a| a.strip_prefix("Bearer "));
    let access = bearer
        .map(str::to_string)
        .or(cookie_token)
        .or(query_token.clone());
    let asking = guard::Asking {
        method: request.method().as_str(),
        host: text(header::HOST),
        origin: text(header::ORIGIN),
        fetch_site: headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
        session_token: headers
            .get(guard::SESSION_HEADER)
            .and_then(|v| v.to_str().ok()),
        access_token: access.as_deref(),
    };
    if let Err(refusal) = app.rules().check(&asking) {
        let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::FORBIDDEN);
        let mut response = (status, refusal.reason).into_response();
        secure(response.headers_mut());
        return response;
    }
    // A first visit with `?token=` leaves the token in a cookie for the page's requests.
    let set_cookie = match (&app.rules().access_token, query_token) {
        (Some(_), Some(t)) => Some(format!(
            "{}={t}; HttpOnly; SameSite=Strict; Path=/",
            guard::ACCESS_COOKIE
        )),
        _ => None,
    };
    let mut response = next.run(request).await;
    secure(response.headers_mut());
    if let Some(c) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    response
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then(|| v.to_string())
        })
}

/// Headers on every answer: no sniffing, no framing, no referrer, scripts only from the page
/// itself; and never a CORS header.
fn secure(headers: &mut HeaderMap) {
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "no-referrer");
    set(
        headers,
        "content-security-policy",
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; \
         connect-src 'self'; frame-ancestors 'none'",
    );
}

/// Opens `target` (the page's address, or a photo's folder) with the desktop's own handler
/// (`xdg-open`, `open`): the browser for `--open`, the file manager for "Open its folder".
pub fn open_on_desktop(target: &str) -> std::io::Result<()> {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(|_| ())
}
