//! The on-disk store: a LanceDB database with one table per model (vectors of different
//! models or weights never mix), one row per indexed file.
//!
//! LanceDB is async; the store owns a small tokio runtime and offers a blocking API, so that
//! the rest of imgsim stays synchronous.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::types::Float32Type;
use arrow_array::{
    Array, FixedSizeListArray, Float32Array, Int64Array, ListArray, RecordBatch,
    RecordBatchIterator, StringArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::TryStreamExt;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancedb::DistanceType;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::filter::{FilterIndex, FilterRow};

/// One indexed file under one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Canonical absolute path.
    pub path: String,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// blake3 of the file's bytes (hex).
    pub hash: String,
    pub width: u32,
    pub height: u32,
    /// Seconds since the Unix epoch.
    pub indexed_at: i64,
    pub tags: Vec<String>,
    pub vector: Vec<f32>,
}

/// What the indexer compares with the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub size: u64,
    pub mtime_ns: i64,
    pub hash: String,
}

/// A search hit: the cosine similarity recomputed from the stored vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub path: String,
    pub score: f32,
}

/// What `models.json` records of each table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableInfo {
    pub table: String,
    pub model: String,
    pub model_id: String,
    pub dim: usize,
}

const MANIFEST: &str = "models.json";

pub struct Store {
    dir: PathBuf,
    runtime: tokio::runtime::Runtime,
    db: lancedb::Connection,
}

/// One model's table.
pub struct ModelTable<'a> {
    store: &'a Store,
    table: lancedb::Table,
    pub info: TableInfo,
}

fn store_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Store {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// SQL string literal: quotes doubled.
pub fn sql_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `column IN ('a', 'b', ...)`, for chunks of at most a few hundred values.
fn sql_in<S: AsRef<str>>(column: &str, values: &[S]) -> String {
    let list: Vec<String> = values.iter().map(|v| sql_quote(v.as_ref())).collect();
    format!("{column} IN ({})", list.join(", "))
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
    pub fn open(dir: &Path, create: bool) -> Result<Self> {
        if !dir.is_dir() {
            if !create {
                return Err(store_error(
                    dir,
                    "no index here yet: run `imgsim index DIR` first",
                ));
            }
            std::fs::create_dir_all(dir).map_err(|e| store_error(dir, e))?;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| store_error(dir, e))?;
        let uri = dir.to_string_lossy().into_owned();
        let db = runtime
            .block_on(lancedb::connect(&uri).execute())
            .map_err(|e| store_error(dir, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            runtime,
            db,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every model's table that exists, as the manifest records them.
    pub fn tables(&self) -> Result<Vec<TableInfo>> {
        let path = self.dir.join(MANIFEST);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| store_error(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(store_error(&path, e)),
        }
    }

    /// The table of a model (by its id), if it was ever indexed.
    pub fn table(&self, model_id: &str) -> Result<Option<ModelTable<'_>>> {
        let Some(info) = self.tables()?.into_iter().find(|t| t.model_id == model_id) else {
            return Ok(None);
        };
        let table = self
            .runtime
            .block_on(self.db.open_table(&info.table).execute())
            .map_err(|e| store_error(&self.dir, e))?;
        Ok(Some(ModelTable {
            store: self,
            table,
            info,
        }))
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
        let names = self
            .runtime
            .block_on(self.db.table_names().execute())
            .map_err(|e| store_error(&self.dir, e))?;
        let table = if names.contains(&info.table) {
            // Created before a crash that lost the manifest entry.
            self.runtime
                .block_on(self.db.open_table(&info.table).execute())
        } else {
            self.runtime.block_on(
                self.db
                    .create_empty_table(&info.table, schema(dim))
                    .execute(),
            )
        }
        .map_err(|e| store_error(&self.dir, e))?;
        let mut all = self.tables()?;
        all.push(info.clone());
        let path = self.dir.join(MANIFEST);
        let tmp = self.dir.join(format!("{MANIFEST}.tmp"));
        std::fs::write(
            &tmp,
            serde_json::to_string_pretty(&all).expect("serialisable"),
        )
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| store_error(&path, e))?;
        Ok(ModelTable {
            store: self,
            table,
            info,
        })
    }
}

/// A table name that names the model and cannot collide between weights.
fn table_name(model: &str, model_id: &str) -> String {
    let readable: String = model
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
        &blake3::hash(model_id.as_bytes()).to_hex()[..12]
    )
}

fn schema(dim: usize) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("size", DataType::UInt64, false),
        Field::new("mtime_ns", DataType::Int64, false),
        Field::new("hash", DataType::Utf8, false),
        Field::new("width", DataType::UInt32, false),
        Field::new("height", DataType::UInt32, false),
        Field::new("indexed_at", DataType::Int64, false),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
        Field::new(
            "vector",
            DataType::FixedSizeList(
                Arc::new(Field::new("item", DataType::Float32, true)),
                dim as i32,
            ),
            true,
        ),
    ]))
}

