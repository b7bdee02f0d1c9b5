//! Filename and tag filters (`--where`), a tantivy index beside each Lance table.
//!
//! Lance is the source of truth; this index is derived from it. Its commit payload records
//! the Lance table version it was built from, so that a mismatch (a crash between the two
//! commits, a write by an older imgsim) is noticed on open and repaired by rebuilding.
//!
//! Fields, all searchable with tantivy's query syntax: `name` (the file name, split into words),
//! `dir` (the folders of the path), `ext` (the extension, lower case), `tag`. Example:
//! `name:beach* AND tag:2023 -ext:png`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tantivy::collector::DocSetCollector;
use tantivy::query::QueryParser;
use tantivy::schema::{Field, Schema, Value, STORED, STRING, TEXT};
use tantivy::{doc, Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

use super::rows::FilterRow;
use crate::error::{Error, Result};

struct Fields {
    path: Field,
    name: Field,
    dir: Field,
    ext: Field,
    tag: Field,
}

pub struct FilterIndex {
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

fn filter_error(dir: &Path, e: impl std::fmt::Display) -> Error {
    Error::Store {
        path: dir.to_path_buf(),
        reason: format!("filter index: {e}"),
    }
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let fields = Fields {
        path: builder.add_text_field("path", STRING | STORED),
        name: builder.add_text_field("name", TEXT),
        dir: builder.add_text_field("dir", TEXT),
        ext: builder.add_text_field("ext", TEXT),
        tag: builder.add_text_field("tag", TEXT),
    };
    (builder.build(), fields)
}

/// How long a rebuild waits for another process's rebuild of the same index.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl FilterIndex {
    /// Opens the index in `dir`, creating it empty when there is none.
    pub fn open(dir: &Path) -> Result<Self> {
        // Beside its table, in a database folder that exists: never created with it.
        match std::fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(filter_error(dir, e)),
        }
        let (schema, fields) = schema();
        let directory =
            tantivy::directory::MmapDirectory::open(dir).map_err(|e| filter_error(dir, e))?;
        let index = Index::open_or_create(directory, schema).map_err(|e| filter_error(dir, e))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| filter_error(dir, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            index,
            reader,
            fields,
        })
    }

    /// An index in memory holding `rows`: for a database that cannot be written (a read-only
    /// mount or share), where the index on disk can be neither locked nor rebuilt.
    pub fn in_memory(dir: &Path, rows: &[FilterRow], version: u64) -> Result<Self> {
        let (schema, fields) = schema();
        let index = Index::create_in_ram(schema);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| filter_error(dir, e))?;
        let mut filters = Self {
            dir: dir.to_path_buf(),
            index,
            reader,
            fields,
        };
        filters.rebuild(rows, version)?;
        Ok(filters)
    }

    /// The Lance version this index was built from (`None`: never built).
    pub fn built_from(&self) -> Result<Option<u64>> {
        let metas = self
            .index
            .load_metas()
            .map_err(|e| filter_error(&self.dir, e))?;
        Ok(metas.payload.and_then(|p| p.parse().ok()))
    }

    /// Replaces the whole index with `rows`, recording `version`. One commit: a crash leaves
    /// the previous state, which the next open rebuilds again.
    /// Another process rebuilding the same index (a search beside the daemon) holds its
    /// writer lock for a moment: waited for, up to [`LOCK_WAIT`].
    pub fn rebuild(&mut self, rows: &[FilterRow], version: u64) -> Result<()> {
        let started = std::time::Instant::now();
        let mut writer: tantivy::IndexWriter = loop {
            match self.index.writer_with_num_threads(1, 50_000_000) {
                Ok(writer) => break writer,
                Err(tantivy::TantivyError::LockFailure(
                    tantivy::directory::error::LockError::LockBusy,
                    _,
                )) if started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(filter_error(&self.dir, e)),
            }
        };
        writer
            .delete_all_documents()
            .map_err(|e| filter_error(&self.dir, e))?;
        for row in rows {
            writer
                .add_document(self.document(row))
                .map_err(|e| filter_error(&self.dir, e))?;
        }
        let mut commit = writer
            .prepare_commit()
            .map_err(|e| filter_error(&self.dir, e))?;
        commit.set_payload(&version.to_string());
        commit.commit().map_err(|e| filter_error(&self.dir, e))?;
        self.reader
            .reload()
            .map_err(|e| filter_error(&self.dir, e))?;
        Ok(())
    }

    fn document(&self, row: &FilterRow) -> TantivyDocument {
        let path = crate::util::path_of(&row.path);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let dirs = path
            .parent()
            .map(|p| {
                p.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let mut doc = doc!(
            self.fields.path => row.path.clone(),
            self.fields.name => name,
            self.fields.dir => dirs,
            self.fields.ext => ext,
        );
        for tag in &row.tags {
            doc.add_text(self.fields.tag, tag);
        }
        doc
    }

    /// The paths that match a query in tantivy's syntax (`name:beach* AND tag:2023 -ext:png`).
    pub fn matching_paths(&self, query: &str) -> Result<HashSet<String>> {
        let f = &self.fields;
        let mut parser = QueryParser::for_index(&self.index, vec![f.name, f.dir, f.tag]);
        // `beach*` is a wildcard, which tantivy runs as a regular expression.
        parser.allow_regexes();
        let parsed = parser
            .parse_query(&glob_wildcards(query))
            .map_err(|e| Error::Query {
                query: query.to_string(),
                reason: e.to_string(),
            })?;
        let searcher = self.reader.searcher();
        let found = searcher
            .search(&parsed, &DocSetCollector)
            .map_err(|e| filter_error(&self.dir, e))?;
        let mut paths = HashSet::with_capacity(found.len());
        for address in found {
            let doc: TantivyDocument = searcher
                .doc(address)
                .map_err(|e| filter_error(&self.dir, e))?;
            if let Some(path) = doc.get_first(f.path).and_then(|v| v.as_str()) {
                paths.insert(path.to_string());
            }
        }
        Ok(paths)
    }

    /// Whether a path has a document (for tests and checks).
    pub fn contains(&self, path: &str) -> Result<bool> {
        let searcher = self.reader.searcher();
        let query = tantivy::query::TermQuery::new(
            Term::from_field_text(self.fields.path, path),
            tantivy::schema::IndexRecordOption::Basic,
        );
        let found = searcher
            .search(&query, &DocSetCollector)
            .map_err(|e| filter_error(&self.dir, e))?;
        Ok(!found.is_empty())
    }
}

/// tantivy's parser drops the `*` of `beach*` (its tokenizer strips it) and only runs
/// regular expressions written `/.../`. Users mean a glob: each term with `*` or `?` becomes
/// that regular expression (`name:beach*` -> `name:/beach.*/`), lower-cased as the indexed
/// words are. `field:*` (has a value), a lone `*` and quoted phrases are left alone.
fn glob_wildcards(query: &str) -> String {
    let mut out = String::with_capacity(query.len() + 8);
    let mut term = String::new();
    let mut in_quotes = false;
    let flush = |term: &mut String, out: &mut String| {
        out.push_str(&glob_term(term));
        term.clear();
    };
    for c in query.chars() {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        if !in_quotes && (c.is_whitespace() || c == '(' || c == ')') {
            flush(&mut term, &mut out);
            out.push(c);
        } else {
            term.push(c);
        }
    }
    flush(&mut term, &mut out);
    out
}

fn glob_term(term: &str) -> String {
    if term.starts_with('"') || !(term.contains('*') || term.contains('?')) {
        return term.to_string();
    }
    let (sign, rest) = match term.strip_prefix(['-', '+']) {
        Some(rest) => (&term[..1], rest),
        None => ("", term),
    };
    let (field, pattern) = match rest.split_once(':') {
        Some((field, pattern)) => (format!("{field}:"), pattern),
        None => (String::new(), rest),
    };
    if pattern == "*" || pattern.is_empty() {
        return term.to_string();
    }
    let mut regex = String::new();
    for c in pattern.to_lowercase().chars() {
        match c {
            '*' => regex.push_str(".*"),
            '?' => regex.push('.'),
            '/' => regex.push_str("\\/"),
            c if c.is_alphanumeric() => regex.push(c),
            c => {
                regex.push('\\');
                regex.push(c);
            }
        }
    }
    format!("{sign}{field}/{regex}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, tags: &[&str]) -> FilterRow {
        FilterRow {
            path: path.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn queries_narrow_by_name_folder_extension_and_tag() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = FilterIndex::open(dir.path()).unwrap();
        assert_eq!(index.built_from().unwrap(), None);
        index
            .rebuild(
                &[
                    row("/p/2023/beach_sunset.JPG", &["2023", "family"]),
                    row("/p/2023/beach.png", &["2023"]),
                    row("/p/old/Beachhouse.jpg", &[]),
                    row("/p/old/city.jpg", &["2023"]),
                ],
                7,
            )
            .unwrap();
        assert_eq!(index.built_from().unwrap(), Some(7));
        let paths = |q: &str| {
            let mut v: Vec<String> = index.matching_paths(q).unwrap().into_iter().collect();
            v.sort();
            v
        };
        assert_eq!(
            paths("name:beach* AND tag:2023 -ext:png"),
            ["/p/2023/beach_sunset.JPG"]
        );
        assert_eq!(paths("name:beach*").len(), 3);
        assert_eq!(paths("name:bea*"), paths("name:beach*"));
        assert_eq!(paths("name:*house"), ["/p/old/Beachhouse.jpg"]);
        assert_eq!(paths("tag:20?3").len(), 3);
        assert_eq!(
            paths("dir:old"),
            ["/p/old/Beachhouse.jpg", "/p/old/city.jpg"]
        );
        assert_eq!(paths("tag:family"), ["/p/2023/beach_sunset.JPG"]);
        assert_eq!(paths("ext:jpg").len(), 3);
        assert!(index.matching_paths("name:(").is_err());
        assert_eq!(
            glob_wildcards("-name:Be?ch* AND tag:*"),
            "-name:/be.ch.*/ AND tag:*"
        );

        // Rebuilding replaces everything.
        index.rebuild(&[row("/p/new.jpg", &[])], 8).unwrap();
        assert!(index.contains("/p/new.jpg").unwrap());
        assert!(!index.contains("/p/old/city.jpg").unwrap());
        let reopened = FilterIndex::open(dir.path()).unwrap();
        assert_eq!(reopened.built_from().unwrap(), Some(8));
    }

    /// Another process rebuilding the same index holds tantivy's writer lock for a moment: a
    /// rebuild waits for it instead of failing (the soak met `LockBusy` beside the daemon).
    #[test]
    fn a_rebuild_waits_for_another_writer_of_the_same_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = FilterIndex::open(dir.path()).unwrap();
        index.rebuild(&[row("/p/a.jpg", &[])], 1).unwrap();
        let other = FilterIndex::open(dir.path()).unwrap();
        let holder: tantivy::IndexWriter =
            other.index.writer_with_num_threads(1, 15_000_000).unwrap();
        let released = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(holder);
        });
        index.rebuild(&[row("/p/b.jpg", &[])], 2).unwrap();
        released.join().unwrap();
        assert_eq!(index.built_from().unwrap(), Some(2));
        assert!(index.contains("/p/b.jpg").unwrap());
    }
}
