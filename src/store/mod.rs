//! The library's store: a LanceDB database with one table per model (vectors of different
//! models or weights never mix), one row per indexed file, and what is derived from it.
//!
//! - `mod.rs`: the database folder, its manifest (`models.json`: which table holds which model)
//! - `format.rs`: which layout the folder holds; older ones brought up to date, newer refused
//! - `rows.rs`: a row and its Arrow form
//! - `table.rs`: one model's table: reads, upserts, deletes, exact re-ranked search
//! - `vector_index.rs`: when a table gets an IVF-PQ index and how it is kept fresh
//! - `damage.rs`: data files that are damaged, named in errors and dropped by `imgsim repair`
//! - `filter.rs`: the tantivy index behind `--where`, rebuilt when it lags the table
//! - `lock.rs`: one writer and one daemon per database
//! - `remote.rs`: a database on object storage (`s3://...`) and its local folder
//!
//! LanceDB is async; the store owns a small tokio runtime and offers a blocking API, so that
//! the rest of imgsim stays synchronous.

mod damage;
mod filter;
pub mod format;
mod lock;
pub mod remote;
mod rows;
mod table;
mod vector_index;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use damage::DamagedFile;
pub use filter::FilterIndex;
pub use lock::{DaemonLock, WriterLock};
pub use rows::{sql_quote, FileState, FilterRow, Hit, Row};
pub use table::ModelTable;
pub use vector_index::{
    ivf_pq_params, IndexUpkeep, AUTO_INDEX_ROWS, MIN_INDEX_ROWS, NPROBES, REFINE_FACTOR,
};

use crate::error::{Error, Result};

/// What `models.json` records of each table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableInfo {
    pub table: String,
    pub model: String,
    pub model_id: String,
    pub dim: usize,
}

impl TableInfo {
    /// The model as reports name it: with its precision when that is not f32
    /// (`clip-vit-b32+bf16`).
    pub fn label(&self) -> String {
        let precision = crate::models::Precision::of_model_id(&self.model_id);
        format!("{}{}", self.model, precision.id_suffix())
    }
}

const MANIFEST: &str = "models.json";

pub struct Store {
    dir: PathBuf,
    runtime: tokio::runtime::Runtime,
    /// The database's address as LanceDB takes it (absolute).
    uri: String,
    /// The LanceDB connection and its caches; [`Store::renew_caches`] replaces both.
    connection: std::sync::RwLock<Connection>,
    /// Whether this process can write the folder (tables of older formats are upgraded
    /// only then).
    writable: bool,
    /// The tables are on object storage at `uri`; `dir` is this machine's folder for the
    /// database's local state (see `remote.rs`).
    remote: bool,
    /// A remote database's tables as last listed: finding a table there costs a listing and
    /// a read of every table's schema, so [`Store::table`] lists again only for a model it
    /// has not seen (one another machine may have added since).
    remote_tables: std::sync::Mutex<Vec<TableInfo>>,
}

#[derive(Clone)]
struct Connection {
    db: lancedb::Connection,
    session: std::sync::Arc<lance::session::Session>,
}

fn store_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Store {
        path: path.to_path_buf(),
        reason: plain_reason(&e.to_string()),
    }
}

/// A Lance error as a user should read it: without the error's type names and the source
/// locations inside Lance and the standard library; a full disk says what to do.
fn plain_reason(message: &str) -> String {
    let mut text = message.to_string();
    for prefix in ["lance error: ", "LanceError(IO): ", "LanceError(Arrow): "] {
        text = text.replace(prefix, "");
    }
    // ", /root/.cargo/registry/src/.../writer/structural.rs:190:9"
    while let Some(at) = text.find(".rs:") {
        let start = text[..at].rfind(", ").unwrap_or(at);
        let end = text[at + 4..]
            .find(|c: char| !(c.is_ascii_digit() || c == ':'))
            .map_or(text.len(), |n| at + 4 + n);
        if start == at {
            break;
        }
        text.replace_range(start..end, "");
    }
    if text.contains("os error 28") {
        text.push_str(
            " (the disk is full: rows written before are kept; free some space and run the \
             command again to finish the work)",
        );
    }
    text
}