impl ModelTable<'_> {
    fn block_on<T>(
        &self,
        future: impl std::future::Future<Output = lancedb::Result<T>>,
    ) -> Result<T> {
        self.store
            .runtime
            .block_on(future)
            .map_err(|e| store_error(&self.store.dir, e))
    }

    pub fn count(&self) -> Result<usize> {
        self.block_on(self.table.count_rows(None))
    }

    pub fn version(&self) -> Result<u64> {
        self.block_on(self.table.version())
    }

    /// Path -> size, mtime and hash of every row.
    pub fn files(&self) -> Result<HashMap<String, FileState>> {
        let batches = self.collect(
            self.table
                .query()
                .select(Select::columns(&["path", "size", "mtime_ns", "hash"])),
        )?;
        let mut files = HashMap::new();
        for batch in &batches {
            let paths = strings(batch, "path");
            let sizes = column::<UInt64Array>(batch, "size");
            let mtimes = column::<Int64Array>(batch, "mtime_ns");
            let hashes = strings(batch, "hash");
            for i in 0..batch.num_rows() {
                files.insert(
                    paths.value(i).to_string(),
                    FileState {
                        size: sizes.value(i),
                        mtime_ns: mtimes.value(i),
                        hash: hashes.value(i).to_string(),
                    },
                );
            }
        }
        Ok(files)
    }

    /// The path of every row, in table order; a path held by two rows appears twice.
    pub fn paths(&self) -> Result<Vec<String>> {
        let batches = self.collect(self.table.query().select(Select::columns(&["path"])))?;
        Ok(batches
            .iter()
            .flat_map(|b| {
                let paths = strings(b, "path");
                (0..b.num_rows())
                    .map(|i| paths.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect())
    }

    /// Leaves one row per path where some path has several (imgsim's own writes upsert by
    /// path and never make them; this repairs a table written otherwise). Returns how many
    /// rows were removed.
    pub fn repair_duplicates(&self) -> Result<usize> {
        let mut seen = std::collections::HashSet::new();
        let mut twice: Vec<String> = Vec::new();
        for path in self.paths()? {
            if !seen.insert(path.clone()) && !twice.contains(&path) {
                twice.push(path);
            }
        }
        let mut removed = 0;
        for chunk in twice.chunks(500) {
            let rows = self.rows_where(&sql_in("path", chunk))?;
            let mut keep: HashMap<&str, &Row> = HashMap::new();
            for row in &rows {
                keep.entry(row.path.as_str()).or_insert(row);
            }
            removed += rows.len() - keep.len();
            let keep: Vec<Row> = keep.into_values().cloned().collect();
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            // Delete, then write one back: a crash in between loses the row, which the
            // next pass finds missing and adds again (never a duplicate).
            self.delete(&refs)?;
            self.append(&keep)?;
        }
        Ok(removed)
    }

    /// The rows whose path satisfies `filter` (an SQL predicate), vectors included.
    pub fn rows_where(&self, filter: &str) -> Result<Vec<Row>> {
        let batches = self.collect(self.table.query().only_if(filter))?;
        Ok(batches.iter().flat_map(rows_of).collect())
    }

    /// One row per hash among `hashes` (any of the paths that share it).
    pub fn rows_by_hash(&self, hashes: &[&str]) -> Result<HashMap<String, Row>> {
        let mut found = HashMap::new();
        for chunk in hashes.chunks(500) {
            for row in self.rows_where(&sql_in("hash", chunk))? {
                found.entry(row.hash.clone()).or_insert(row);
            }
        }
        Ok(found)
    }

    pub fn row(&self, path: &str) -> Result<Option<Row>> {
        Ok(self
            .rows_where(&format!("path = {}", sql_quote(path)))?
            .into_iter()
            .next())
    }

    /// Inserts rows, replacing any with the same path (one commit).
    pub fn upsert(&self, rows: &[Row]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        // A path given twice would be two rows: keep the last.
        let mut last: HashMap<&str, &Row> = HashMap::new();
        for row in rows {
            last.insert(row.path.as_str(), row);
        }
        let unique: Vec<&Row> = last.into_values().collect();
        let batch = record_batch(&unique, self.info.dim)?;
        let schema = batch.schema();
        let reader = RecordBatchIterator::new(vec![Ok(batch)], schema);
        let mut merge = self.table.merge_insert(&["path"]);
        merge
            .when_matched_update_all(None)
            .when_not_matched_insert_all();
        self.block_on(merge.execute(Box::new(reader)))?;
        Ok(())
    }

    /// Adds rows known to be new (no upsert: the fast path for bulk loads).
    pub fn append(&self, rows: &[Row]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let refs: Vec<&Row> = rows.iter().collect();
        let batch = record_batch(&refs, self.info.dim)?;
        self.block_on(self.table.add(batch).execute())?;
        Ok(())
    }

    /// Removes the rows of these paths (one commit per 500).
    pub fn delete(&self, paths: &[&str]) -> Result<()> {
        for chunk in paths.chunks(500) {
            let predicate = sql_in("path", chunk);
            self.block_on(self.table.delete(predicate.as_str()))?;
        }
        Ok(())
    }

    /// The `k` rows most similar to `query` by cosine, best first, scored exactly from the
    /// stored vectors; `exclude` (the query's own path) is left out.
    pub fn nearest(&self, query: &[f32], k: usize, exclude: Option<&str>) -> Result<Vec<Hit>> {
        // An ANN index returns approximate distances; fetch more and re-rank exactly.
        let fetch = (k + usize::from(exclude.is_some())) * 4;
        let search = self
            .table
            .query()
            .nearest_to(query)
            .map_err(|e| store_error(&self.store.dir, e))?
            .distance_type(DistanceType::Cosine)
            .limit(fetch)
            // With an IVF-PQ index: probe enough partitions, and let Lance re-rank a wider
            // candidate set with the full vectors before we re-score them exactly.
            .nprobes(NPROBES)
            .map_err(|e| store_error(&self.store.dir, e))?
            .refine_factor(REFINE_FACTOR)
            .select(Select::columns(&["path", "vector"]));
        let batches = self.collect(search)?;
        let mut hits = Vec::new();
        for batch in &batches {
            let paths = strings(batch, "path");
            let vectors = column::<FixedSizeListArray>(batch, "vector");
            for i in 0..batch.num_rows() {
                let path = paths.value(i);
                if exclude == Some(path) {
                    continue;
                }
                let stored = vectors.value(i);
                let stored = stored
                    .as_any()
                    .downcast_ref::<Float32Array>()
                    .expect("f32 vectors");
                let score: f32 = stored.values().iter().zip(query).map(|(a, b)| a * b).sum();
                hits.push(Hit {
                    path: path.to_string(),
                    score,
                });
            }
        }
        sort_hits(&mut hits);
        hits.truncate(k);
        Ok(hits)
    }

    /// The vector index: rows it covers and rows added since (`None`: no index).
    pub fn vector_index(&self) -> Result<Option<(usize, usize)>> {
        let indices = self.block_on(self.table.list_indices())?;
        let Some(config) = indices
            .iter()
            .find(|i| i.columns.iter().any(|c| c == "vector"))
        else {
            return Ok(None);
        };
        let stats = self.block_on(self.table.index_stats(&config.name))?;
        Ok(stats.map(|s| (s.num_indexed_rows, s.num_unindexed_rows)))
    }

    /// Builds (or rebuilds) the IVF-PQ index on the vectors, by cosine distance. Needs at
    /// least 256 rows (PQ's codebook); with fewer, searches stay exact and nothing is built.
    pub fn build_vector_index(&self) -> Result<bool> {
        let rows = self.count()?;
        if rows < MIN_INDEX_ROWS {
            return Ok(false);
        }
        let (partitions, sub_vectors) = ivf_pq_params(rows, self.info.dim);
        let builder = lancedb::index::vector::IvfPqIndexBuilder::default()
            .distance_type(DistanceType::Cosine)
            .num_partitions(partitions)
            .num_sub_vectors(sub_vectors);
        self.block_on(
            self.table
                .create_index(&["vector"], lancedb::index::Index::IvfPq(builder))
                .replace(true)
                .execute(),
        )?;
        Ok(true)
    }

    /// Keeps the vector index worth having: builds it once the table reaches
    /// [`AUTO_INDEX_ROWS`], and folds new rows in (with compaction) once they are more than a
    /// tenth of it, since unindexed rows are scanned exactly by every query.
    pub fn maintain_vector_index(&self) -> Result<IndexUpkeep> {
        match self.vector_index()? {
            None if self.count()? >= AUTO_INDEX_ROWS => {
                self.build_vector_index()?;
                Ok(IndexUpkeep::Built)
            }
            Some((indexed, unindexed)) if unindexed > indexed / 10 => {
                self.optimize()?;
                Ok(IndexUpkeep::Refreshed)
            }
            _ => Ok(IndexUpkeep::Nothing),
        }
    }

    /// Compacts small fragments, prunes old versions and folds new rows into the indexes.
    pub fn optimize(&self) -> Result<()> {
        self.block_on(self.table.optimize(lancedb::table::OptimizeAction::All))?;
        Ok(())
    }

    /// Path and tags of every row, for the filter index.
    pub fn filter_rows(&self) -> Result<Vec<FilterRow>> {
        let batches = self.collect(
            self.table
                .query()
                .select(Select::columns(&["path", "tags"])),
        )?;
        let mut rows = Vec::new();
        for batch in &batches {
            let paths = strings(batch, "path");
            let tags = column::<ListArray>(batch, "tags");
            for i in 0..batch.num_rows() {
                let values = tags.value(i);
                let values = values
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("string tags");
                rows.push(FilterRow {
                    path: paths.value(i).to_string(),
                    tags: values.iter().flatten().map(str::to_string).collect(),
                });
            }
        }
        Ok(rows)
    }

    /// The filter index of this table, rebuilt first if it does not match the table's
    /// current version (after a crash between the two commits, say).
    pub fn filters(&self) -> Result<FilterIndex> {
        let dir = self.store.dir.join(format!("{}.filters", self.info.table));
        let mut filters = FilterIndex::open(&dir)?;
        let version = self.version()?;
        if filters.built_from()? != Some(version) {
            filters.rebuild(&self.filter_rows()?, version)?;
        }
        Ok(filters)
    }

    /// Like [`Self::nearest`], among the rows whose path is in `allowed` only. A selective
    /// filter is scored exactly over its rows; a broad one searches the vectors and skips
    /// rows outside it, widening the search until `k` are found.
    pub fn nearest_among(
        &self,
        query: &[f32],
        k: usize,
        exclude: Option<&str>,
        allowed: &std::collections::HashSet<String>,
    ) -> Result<Vec<Hit>> {
        let total = self.count()?;
        if allowed.len() <= SELECTIVE_ROWS.max(total / 20) {
            let paths: Vec<&str> = allowed.iter().map(String::as_str).collect();
            let mut hits = Vec::new();
            for chunk in paths.chunks(500) {
                for row in self.rows_where(&sql_in("path", chunk))? {
                    if exclude == Some(row.path.as_str()) {
                        continue;
                    }
                    let score = row.vector.iter().zip(query).map(|(a, b)| a * b).sum();
                    hits.push(Hit {
                        path: row.path,
                        score,
                    });
                }
            }
            sort_hits(&mut hits);
            hits.truncate(k);
            return Ok(hits);
        }
        let mut fetch = k * 4;
        loop {
            let mut hits = self.nearest(query, fetch, exclude)?;
            let exhausted = hits.len() < fetch;
            hits.retain(|h| allowed.contains(&h.path));
            if hits.len() >= k || exhausted || fetch >= total {
                hits.truncate(k);
                return Ok(hits);
            }
            fetch *= 4;
        }
    }

    fn collect(&self, query: impl ExecutableQuery) -> Result<Vec<RecordBatch>> {
        self.block_on(async { query.execute().await?.try_collect::<Vec<_>>().await })
    }
}

/// IVF partitions searched per query, and Lance's re-ranking factor (candidates = k x it).
/// Starting values; the ANN benchmark tunes them against recall.
pub const NPROBES: usize = 32;
pub const REFINE_FACTOR: u32 = 8;

/// IVF-PQ shape for a table: about sqrt(n) partitions, and sub-vectors of 16 dimensions
/// where the dimension allows (8 bits each).
pub fn ivf_pq_params(rows: usize, dim: usize) -> (u32, u32) {
    let dim = dim as u32;
    let partitions = ((rows as f64).sqrt() as u32).clamp(1, 4096);
    let sub_vectors = if dim.is_multiple_of(16) {
        dim / 16
    } else if dim.is_multiple_of(8) {
        dim / 8
    } else {
        1
    };
    (partitions, sub_vectors)
}

/// What [`ModelTable::maintain_vector_index`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexUpkeep {
    Nothing,
    Built,
    Refreshed,
}

/// Tables from this size on get an IVF-PQ index automatically. Measured (`imgsim bench ann`,
/// 768-d, 2 cores): exact search takes 13.5 ms at 10k rows and grows linearly (172 ms at
/// 100k); with the index a query takes ~7 ms at any size, at recall@10 1.0 (README).
pub const AUTO_INDEX_ROWS: usize = 10_000;

/// PQ needs 256 rows to train its 8-bit codebooks.
pub const MIN_INDEX_ROWS: usize = 256;

/// A filter matching at most this many rows (or a twentieth of the table) is scored exactly.
const SELECTIVE_ROWS: usize = 20_000;

fn sort_hits(hits: &mut [Hit]) {
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.path.cmp(&b.path))
    });
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .unwrap_or_else(|| panic!("the table schema has column {name}"))
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> &'a StringArray {
    column::<StringArray>(batch, name)
}

