//! One model's table: reads, writes and searches, as blocking calls on the store's runtime.
//!
//! Writes upsert by path (never two rows for one path); searches score hits exactly from the
//! stored vectors, whatever the (approximate) vector index returned.

use std::collections::{HashMap, HashSet};

use arrow_array::RecordBatchIterator;
use arrow_array::{Array, FixedSizeListArray, Int64Array, ListArray, RecordBatch, UInt64Array};
use futures::TryStreamExt;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancedb::DistanceType;

use super::filter::FilterIndex;
use super::rows::{
    column, meta_columns, meta_of, record_batch, rows_of, sort_hits, sql_in, sql_quote,
    string_list, strings, vector, FileState, FilterRow, Hit, Row, IN_CHUNK,
};
use super::vector_index::{exact_scan_pays, NPROBES, REFINE_FACTOR};
use super::{Store, TableInfo};
use crate::embed::cosine;
use crate::error::Result;

/// One model's table.
pub struct ModelTable<'a> {
    pub(super) store: &'a Store,
    pub(super) table: lancedb::Table,
    pub info: TableInfo,
    /// Whether the table has the metadata columns (format 3); a table of an older database
    /// opened where it cannot be written has not.
    has_meta: bool,
}

/// How long old versions of a table are kept: longer than any read takes (a search, or
/// `dupes` reading every row, reads the newest version when it starts and must find its files
/// until it ends). Versions are removed only by a compaction, which holds the writer lock, so
/// no writer's version can be removed under it.
pub const KEEP_VERSIONS: lancedb::table::Duration = lancedb::table::Duration::minutes(5);

impl<'a> ModelTable<'a> {
    /// A table just opened, given the metadata columns if it lacks them and the database
    /// can be written (the upgrade to format 3: a schema change, no data rewritten).
    pub(super) fn opened(store: &'a Store, table: lancedb::Table, info: TableInfo) -> Result<Self> {
        let mut opened = Self {
            store,
            table,
            info,
            has_meta: false,
        };
        opened.has_meta = opened.schema_has_meta()?;
        if !opened.has_meta && store.writable {
            let missing =
                std::sync::Arc::new(arrow_schema::Schema::new(super::rows::meta_fields()));
            let added = store.block_on(
                opened
                    .table
                    .add_columns()
                    .transform(lance::dataset::NewColumnTransform::AllNulls(missing))
                    .execute(),
            );
            if let Err(e) = added {
                // Another process may have added them a moment before: then they are there.
                opened.block_on(opened.table.checkout_latest())?;
                if !opened.schema_has_meta()? {
                    return Err(opened.explain(e));
                }
            }
            opened.has_meta = true;
        }
        Ok(opened)
    }

    /// Bytes of the current version's data and index files (as its manifest records them;
    /// older versions not counted).
    pub fn stored_bytes(&self) -> Result<u64> {
        Ok(self.block_on(self.table.stats())?.total_bytes as u64)
    }

    fn schema_has_meta(&self) -> Result<bool> {
        let schema = self.block_on(self.table.schema())?;
        Ok(schema.column_with_name("format").is_some())
    }
}