/// LanceDB's caches, bounded for a process that runs for weeks. Its defaults (1 GiB of
/// metadata, 6 GiB of index) suit a server, not a daemon beside a photo library.
///
/// The metadata cache keeps each version's manifest and each data file's metadata, and every
/// commit makes a new version: under constant writes the daemon filled whatever bound it had
/// with versions it would never read again (the soak, under glibc's malloc: 40.7 MB of heap in use
/// after 4 minutes at 32 MiB of cache, 4.5 MB at 1 MiB, when the 30-minute soak had shown
/// +75 MiB of private memory). A query needs the current version's: measured ~43 KiB per
/// fragment (100,000 rows in 196 fragments of 512 rows, as `index` writes them: 8.5 MiB;
/// compacted: 0.2 MiB). The daemon compacts every 100 commits, so 4 MiB holds its current
/// version; a one-shot command reads each fragment's metadata once per query either way.
/// An IVF-PQ index of a million rows is ~100 MiB of codes.
fn session() -> std::sync::Arc<lance::session::Session> {
    const METADATA_CACHE: usize = 4 << 20;
    const INDEX_CACHE: usize = 512 << 20;
    std::sync::Arc::new(lance::session::Session::new(
        INDEX_CACHE,
        METADATA_CACHE,
        std::sync::Arc::new(lance::io::ObjectStoreRegistry::default()),
    ))
}

/// A LanceDB connection to `uri` with a session of its own (its caches).
fn connect(runtime: &tokio::runtime::Runtime, uri: &str) -> lancedb::Result<Connection> {
    let session = session();
    let db = runtime.block_on(lancedb::connect(uri).session(session.clone()).execute())?;
    Ok(Connection { db, session })
}

