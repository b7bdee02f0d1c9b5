//! What each route answers. The handlers are thin: each runs a synchronous method of [`App`]
//! on tokio's blocking threads (the store has its own runtime and blocks), and turns its
//! `Result` into JSON or an error status with the library's message.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::guard::Rules;
use super::thumbs::{Thumbs, SIZES};
use crate::dupes::ignored::{Apart, Ignored};
use crate::dupes::{Dupes, Group, Report};
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::metadata::Meta;
use crate::models::{TextModel, WeightsSource};
use crate::progress::Quiet;
use crate::search::Narrowing;
use crate::store::{ModelTable, Row, Store, TableInfo, WriterLock};
use crate::util::path_of;

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/app.css");

/// Results per page of the grid, and the most a request may ask for.
const PAGE_SIZE: usize = 60;
const MAX_PAGE: usize = 500;

/// A table's rows (without their vectors) by row id.
type RowsById = HashMap<String, Arc<Row>>;

/// The server's state: the store, the models loaded so far, the id -> row maps.
pub struct App {
    store: Store,
    rules: Rules,
    thumbs: Thumbs,
    model_dir: Option<PathBuf>,
    embedders: Mutex<HashMap<String, Arc<Embedder>>>,
    texts: Mutex<HashMap<String, Arc<TextModel>>>,
    /// Per model id: the table version the map was read at, and id -> row (no vector).
    ids: Mutex<HashMap<String, (u64, Arc<RowsById>)>>,
    /// One embedding at a time (the model uses every core already).
    queries: Mutex<()>,
    filters: Mutex<()>,
}

/// A row as the page sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub id: String,
    pub name: String,
    pub dir: String,
    pub path: String,
    pub score: Option<f32>,
    pub width: u32,
    pub height: u32,
    pub size: u64,
    /// The content hash's first 12 characters: the thumbnail's version.
    pub v: String,
    pub tags: Vec<String>,
    pub meta: Meta,
}

/// A page of results.
#[derive(Debug, Serialize)]
pub struct Items {
    pub model: String,
    pub items: Vec<Item>,
    /// Whether more follow (ask with a larger `offset`).
    pub more: bool,
    /// Rows in the table.
    pub indexed: usize,
}

/// The row id the page uses: the first 16 hex digits of blake3 of the path key.
pub fn row_id(path: &str) -> String {
    blake3::hash(path.as_bytes()).to_hex()[..16].to_string()
}