impl ModelTable<'_> {
    pub(super) fn block_on<T>(
        &self,
        future: impl std::future::Future<Output = lancedb::Result<T>>,
    ) -> Result<T> {
        self.store.block_on(future).map_err(|e| self.explain(e))
    }

    /// The database folder this table lives in.
    pub fn store_dir(&self) -> &std::path::Path {
        self.store.dir()
    }

    pub fn count(&self) -> Result<usize> {
        self.block_on(self.table.count_rows(None))
    }

    pub fn version(&self) -> Result<u64> {
        self.block_on(self.table.version())
    }

    /// Path -> size, mtime and hash of every row.
    pub fn files(&self) -> Result<HashMap<String, FileState>> {
        let mut columns = vec!["path", "size", "mtime_ns", "hash"];
        if self.has_meta {
            columns.push("format");
        }
        let batches = self.collect(self.table.query().select(Select::columns(&columns)))?;
        let mut files = HashMap::new();
        for batch in &batches {
            let paths = strings(batch, "path");
            let sizes = column::<UInt64Array>(batch, "size");
            let mtimes = column::<Int64Array>(batch, "mtime_ns");
            let hashes = strings(batch, "hash");
            let formats = batch.column_by_name("format");
            for i in 0..batch.num_rows() {
                files.insert(
                    paths.value(i).to_string(),
                    FileState {
                        size: sizes.value(i),
                        mtime_ns: mtimes.value(i),
                        hash: hashes.value(i).to_string(),
                        described: formats.is_some_and(|f| f.is_valid(i)),
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
        let mut seen = HashSet::new();
        let mut twice: Vec<String> = Vec::new();
        for path in self.paths()? {
            if !seen.insert(path.clone()) && !twice.contains(&path) {
                twice.push(path);
            }
        }
        let mut removed = 0;
        for chunk in twice.chunks(IN_CHUNK) {
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

    /// Every row, vectors included.
    /// Every row without its vector (empty): what a listing shows, without reading the
    /// bulk of the table.
    pub fn listing(&self) -> Result<Vec<Row>> {
        let mut columns: Vec<String> = [
            "path",
            "size",
            "mtime_ns",
            "hash",
            "width",
            "height",
            "indexed_at",
            "tags",
        ]
        .map(String::from)
        .to_vec();
        if self.has_meta {
            columns.extend(super::rows::meta_columns());
        }
        let batches = self.collect(self.table.query().select(Select::columns(&columns)))?;
        Ok(batches.iter().flat_map(rows_of).collect())
    }

    pub fn all_rows(&self) -> Result<Vec<Row>> {
        let batches = self.collect(self.table.query())?;
        Ok(batches.iter().flat_map(rows_of).collect())
    }

    /// The rows whose path satisfies `filter` (an SQL predicate), vectors included.
    pub fn rows_where(&self, filter: &str) -> Result<Vec<Row>> {
        let batches = self.collect(self.table.query().only_if(filter))?;
        Ok(batches.iter().flat_map(rows_of).collect())
    }

    /// The rows whose `column` is one of `values`, [`IN_CHUNK`] values per query.
    fn rows_in<S: AsRef<str>>(&self, column: &str, values: &[S]) -> Result<Vec<Row>> {
        let mut rows = Vec::new();
        for chunk in values.chunks(IN_CHUNK) {
            rows.extend(self.rows_where(&sql_in(column, chunk))?);
        }
        Ok(rows)
    }

    /// The rows of these paths (vectors included).
    pub fn rows_of_paths(&self, paths: &[&str]) -> Result<Vec<Row>> {
        self.rows_in("path", paths)
    }

    /// One row per hash among `hashes` (any of the paths that share it).
    pub fn rows_by_hash(&self, hashes: &[&str]) -> Result<HashMap<String, Row>> {
        let mut found = HashMap::new();
        for row in self.rows_in("hash", hashes)? {
            found.entry(row.hash.clone()).or_insert(row);
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
        self.committing(|| {
            let schema = batch.schema();
            let reader = RecordBatchIterator::new(vec![Ok(batch.clone())], schema);
            let mut merge = self.table.merge_insert(&["path"]);
            merge
                .when_matched_update_all(None)
                .when_not_matched_insert_all();
            async move { merge.execute(Box::new(reader)).await.map(|_| ()) }
        })
    }

    /// Runs a write, again on the newest version when another writer's commit made it
    /// incompatible (several machines writing one table on object storage; by path, a write
    /// done twice is done once). Lance itself rebases what merely overlaps; what it refuses
    /// is, for one, a concurrent creation of the same table (an overwrite of the empty
    /// table: the first writes of the other machine fail against it).
    fn committing<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = lancedb::Result<T>>,
    {
        const TRIES: u32 = 6;
        let mut tries = 1;
        loop {
            match self.store.runtime().block_on(attempt()) {
                Ok(value) => return Ok(value),
                Err(e) if tries < TRIES && is_commit_conflict(&e.to_string()) => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20 << tries));
                    self.block_on(self.table.checkout_latest())?;
                }
                Err(e) => return Err(self.explain(self.store.error(e))),
            }
        }
    }

    /// Adds rows known to be new (no upsert: the fast path for bulk loads).
    pub fn append(&self, rows: &[Row]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let refs: Vec<&Row> = rows.iter().collect();
        let batch = record_batch(&refs, self.info.dim)?;
        self.committing(|| {
            let add = self.table.add(batch.clone());
            async move { add.execute().await.map(|_| ()) }
        })
    }

    /// Removes the rows of these paths (one commit per [`IN_CHUNK`]).
    pub fn delete(&self, paths: &[&str]) -> Result<()> {
        for chunk in paths.chunks(IN_CHUNK) {
            let predicate = sql_in("path", chunk);
            self.committing(|| {
                let predicate = predicate.clone();
                async move { self.table.delete(&predicate).await.map(|_| ()) }
            })?;
        }
        Ok(())
    }

    /// The `k` rows most similar to `query` by cosine, best first, scored exactly from the
    /// stored vectors; `exclude` (the query's own path) is left out.
    pub fn nearest(&self, query: &[f32], k: usize, exclude: Option<&str>) -> Result<Vec<Hit>> {
        // An ANN index returns approximate distances; fetch more and re-rank exactly.
        let fetch = k
            .saturating_add(usize::from(exclude.is_some()))
            .saturating_mul(4);
        let search = self
            .table
            .query()
            .nearest_to(query)
            .map_err(|e| self.store.error(e))?
            .distance_type(DistanceType::Cosine)
            .limit(fetch)
            // With an IVF-PQ index: probe enough partitions, and let Lance re-rank a wider
            // candidate set with the full vectors before we re-score them exactly.
            .nprobes(NPROBES)
            .map_err(|e| self.store.error(e))?
            .refine_factor(REFINE_FACTOR)
            .select(Select::columns(&["path", "vector"]));
        let batches = self.collect(search)?;
        let mut hits = Vec::new();
        for batch in &batches {
            let paths = strings(batch, "path");
            let vectors = column::<FixedSizeListArray>(batch, "vector");
            for i in 0..batch.num_rows() {
                let path = paths.value(i);
                if exclude != Some(path) {
                    hits.push(Hit {
                        path: path.to_string(),
                        score: cosine(&vector(vectors, i), query),
                    });
                }
            }
        }
        sort_hits(&mut hits);
        hits.truncate(k);
        Ok(hits)
    }

    /// Like [`Self::nearest`], among the rows whose path is in `allowed` only. A selective
    /// filter is scored exactly over its rows; a broad one searches the vectors and skips
    /// rows outside it, widening the search until `k` are found.
    pub fn nearest_among(
        &self,
        query: &[f32],
        k: usize,
        exclude: Option<&str>,
        allowed: &HashSet<String>,
    ) -> Result<Vec<Hit>> {
        let total = self.count()?;
        if exact_scan_pays(allowed.len(), total) {
            let mut hits: Vec<Hit> = if allowed.len().saturating_mul(4) >= total {
                // A quarter of the table or more: one scan of the paths and vectors is
                // cheaper than many `path IN (...)` reads (10,000 of 10,000 rows: 330 ms in
                // 20 reads before, one scan now).
                let search = self
                    .table
                    .query()
                    .select(Select::columns(&["path", "vector"]));
                let mut hits = Vec::new();
                for batch in &self.collect(search)? {
                    let paths = strings(batch, "path");
                    let vectors = column::<FixedSizeListArray>(batch, "vector");
                    for i in 0..batch.num_rows() {
                        let path = paths.value(i);
                        if exclude != Some(path) && allowed.contains(path) {
                            hits.push(Hit {
                                path: path.to_string(),
                                score: cosine(&vector(vectors, i), query),
                            });
                        }
                    }
                }
                hits
            } else {
                let paths: Vec<&str> = allowed.iter().map(String::as_str).collect();
                self.rows_in("path", &paths)?
                    .into_iter()
                    .filter(|row| exclude != Some(row.path.as_str()))
                    .map(|row| Hit {
                        score: cosine(&row.vector, query),
                        path: row.path,
                    })
                    .collect()
            };
            sort_hits(&mut hits);
            hits.truncate(k);
            return Ok(hits);
        }
        let mut fetch = k.saturating_mul(4);
        loop {
            let mut hits = self.nearest(query, fetch, exclude)?;
            let exhausted = hits.len() < fetch;
            hits.retain(|h| allowed.contains(&h.path));
            if hits.len() >= k || exhausted || fetch >= total {
                hits.truncate(k);
                return Ok(hits);
            }
            fetch = fetch.saturating_mul(4);
        }
    }

    /// Compacts small fragments, removes versions older than [`KEEP_VERSIONS`] (and the files
    /// only they use), and folds new rows into the indexes.
    ///
    /// LanceDB's own `All` keeps seven days of versions. Every commit is a version, and a busy
    /// library commits every few seconds: the 30-minute soak left 2,461 versions and 1,681
    /// data files, and each compaction read every old manifest to find what it could delete,
    /// taking longer each time (0.5 s, then 2.1 s after 13 minutes). Keeping 5 minutes, the
    /// soak's table held ~800 versions and 590 data files after 16 minutes and compactions
    /// took 0.8-1.2 s. imgsim never reads an old version: a search reads the newest.
    pub fn optimize(&self) -> Result<()> {
        use lancedb::table::{CompactionOptions, OptimizeAction, OptimizeOptions};
        self.block_on(self.table.optimize(OptimizeAction::Compact {
            options: CompactionOptions::default(),
            remap_options: None,
        }))?;
        self.block_on(self.table.optimize(OptimizeAction::Prune {
            older_than: Some(KEEP_VERSIONS),
            // Files no version names yet may belong to a commit in progress (another
            // process's): LanceDB keeps those for seven days.
            delete_unverified: Some(false),
            error_if_tagged_old_versions: Some(false),
        }))?;
        self.block_on(
            self.table
                .optimize(OptimizeAction::Index(OptimizeOptions::default())),
        )?;
        Ok(())
    }

    /// Path, tags and metadata of every row, for the filter index.
    pub fn filter_rows(&self) -> Result<Vec<FilterRow>> {
        let mut columns = vec!["path".to_string(), "tags".to_string()];
        if self.has_meta {
            columns.extend(meta_columns());
        }
        let batches = self.collect(self.table.query().select(Select::columns(&columns)))?;
        let mut rows = Vec::new();
        for batch in &batches {
            let paths = strings(batch, "path");
            let tags = column::<ListArray>(batch, "tags");
            for i in 0..batch.num_rows() {
                rows.push(FilterRow {
                    path: paths.value(i).to_string(),
                    tags: string_list(tags, i),
                    meta: meta_of(batch, i),
                });
            }
        }
        Ok(rows)
    }

    /// The metadata of every row (none for a table without the metadata columns).
    pub fn metas(&self) -> Result<Vec<crate::metadata::Meta>> {
        if !self.has_meta {
            return Ok(Vec::new());
        }
        let batches = self.collect(self.table.query().select(Select::columns(&meta_columns())))?;
        Ok(batches
            .iter()
            .flat_map(|b| (0..b.num_rows()).map(|i| meta_of(b, i)))
            .collect())
    }

    /// Whether this table has the metadata columns (see [`Self::opened`]).
    pub fn has_meta(&self) -> bool {
        self.has_meta
    }

    /// The filter index of this table, rebuilt first if it does not match the table's
    /// current version (after a crash between the two commits, say).
    /// When the index on disk cannot be brought up to date, it is built in memory instead.
    pub fn filters(&self) -> Result<FilterIndex> {
        let dir = self.store.dir.join(format!("{}.filters", self.info.table));
        let version = self.version()?;
        let on_disk = || -> Result<FilterIndex> {
            let mut filters = FilterIndex::open(&dir)?;
            if filters.built_from()? != Some(version) {
                filters.rebuild(&self.filter_rows()?, version)?;
            }
            Ok(filters)
        };
        // An index on disk that cannot be brought up to date (a read-only mount, a full disk,
        // another process's rebuild that takes too long) is built in memory for this use: the
        // answer is the table's either way, and the next open rebuilds the one on disk.
        match on_disk() {
            Ok(filters) => Ok(filters),
            Err(_) => FilterIndex::in_memory(&dir, &self.filter_rows()?, version),
        }
    }

    pub(super) fn collect(&self, query: impl ExecutableQuery) -> Result<Vec<RecordBatch>> {
        self.block_on(async { query.execute().await?.try_collect::<Vec<_>>().await })
    }
}

/// Whether a write failed only because another writer committed first.
fn is_commit_conflict(message: &str) -> bool {
    [
        "Incompatible transaction",
        "Commit conflict",
        "commit conflict",
        "Retryable commit",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}