impl Store {
    /// The database folder: `IMGSIM_DB`, else `$XDG_DATA_HOME/imgsim` (`~/.local/share/imgsim`).
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("IMGSIM_DB").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir));
        }
        dirs::data_dir().map(|d| d.join("imgsim"))
    }

    /// Opens the database in `dir`, creating the folder when `create` is set.
    /// The folder of a database on object storage is the one [`remote::local_folder`] made:
    /// the tables are opened at its address.
    pub fn open(dir: &Path, create: bool) -> Result<Self> {
        let address = remote::read_pointer(dir);
        if address.is_some() {
            // The format is the tables' own (their schema's metadata, checked as each opens).
        } else if !dir.is_dir() {
            if !create {
                return Err(store_error(
                    dir,
                    "no index here yet: run `imgsim index DIR` first",
                ));
            }
            std::fs::create_dir_all(dir).map_err(|e| store_error(dir, e))?;
            format::mark_new(dir)?;
        } else {
            format::check(dir, writable(dir))?;
        }
        let writable = writable(dir);
        // Lance reads local files on tokio's blocking threads (8 reads at once). The pool's
        // default bound is 512: under the soak the daemon's pool grew to 35 threads (each
        // exits after 10 s idle, and glibc keeps the stacks of exited threads, touched pages
        // and all), its memory ratcheting up with every new peak of concurrent reads.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(8)
            .enable_all()
            .build()
            .map_err(|e| store_error(dir, e))?;
        // Absolute: LanceDB reads a relative name that starts with "db" (`--db db`) as a
        // LanceDB Cloud address.
        let remote = address.is_some();
        let uri = match address {
            Some(address) => address,
            None => std::path::absolute(dir)
                .map_err(|e| store_error(dir, e))?
                .to_string_lossy()
                .into_owned(),
        };
        let named = if remote { Path::new(&uri) } else { dir };
        let connection = connect(&runtime, &uri).map_err(|e| store_error(named, e))?;
        let store = Self {
            dir: dir.to_path_buf(),
            runtime,
            uri,
            connection: std::sync::RwLock::new(connection),
            writable,
            remote,
            remote_tables: std::sync::Mutex::new(Vec::new()),
        };
        if remote && !create && store.tables()?.is_empty() {
            return Err(store.error("no index here yet: run `imgsim index DIR` first"));
        }
        Ok(store)
    }

    /// Whether the tables are on object storage (see `remote.rs`).
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// The database as a user named it: its folder, or its address on object storage.
    pub fn name(&self) -> String {
        if self.remote {
            self.uri.clone()
        } else {
            self.dir.display().to_string()
        }
    }

    fn connection(&self) -> Connection {
        self.connection
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Starts LanceDB's caches afresh, with a new connection. The daemon does this after each
    /// compaction: the index cache keeps entries of table versions that are never read again
    /// (in the soak, ~16 KB more at every compaction, towards its 512 MiB bound); a new
    /// session holds only what the next queries read. Tables already open keep the old one
    /// until they are dropped.
    pub fn renew_caches(&self) -> Result<()> {
        let connection = connect(&self.runtime, &self.uri).map_err(|e| self.error(e))?;
        *self
            .connection
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = connection;
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes held by LanceDB's caches: (metadata, index). The daemon reports them after each
    /// compaction, so that a cache that keeps growing shows in its log.
    pub fn cache_bytes(&self) -> (u64, u64) {
        let session = self.connection().session;
        let metadata = self.runtime.block_on(session.metadata_cache_stats());
        let index = self.runtime.block_on(session.index_cache_stats());
        (metadata.size_bytes as u64, index.size_bytes as u64)
    }

    fn error(&self, e: impl std::fmt::Display) -> Error {
        if self.remote {
            store_error(Path::new(&self.uri), e)
        } else {
            store_error(&self.dir, e)
        }
    }

    pub(crate) fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    fn block_on<T>(
        &self,
        future: impl std::future::Future<Output = lancedb::Result<T>>,
    ) -> Result<T> {
        self.runtime.block_on(future).map_err(|e| self.error(e))
    }

    /// Every model's table that exists, as the manifest records them.
    pub fn tables(&self) -> Result<Vec<TableInfo>> {
        if self.remote {
            return self.remote_tables();
        }
        let path = self.dir.join(MANIFEST);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| store_error(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(store_error(&path, e)),
        }
    }

    /// The table of a model (by its id), if it was ever indexed.
    pub fn table(&self, model_id: &str) -> Result<Option<ModelTable<'_>>> {
        let known = |tables: &[TableInfo]| tables.iter().find(|t| t.model_id == model_id).cloned();
        let seen = if self.remote {
            known(&self.remote_tables.lock().unwrap_or_else(|p| p.into_inner()))
        } else {
            None
        };
        let found = match seen {
            Some(info) => Some(info),
            None => known(&self.tables()?),
        };
        let Some(info) = found else {
            return Ok(None);
        };
        let db = self.connection().db;
        let table = self.block_on(db.open_table(&info.table).execute())?;
        let table = ModelTable::opened(self, table, info)?;
        Ok(Some(table))
    }

    /// The table of a model, created empty on first use.
    pub fn table_or_create(
        &self,
        model: &str,
        model_id: &str,
        dim: usize,
    ) -> Result<ModelTable<'_>> {
        if let Some(table) = self.table(model_id)? {
            return Ok(table);
        }
        let info = TableInfo {
            table: table_name(model, model_id),
            model: model.to_string(),
            model_id: model_id.to_string(),
            dim,
        };
        let db = self.connection().db;
        if self.remote {
            return self.create_remote_table(&db, info);
        }
        let names = self.block_on(db.table_names().execute())?;
        // Created before a crash that lost the manifest entry; or its creation was cut short
        // before its first version (then it is not a table yet, and is created now).
        let existing = if names.contains(&info.table) {
            self.open_if_committed(&db, &info.table)?
        } else {
            None
        };
        let table = match existing {
            Some(table) => table,
            None => self.block_on(
                db.create_empty_table(&info.table, rows::schema(dim))
                    .execute(),
            )?,
        };
        let mut all = self.tables()?;
        all.push(info.clone());
        let path = self.dir.join(MANIFEST);
        let text = serde_json::to_string_pretty(&all).expect("serialisable");
        crate::util::write_atomic(&path, text.as_bytes()).map_err(|e| store_error(&path, e))?;
        ModelTable::opened(self, table, info)
    }
}