impl App {
    pub fn new(store: Store, rules: Rules, thumbs: Thumbs, model_dir: Option<PathBuf>) -> Self {
        Self {
            store,
            rules,
            thumbs,
            model_dir,
            embedders: Mutex::default(),
            texts: Mutex::default(),
            ids: Mutex::default(),
            queries: Mutex::default(),
            filters: Mutex::default(),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The table of the model the page names (by name or id), or the first one.
    fn table(&self, model: Option<&str>) -> Result<(TableInfo, ModelTable<'_>)> {
        let tables = self.store.tables()?;
        let info = match model.filter(|m| !m.is_empty()) {
            Some(m) => tables
                .iter()
                .find(|t| t.model == m || t.model_id == m)
                .cloned()
                .ok_or_else(|| Error::UnknownModel {
                    name: m.to_string(),
                    known: tables
                        .iter()
                        .map(|t| t.model.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?,
            None => tables.first().cloned().ok_or_else(|| Error::Store {
                path: self.store.dir().to_path_buf(),
                reason: "no images are indexed yet: run `imgsim index DIR` first".into(),
            })?,
        };
        let table = self
            .store
            .table(&info.model_id)?
            .ok_or_else(|| Error::Store {
                path: self.store.dir().to_path_buf(),
                reason: format!("the {} table is listed but missing", info.model),
            })?;
        Ok((info, table))
    }

    /// id -> row of a table, read again when the table's version moved.
    fn ids(
        &self,
        info: &TableInfo,
        table: &ModelTable<'_>,
    ) -> Result<Arc<HashMap<String, Arc<Row>>>> {
        let version = table.version()?;
        if let Some((v, map)) = self
            .ids
            .lock()
            .ok()
            .and_then(|m| m.get(&info.model_id).cloned())
        {
            if v == version {
                return Ok(map);
            }
        }
        let map: RowsById = table
            .listing()?
            .into_iter()
            .map(|row| (row_id(&row.path), Arc::new(row)))
            .collect();
        let map = Arc::new(map);
        if let Ok(mut ids) = self.ids.lock() {
            ids.insert(info.model_id.clone(), (version, map.clone()));
        }
        Ok(map)
    }

    fn row_of(&self, info: &TableInfo, table: &ModelTable<'_>, id: &str) -> Result<Arc<Row>> {
        self.ids(info, table)?
            .get(id)
            .cloned()
            .ok_or_else(|| Error::UnknownPath {
                path: format!("row {id} (not in the {} index)", info.model),
            })
    }

    fn item(row: &Row, score: Option<f32>) -> Item {
        let path = path_of(&row.path);
        Item {
            id: row_id(&row.path),
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            dir: path
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: crate::util::display_key(&row.path),
            score,
            width: row.width,
            height: row.height,
            size: row.size,
            v: row.hash.chars().take(12).collect(),
            tags: row.tags.clone(),
            meta: row.meta.clone(),
        }
    }

    /// The model's embedder, loaded on first use.
    fn embedder(&self, info: &TableInfo) -> Result<Arc<Embedder>> {
        let mut loaded = self.embedders.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = loaded.get(&info.model_id) {
            return Ok(e.clone());
        }
        let source = self.source(info)?;
        let device = crate::device::select(crate::device::DeviceChoice::Auto)?;
        // The table's precision is in its model id (`+bf16`): the query is embedded alike.
        let precision = crate::models::Precision::of_model_id(&info.model_id);
        let model = crate::models::Model::load_with(&source, None, &device, precision)?;
        if model.id != info.model_id {
            return Err(Error::Store {
                path: self.store.dir().to_path_buf(),
                reason: format!(
                    "the {} table was made with other weights ({}) than those found ({}): start \
                     `imgsim serve --model-dir` with the folder it was indexed with",
                    info.model, info.model_id, model.id
                ),
            });
        }
        let embedder = Arc::new(Embedder::new(model, device));
        loaded.insert(info.model_id.clone(), embedder.clone());
        Ok(embedder)
    }

    fn source(&self, info: &TableInfo) -> Result<WeightsSource> {
        match &self.model_dir {
            Some(dir) => Ok(WeightsSource::Dir(dir.clone())),
            None => crate::models::source_for(&info.model),
        }
    }

    fn has_words(&self, info: &TableInfo) -> bool {
        self.source(info)
            .is_ok_and(|s| crate::models::has_text_tower(&s))
    }

    fn narrowing<'q>(filter: Option<&'q str>, k: usize, exclude: &'q [&'q str]) -> Narrowing<'q> {
        Narrowing {
            k,
            filter: filter.filter(|f| !f.trim().is_empty()),
            min_score: None,
            exclude,
        }
    }

    fn page_of(
        &self,
        info: &TableInfo,
        table: &ModelTable<'_>,
        hits: Vec<crate::store::Hit>,
        offset: usize,
        limit: usize,
        indexed: usize,
    ) -> Result<Items> {
        let ids = self.ids(info, table)?;
        let more = hits.len() > offset + limit;
        let items = hits
            .into_iter()
            .skip(offset)
            .take(limit)
            .filter_map(|h| {
                ids.get(&row_id(&h.path))
                    .map(|r| Self::item(r, Some(h.score)))
            })
            .collect();
        Ok(Items {
            model: info.model.clone(),
            items,
            more,
            indexed,
        })
    }

    pub fn status(&self) -> Result<serde_json::Value> {
        let mut models = Vec::new();
        for info in self.store.tables()? {
            let rows = match self.store.table(&info.model_id)? {
                Some(t) => t.count()?,
                None => 0,
            };
            models.push(serde_json::json!({
                "name": info.model,
                "id": info.model_id,
                "rows": rows,
                "words": self.has_words(&info),
                "dupes_threshold": self.dupes_threshold(&info),
            }));
        }
        let daemon = daemon_status(self.store.dir());
        Ok(serde_json::json!({
            "db": self.store.dir().display().to_string(),
            "models": models,
            "daemon": daemon,
            "thumbs_bytes": self.thumbs.bytes(),
        }))
    }

    pub fn rows(&self, q: &Ask) -> Result<Items> {
        let (info, table) = self.table(q.model.as_deref())?;
        let indexed = table.count()?;
        let ids = self.ids(&info, &table)?;
        let mut rows: Vec<&Arc<Row>> = match q.filter() {
            None => ids.values().collect(),
            Some(filter) => {
                let allowed = {
                    let _guard = self.filters.lock();
                    table.filters()?.matching_paths(filter)?
                };
                ids.values().filter(|r| allowed.contains(&r.path)).collect()
            }
        };
        // Newest first (date taken, else file time), then by path.
        rows.sort_by(|a, b| {
            let t = |r: &Row| r.meta.taken.as_ref().map_or(r.mtime_ns, |t| t.local_ns);
            t(b).cmp(&t(a)).then_with(|| a.path.cmp(&b.path))
        });
        let (offset, limit) = q.window();
        Ok(Items {
            model: info.model.clone(),
            more: rows.len() > offset + limit,
            items: rows
                .into_iter()
                .skip(offset)
                .take(limit)
                .map(|r| Self::item(r, None))
                .collect(),
            indexed,
        })
    }

    pub fn similar_to_row(&self, q: &Ask) -> Result<Items> {
        let (info, table) = self.table(q.model.as_deref())?;
        let row = self.row_of(&info, &table, q.id.as_deref().unwrap_or_default())?;
        let stored = table.row(&row.path)?.ok_or_else(|| Error::UnknownPath {
            path: row.path.clone(),
        })?;
        let indexed = table.count()?;
        let (offset, limit) = q.window();
        let exclude = [row.path.as_str()];
        let hits = crate::search::nearest(
            &table,
            &stored.vector,
            indexed,
            &Self::narrowing(q.filter(), offset + limit + 1, &exclude),
            Some(&self.filters),
        )?;
        self.page_of(&info, &table, hits, offset, limit, indexed)
    }

    pub fn similar_to_upload(&self, q: &Ask, image: &[u8]) -> Result<Items> {
        if image.is_empty() {
            return Err(Error::Unsupported(
                "no picture was sent: the request's body is empty".into(),
            ));
        }
        let (info, table) = self.table(q.model.as_deref())?;
        let embedder = self.embedder(&info)?;
        let (offset, limit) = q.window();
        let vector = {
            let _one = self.queries.lock().unwrap_or_else(|e| e.into_inner());
            embedder.embed_bytes(image, "the uploaded image")?
        };
        let indexed = table.count()?;
        let hits = crate::search::nearest(
            &table,
            &vector,
            indexed,
            &Self::narrowing(q.filter(), offset + limit + 1, &[]),
            Some(&self.filters),
        )?;
        self.page_of(&info, &table, hits, offset, limit, indexed)
    }

    pub fn search_words(&self, q: &Ask) -> Result<Items> {
        let (info, table) = self.table(q.model.as_deref())?;
        let words = q.q.as_deref().unwrap_or_default().trim();
        if words.is_empty() {
            return self.rows(q);
        }
        let text = {
            let mut texts = self.texts.lock().unwrap_or_else(|e| e.into_inner());
            match texts.get(&info.model_id) {
                Some(t) => t.clone(),
                None => {
                    let source = self.source(&info)?;
                    let device = crate::device::select(crate::device::DeviceChoice::Auto)?;
                    let t = Arc::new(TextModel::load(&source, &device)?);
                    texts.insert(info.model_id.clone(), t.clone());
                    t
                }
            }
        };
        let vector = {
            let _one = self.queries.lock().unwrap_or_else(|e| e.into_inner());
            text.embed(words)?
        };
        let indexed = table.count()?;
        let (offset, limit) = q.window();
        let hits = crate::search::nearest(
            &table,
            &vector,
            indexed,
            &Self::narrowing(q.filter(), offset + limit + 1, &[]),
            Some(&self.filters),
        )?;
        self.page_of(&info, &table, hits, offset, limit, indexed)
    }

    pub fn row(&self, q: &Ask) -> Result<Item> {
        let (info, table) = self.table(q.model.as_deref())?;
        let row = self.row_of(&info, &table, q.id.as_deref().unwrap_or_default())?;
        Ok(Self::item(&row, None))
    }

    pub fn thumb(&self, q: &Ask) -> Result<Vec<u8>> {
        let (info, table) = self.table(q.model.as_deref())?;
        let row = self.row_of(&info, &table, q.id.as_deref().unwrap_or_default())?;
        // Only the sizes the page uses: a request cannot fill the cache with others.
        let asked = q.size.unwrap_or(SIZES[0]);
        let size = SIZES
            .iter()
            .copied()
            .find(|s| *s >= asked)
            .unwrap_or(SIZES[1]);
        self.thumbs.get(&path_of(&row.path), &row.hash, size)
    }

    /// The file's path and folder; with `open`, the folder in the desktop's file manager.
    pub fn reveal(&self, q: &Ask) -> Result<serde_json::Value> {
        let (info, table) = self.table(q.model.as_deref())?;
        let row = self.row_of(&info, &table, q.id.as_deref().unwrap_or_default())?;
        let path = path_of(&row.path);
        let folder = path.parent().map(PathBuf::from).unwrap_or_default();
        let mut opened = false;
        if q.open.unwrap_or(false) {
            opened = super::open_on_desktop(&folder.to_string_lossy()).is_ok();
        }
        Ok(serde_json::json!({
            "path": path.display().to_string(),
            "folder": folder.display().to_string(),
            "opened": opened,
        }))
    }

    /// The threshold the duplicate view starts from: a calibration on these photos, else the
    /// model's measured default (phash), else none (the page asks for one).
    fn dupes_threshold(&self, info: &TableInfo) -> Option<f32> {
        let stored = crate::dupes::calibrate::Thresholds::load(self.store.dir()).ok()?;
        stored
            .latest(&info.model_id)
            .map(|c| c.threshold)
            .or((info.model == "phash").then_some(0.5))
    }

    fn dupes_report(&self, q: &Ask) -> Result<(TableInfo, ModelTable<'_>, Report)> {
        let (info, table) = self.table(q.model.as_deref())?;
        let threshold = q
            .threshold
            .or_else(|| self.dupes_threshold(&info))
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "{} has no measured duplicate threshold: give one (a cosine similarity), or \
                 measure one with `imgsim dupes --calibrate --model {}`",
                    info.model, info.model
                ))
            })?;
        let decisions = Ignored::load(self.store.dir())?;
        let report = Dupes::new(&table, threshold)
            .ignoring(&decisions)
            .execute(&mut Quiet, &AtomicBool::new(false))?;
        Ok((info, table, report))
    }

    pub fn dupes(&self, q: &Ask) -> Result<serde_json::Value> {
        let (info, table, report) = self.dupes_report(q)?;
        let ids = self.ids(&info, &table)?;
        let groups: Vec<serde_json::Value> = report
            .groups
            .iter()
            .map(|g| {
                let members: Vec<serde_json::Value> = g
                    .members
                    .iter()
                    .map(|m| {
                        let id = row_id(&m.path);
                        let item = ids.get(&id).map(|r| Self::item(r, m.score));
                        serde_json::json!({
                            "id": id,
                            "keep": m.keep,
                            "indexed": m.indexed,
                            "score": m.score,
                            "path": crate::util::display_key(&m.path),
                            "width": m.width,
                            "height": m.height,
                            "size": m.size,
                            "item": item,
                        })
                    })
                    .collect();
                serde_json::json!({
                    "kind": g.kind,
                    "label": g.kind.label(),
                    "removable": g.kind.removable(),
                    "members": members,
                })
            })
            .collect();
        Ok(serde_json::json!({
            "model": info.model,
            "threshold": report.threshold,
            "images": report.images,
            "groups": groups,
        }))
    }

    /// The group of `ids` (as the current report has it), alone in a report.
    fn one_group(&self, body: &GroupAsk) -> Result<(TableInfo, Report)> {
        let ask = Ask {
            model: Some(body.model.clone()),
            threshold: body.threshold,
            ..Ask::default()
        };
        let (info, _, mut report) = self.dupes_report(&ask)?;
        let wanted: std::collections::HashSet<&str> = body.ids.iter().map(String::as_str).collect();
        let group: Group = report
            .groups
            .iter()
            .find(|g| {
                g.members.len() == wanted.len()
                    && g.members
                        .iter()
                        .all(|m| wanted.contains(row_id(&m.path).as_str()))
            })
            .cloned()
            .ok_or_else(|| {
                Error::Unsupported(
                    "that group is not in the current report any more (the index changed): reload \
                 the duplicates"
                        .into(),
                )
            })?;
        let mut group = group;
        if let Some(keep) = &body.keep {
            let Some(at) = group
                .members
                .iter()
                .position(|m| row_id(&m.path) == *keep && m.indexed)
            else {
                return Err(Error::Unsupported(format!(
                    "{keep} is not an indexed member of that group"
                )));
            };
            for (i, m) in group.members.iter_mut().enumerate() {
                m.keep = i == at;
            }
            // The keeper first, as the report orders a group.
            let keeper = group.members.remove(at);
            group.members.insert(0, keeper);
        }
        report.groups = vec![group];
        Ok((info, report))
    }

    /// Moves a group's extra members to the trash, through the same plan and undo journal as
    /// `imgsim dupes --trash --apply`.
    pub fn dupes_trash(&self, body: &GroupAsk) -> Result<serde_json::Value> {
        let _lock = self.writer_lock()?;
        let (info, report) = self.one_group(body)?;
        let applied = crate::dupes::apply::Apply::new(
            &self.store,
            &report,
            crate::dupes::journal::Action::Trash,
        )
        .model(&info.model)
        .execute(&mut Quiet, &AtomicBool::new(false))?;
        Ok(serde_json::json!({
            "steps": applied.steps,
            "journal": applied.journal.map(|j| j.display().to_string()),
        }))
    }

    pub fn dupes_undo(&self) -> Result<serde_json::Value> {
        let _lock = self.writer_lock()?;
        let undone = crate::dupes::apply::Undo::new(&self.store)
            .execute(&mut Quiet, &AtomicBool::new(false))?;
        Ok(match undone {
            Some(u) => {
                serde_json::json!({ "steps": u.steps, "journal": u.journal.display().to_string() })
            }
            None => serde_json::json!({ "steps": [], "journal": null }),
        })
    }

    /// "Not duplicates": the group's contents are never grouped again (`imgsim dupes ignore`).
    pub fn dupes_ignore(&self, body: &GroupAsk) -> Result<serde_json::Value> {
        let (_, report) = self.one_group(body)?;
        let group = &report.groups[0];
        let mut hashes: Vec<String> = group.members.iter().map(|m| m.hash.clone()).collect();
        hashes.sort();
        hashes.dedup();
        if hashes.len() < 2 {
            return Err(Error::Unsupported(
                "these files have the same bytes: they are copies of one image".into(),
            ));
        }
        let mut decisions = Ignored::load(self.store.dir())?;
        decisions.add(Apart {
            hashes,
            paths: group.members.iter().map(|m| m.path.clone()).collect(),
            decided_at: crate::util::now_seconds(),
        });
        decisions.save(self.store.dir())?;
        Ok(serde_json::json!({ "ignored": group.members.len() }))
    }

    pub fn thumbs_clear(&self) -> serde_json::Value {
        serde_json::json!({ "freed": self.thumbs.clear() })
    }

    fn writer_lock(&self) -> Result<WriterLock> {
        WriterLock::acquire(self.store.dir(), "imgsim serve", false, |_| {})
    }
}