fn rows_of(batch: &RecordBatch) -> Vec<Row> {
    let paths = strings(batch, "path");
    let sizes = column::<UInt64Array>(batch, "size");
    let mtimes = column::<Int64Array>(batch, "mtime_ns");
    let hashes = strings(batch, "hash");
    let widths = column::<UInt32Array>(batch, "width");
    let heights = column::<UInt32Array>(batch, "height");
    let indexed = column::<Int64Array>(batch, "indexed_at");
    let tags = column::<ListArray>(batch, "tags");
    let vectors = column::<FixedSizeListArray>(batch, "vector");
    (0..batch.num_rows())
        .map(|i| {
            let tag_values = tags.value(i);
            let tag_strings = tag_values
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("string tags");
            let vector = vectors.value(i);
            let vector = vector
                .as_any()
                .downcast_ref::<Float32Array>()
                .expect("f32 vectors");
            Row {
                path: paths.value(i).to_string(),
                size: sizes.value(i),
                mtime_ns: mtimes.value(i),
                hash: hashes.value(i).to_string(),
                width: widths.value(i),
                height: heights.value(i),
                indexed_at: indexed.value(i),
                tags: tag_strings.iter().flatten().map(str::to_string).collect(),
                vector: vector.values().to_vec(),
            }
        })
        .collect()
}

fn record_batch(rows: &[&Row], dim: usize) -> Result<RecordBatch> {
    let mut tags = ListBuilder::new(StringBuilder::new());
    for row in rows {
        for tag in &row.tags {
            tags.values().append_value(tag);
        }
        tags.append(true);
    }
    if let Some(bad) = rows.iter().find(|r| r.vector.len() != dim) {
        return Err(Error::Unsupported(format!(
            "{}: a {}-d vector for a {dim}-d table",
            bad.path,
            bad.vector.len()
        )));
    }
    RecordBatch::try_new(
        schema(dim),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.path))),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.size))),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.mtime_ns),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.hash))),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.width))),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.height))),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.indexed_at),
            )),
            Arc::new(tags.finish()),
            Arc::new(
                FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
                    rows.iter()
                        .map(|r| Some(r.vector.iter().copied().map(Some).collect::<Vec<_>>())),
                    dim as i32,
                ),
            ),
        ],
    )
    .map_err(|e| Error::Unsupported(format!("building a record batch: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

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