impl Store {
    /// Drops a model's table and everything in it (for benchmarks' tables).
    pub fn drop_table(&self, model_id: &str) -> Result<()> {
        let Some(info) = self.tables()?.into_iter().find(|t| t.model_id == model_id) else {
            return Ok(());
        };
        let db = self.connection().db;
        self.block_on(db.drop_table(&info.table, &[]))?;
        if self.remote {
            self.remote_tables
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|t| t.model_id != model_id);
        } else {
            let rest: Vec<TableInfo> = self
                .tables()?
                .into_iter()
                .filter(|t| t.model_id != model_id)
                .collect();
            let path = self.dir.join(MANIFEST);
            let text = serde_json::to_string_pretty(&rest).expect("serialisable");
            crate::util::write_atomic(&path, text.as_bytes()).map_err(|e| store_error(&path, e))?;
        }
        let _ = std::fs::remove_dir_all(self.dir.join(format!("{}.filters", info.table)));
        Ok(())
    }
}

const META_MODEL: &str = "imgsim.model";
const META_MODEL_ID: &str = "imgsim.model_id";
const META_FORMAT: &str = "imgsim.format";

impl Store {
    /// A remote database's tables, from the metadata each table's schema carries.
    fn remote_tables(&self) -> Result<Vec<TableInfo>> {
        let db = self.connection().db;
        let mut tables = Vec::new();
        for name in self.block_on(db.table_names().execute())? {
            let Some(table) = self.open_if_committed(&db, &name)? else {
                continue;
            };
            let schema = self.block_on(table.schema())?;
            let meta = schema.metadata();
            let (Some(model), Some(model_id)) = (meta.get(META_MODEL), meta.get(META_MODEL_ID))
            else {
                continue; // Not imgsim's.
            };
            if let Some(format) = meta.get(META_FORMAT).and_then(|f| f.parse::<u32>().ok()) {
                if format > format::CURRENT {
                    return Err(self.error(format!(
                        "table {name} was written by a newer imgsim (format {format}; this one \
                         reads up to {}): upgrade imgsim",
                        format::CURRENT
                    )));
                }
            }
            let dim = schema
                .field_with_name("vector")
                .ok()
                .and_then(|f| match f.data_type() {
                    arrow_schema::DataType::FixedSizeList(_, n) => Some(*n as usize),
                    _ => None,
                })
                .unwrap_or(0);
            tables.push(TableInfo {
                table: name,
                model: model.clone(),
                model_id: model_id.clone(),
                dim,
            });
        }
        *self.remote_tables.lock().unwrap_or_else(|p| p.into_inner()) = tables.clone();
        Ok(tables)
    }