/// The watch daemon's state, when one runs on this database.
#[cfg(unix)]
fn daemon_status(db_dir: &std::path::Path) -> Option<crate::watch::DaemonStatus> {
    crate::watch::socket::daemon_status(db_dir)
}

#[cfg(not(unix))]
fn daemon_status(_: &std::path::Path) -> Option<crate::watch::DaemonStatus> {
    None
}

/// The query string every route reads what it needs from.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Ask {
    pub model: Option<String>,
    pub id: Option<String>,
    #[serde(rename = "where")]
    pub filter: Option<String>,
    pub q: Option<String>,
    pub offset: Option<usize>,
    pub limit: Option<usize>,
    pub size: Option<u32>,
    pub open: Option<bool>,
    pub threshold: Option<f32>,
}

impl Ask {
    fn filter(&self) -> Option<&str> {
        self.filter.as_deref().filter(|f| !f.trim().is_empty())
    }

    fn window(&self) -> (usize, usize) {
        (
            self.offset.unwrap_or(0).min(1_000_000),
            self.limit.unwrap_or(PAGE_SIZE).clamp(1, MAX_PAGE),
        )
    }
}

/// A duplicate group the page acts on: its members' ids, and the report's settings.
#[derive(Debug, Clone, Deserialize)]
pub struct GroupAsk {
    pub model: String,
    pub ids: Vec<String>,
    pub threshold: Option<f32>,
    /// The member to keep, when the user chose another than the suggested keeper.
    #[serde(default)]
    pub keep: Option<String>,
}