    /// A listed table, or `None` when it has no committed version: its creation was cut short
    /// (a process killed while creating it) or is under way on another machine. Such a table
    /// holds nothing; creating it again finishes it.
    fn open_if_committed(
        &self,
        db: &lancedb::Connection,
        name: &str,
    ) -> Result<Option<lancedb::Table>> {
        match self.runtime.block_on(db.open_table(name).execute()) {
            Ok(table) => Ok(Some(table)),
            Err(lancedb::Error::TableNotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Creates a remote table with its model in the schema's metadata. Another machine may
    /// create the same table at the same moment: then this one opens the winner's.
    fn create_remote_table(
        &self,
        db: &lancedb::Connection,
        info: TableInfo,
    ) -> Result<ModelTable<'_>> {
        let schema = rows::schema(info.dim);
        let mut metadata = schema.metadata().clone();
        metadata.insert(META_MODEL.into(), info.model.clone());
        metadata.insert(META_MODEL_ID.into(), info.model_id.clone());
        metadata.insert(META_FORMAT.into(), format::CURRENT.to_string());
        let schema = std::sync::Arc::new(arrow_schema::Schema::new_with_metadata(
            schema.fields().clone(),
            metadata,
        ));
        let created = self
            .runtime
            .block_on(db.create_empty_table(&info.table, schema).execute());
        let table = match created {
            Ok(table) => table,
            // "Already exists", or a lost race for its first version: the table is there.
            Err(e) => match self.runtime.block_on(db.open_table(&info.table).execute()) {
                Ok(table) => table,
                Err(_) => return Err(self.error(e)),
            },
        };
        ModelTable::opened(self, table, info)
    }
}

/// Whether files can be created in `dir` (not on a read-only mount, not another user's).
fn writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".imgsim-write-probe-{}", std::process::id()));
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .is_ok();
    if created {
        let _ = std::fs::remove_file(&probe);
    }
    created
}

/// A table name that names the model and cannot collide between weights.
fn table_name(model: &str, model_id: &str) -> String {
    readable_name(model, model_id)
}