/// Runs `f` on a blocking thread; its value as JSON, its error as a status and a message.
async fn blocking<T: Serialize + Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Json(value).into_response(),
        Ok(Err(e)) => failure(&e),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the request failed").into_response(),
    }
}

fn failure(e: &Error) -> Response {
    let status = match e {
        Error::UnknownPath { .. } | Error::UnknownModel { .. } => StatusCode::NOT_FOUND,
        Error::Query { .. } | Error::Decode { .. } | Error::Text { .. } | Error::Unsupported(_) => {
            StatusCode::BAD_REQUEST
        }
        Error::WriterBusy { .. } => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, Json(serde_json::json!({ "error": e.to_string() }))).into_response()
}

fn text(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn page(State(app): State<Arc<App>>) -> Response {
    // The session token goes into the page: only a same-origin script can read it.
    let html = PAGE.replace("{{SESSION_TOKEN}}", &app.rules().session_token);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

pub async fn script() -> Response {
    text("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    text("text/css; charset=utf-8", STYLE)
}

pub async fn status(State(app): State<Arc<App>>) -> Response {
    blocking(move || app.status()).await
}

pub async fn rows(State(app): State<Arc<App>>, Query(q): Query<Ask>) -> Response {
    blocking(move || app.rows(&q)).await
}

pub async fn similar_to_row(State(app): State<Arc<App>>, Query(q): Query<Ask>) -> Response {
    blocking(move || app.similar_to_row(&q)).await
}

pub async fn similar_to_upload(
    State(app): State<Arc<App>>,
    Query(q): Query<Ask>,
    body: Bytes,
) -> Response {
    blocking(move || app.similar_to_upload(&q, &body)).await
}

pub async fn search_words(State(app): State<Arc<App>>, Query(q): Query<Ask>) -> Response {
    blocking(move || app.search_words(&q)).await
}

pub async fn row(State(app): State<Arc<App>>, Query(q): Query<Ask>) -> Response {
    blocking(move || app.row(&q)).await
}

pub async fn thumb(State(app): State<Arc<App>>, Query(q): Query<Ask>) -> Response {
    match tokio::task::spawn_blocking(move || app.thumb(&q)).await {
        Ok(Ok(bytes)) => {
            let mut response = bytes.into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
            // The page's URLs carry the content hash (`v=`): a changed photo is a new URL.
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=31536000, immutable"),
            );
            response
        }
        Ok(Err(e)) => failure(&e),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the thumbnail failed").into_response(),
    }
}

pub async fn reveal(State(app): State<Arc<App>>, Query(q): Query<Ask>) -> Response {
    blocking(move || app.reveal(&q)).await
}

pub async fn dupes(State(app): State<Arc<App>>, Query(q): Query<Ask>) -> Response {
    blocking(move || app.dupes(&q)).await
}

pub async fn dupes_trash(State(app): State<Arc<App>>, Json(body): Json<GroupAsk>) -> Response {
    blocking(move || app.dupes_trash(&body)).await
}

pub async fn dupes_undo(State(app): State<Arc<App>>) -> Response {
    blocking(move || app.dupes_undo()).await
}

pub async fn dupes_ignore(State(app): State<Arc<App>>, Json(body): Json<GroupAsk>) -> Response {
    blocking(move || app.dupes_ignore(&body)).await
}

pub async fn thumbs_clear(State(app): State<Arc<App>>) -> Response {
    blocking(move || Ok(app.thumbs_clear())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_ids_are_short_stable_and_distinct() {
        let a = row_id("/photos/a.jpg");
        assert_eq!(a.len(), 16);
        assert_eq!(a, row_id("/photos/a.jpg"));
        assert_ne!(a, row_id("/photos/b.jpg"));
    }

    #[test]
    fn a_page_window_is_bounded() {
        let ask = Ask {
            offset: Some(usize::MAX),
            limit: Some(0),
            ..Ask::default()
        };
        assert_eq!(ask.window(), (1_000_000, 1));
        assert_eq!(Ask::default().window(), (0, PAGE_SIZE));
    }
}