/// A name people can read (`text`, at most 40 characters of letters, digits and `-`, the rest
/// as `_`) that cannot collide: a hash of `key` follows it. Table names and the local folders
/// of remote databases (which hold the daemon's socket: a socket's path has at most 107
/// bytes).
fn readable_name(text: &str, key: &str) -> String {
    let readable: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!(
        "{readable}-{}",
        &blake3::hash(key.as_bytes()).to_hex()[..12]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lance_errors_are_said_without_type_names_or_source_locations() {
        let raw = "lance error: LanceError(IO): No space left on device (os error 28), \
                   /root/.cargo/registry/src/x/lance-file-14.0.2/src/writer/structural.rs:190:9";
        assert_eq!(
            plain_reason(raw),
            "No space left on device (os error 28) (the disk is full: rows written before are \
             kept; free some space and run the command again to finish the work)"
        );
        let raw = "lance error: LanceError(IO): Generic memory error: Invalid range 0..3799 \
                   for object of size 100 bytes, /rustc/5980/library/core/src/ops/function.rs:250:5";
        assert_eq!(
            plain_reason(raw),
            "Generic memory error: Invalid range 0..3799 for object of size 100 bytes"
        );
        assert_eq!(plain_reason("table not found"), "table not found");
    }

    fn row(path: &str, hash: &str, vector: Vec<f32>) -> Row {
        Row {
            path: path.into(),
            size: 10,
            mtime_ns: 1,
            hash: hash.into(),
            width: 4,
            height: 3,
            indexed_at: 0,
            tags: vec!["a".into()],
            vector,
            meta: Default::default(),
        }
    }

    #[test]
    fn rows_round_trip_upsert_replaces_and_search_scores_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), true).unwrap();
        let table = store.table_or_create("m", "m@1", 2).unwrap();
        table
            .upsert(&[
                row("/x/a.jpg", "h1", vec![1.0, 0.0]),
                row("/x/it's.jpg", "h2", vec![0.0, 1.0]),
            ])
            .unwrap();
        table
            .upsert(&[row("/x/a.jpg", "h3", vec![0.6, 0.8])])
            .unwrap();
        assert_eq!(table.count().unwrap(), 2);
        let files = table.files().unwrap();
        assert_eq!(files["/x/a.jpg"].hash, "h3");
        assert_eq!(table.row("/x/it's.jpg").unwrap().unwrap().tags, ["a"]);
        assert_eq!(table.rows_by_hash(&["h2", "h9"]).unwrap().len(), 1);

        let hits = table.nearest(&[0.0, 1.0], 5, Some("/x/it's.jpg")).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].path, "/x/a.jpg");
        assert!((hits[0].score - 0.8).abs() < 1e-6);

        table.delete(&["/x/it's.jpg"]).unwrap();
        assert_eq!(table.count().unwrap(), 1);
        // Reopening finds the table through the manifest; another model has its own.
        drop(table);
        drop(store);
        let store = Store::open(&dir.path().join("db"), false).unwrap();
        assert_eq!(store.table("m@1").unwrap().unwrap().count().unwrap(), 1);
        assert!(store.table("m@2").unwrap().is_none());
    }

    #[test]
    fn renewed_caches_start_empty_and_the_tables_read_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), true).unwrap();
        let table = store.table_or_create("m", "m@1", 2).unwrap();
        for i in 0..5 {
            let path = format!("/x/{i}.jpg");
            table.upsert(&[row(&path, "h", vec![1.0, 0.0])]).unwrap();
        }
        assert_eq!(table.count().unwrap(), 5);
        let (metadata, _) = store.cache_bytes();
        assert!(metadata > 0, "reading a table fills the metadata cache");
        // A table opened before the renewal reads on with the old session.
        store.renew_caches().unwrap();
        assert_eq!(store.cache_bytes(), (0, 0));
        assert_eq!(table.count().unwrap(), 5);
        drop(table);
        let table = store.table("m@1").unwrap().unwrap();
        assert_eq!(table.count().unwrap(), 5);
        table
            .upsert(&[row("/x/new.jpg", "h", vec![0.0, 1.0])])
            .unwrap();
        assert_eq!(table.count().unwrap(), 6);
    }

    #[test]
    fn a_listing_is_every_row_without_its_vector() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), true).unwrap();
        let table = store.table_or_create("m", "m@1", 2).unwrap();
        let mut b = row("/x/b.jpg", "h2", vec![0.0, 1.0]);
        b.meta.format = Some("png".into());
        table
            .upsert(&[row("/x/a.jpg", "h1", vec![1.0, 0.0]), b])
            .unwrap();
        let mut expected = table.all_rows().unwrap();
        for r in &mut expected {
            r.vector.clear();
        }
        let mut listed = table.listing().unwrap();
        listed.sort_by(|x, y| x.path.cmp(&y.path));
        expected.sort_by(|x, y| x.path.cmp(&y.path));
        assert_eq!(listed, expected);
        assert_eq!(listed[1].meta.format.as_deref(), Some("png"));
    }

    #[test]
    fn duplicate_paths_are_repaired_and_a_stale_filter_index_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), true).unwrap();
        let table = store.table_or_create("m", "m@1", 2).unwrap();
        table
            .upsert(&[row("/x/a.jpg", "h1", vec![1.0, 0.0])])
            .unwrap();
        assert!(table.filters().unwrap().contains("/x/a.jpg").unwrap());

        // A write the filter index did not see (as after a crash between the two commits),
        // which also gives a path a second row (as a plain append by another tool would).
        table
            .append(&[
                row("/x/a.jpg", "h1", vec![1.0, 0.0]),
                row("/x/b.jpg", "h2", vec![0.0, 1.0]),
            ])
            .unwrap();
        assert_eq!(table.count().unwrap(), 3);
        assert_eq!(table.repair_duplicates().unwrap(), 1);
        let mut paths = table.paths().unwrap();
        paths.sort();
        assert_eq!(paths, ["/x/a.jpg", "/x/b.jpg"]);

        let filters = table.filters().unwrap();
        assert_eq!(
            filters.built_from().unwrap(),
            Some(table.version().unwrap())
        );
        assert!(filters.contains("/x/b.jpg").unwrap());
    }
}
