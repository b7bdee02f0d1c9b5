//! Filename and tag filters (`--where`), a tantivy index beside each Lance table.
//!
//! Lance is the source of truth; this index is derived from it. Its commit payload records
//! the Lance table version it was built from, so that a mismatch (a crash between the two
//! commits, a write by an older imgsim) is noticed on open and repaired by rebuilding.
//!
//! Fields, all searchable with tantivy's query syntax: `name` (the file name, split into words),
//! `dir` (the folders of the path), `ext` (the extension, lower case), `tag`, and what the
//! photo says about itself: `taken` (the local date and time it was taken), `camera` (make
//! and model), `lens`, `format` (by content: `jpeg`, `png`, `heic`, ...), `iso`, `focal`
//! (mm), `has` (`gps`, `camera`, `lens`, `date`: the file's own date, not its file time;
//! `pair`: a RAW + rendered file of one shot; `tag`, `taken`, `iso`, `focal`, `format`: a
//! value in that field, also written `lens:*`)
//! and `lat`/`lon`. Example: `name:beach* AND tag:2023 -ext:png`.
//!
//! Two forms are imgsim's own, rewritten into tantivy's before parsing (see [`rewrite`]):
//! dates as people write them (`taken:2023`, `taken:2023-06`, `taken:[2023-06-01 TO
//! 2023-08-31]`, `taken:>=2024-01-15`), each day from midnight to midnight of the photo's own
//! clock; and a place, `near:LAT,LON,KM`, the box of that many kilometres around a point.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tantivy::collector::DocSetCollector;
use tantivy::query::QueryParser;
use tantivy::schema::{DateOptions, Field, Schema, Value, FAST, INDEXED, STORED, STRING, TEXT};
use tantivy::{doc, Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

use super::rows::FilterRow;
use crate::error::{Error, Result};

struct Fields {
    path: Field,
    name: Field,
    dir: Field,
    ext: Field,
    tag: Field,
    taken: Field,
    camera: Field,
    lens: Field,
    format: Field,
    iso: Field,
    focal: Field,
    has: Field,
    lat: Field,
    lon: Field,
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
        taken: builder.add_date_field(
            "taken",
            DateOptions::from(INDEXED | FAST)
                .set_precision(tantivy::schema::DateTimePrecision::Seconds),
        ),
        camera: builder.add_text_field("camera", TEXT),
        lens: builder.add_text_field("lens", TEXT),
        format: builder.add_text_field("format", TEXT),
        iso: builder.add_u64_field("iso", INDEXED | FAST),
        focal: builder.add_f64_field("focal", INDEXED | FAST),
        has: builder.add_text_field("has", STRING),
        lat: builder.add_f64_field("lat", INDEXED | FAST),
        lon: builder.add_f64_field("lon", INDEXED | FAST),
    };
    (builder.build(), fields)
}

/// A rebuild writes one segment from scratch: one indexing thread and one merge thread (never
/// used: no merge policy), instead of tantivy's four, since every thread is started anew for
/// each rebuild (a daemon under constant change rebuilt several times a second).
fn writer_options() -> tantivy::indexer::IndexWriterOptions {
    tantivy::indexer::IndexWriterOptions::builder()
        .num_worker_threads(1)
        .num_merge_threads(1)
        .memory_budget_per_thread(50_000_000)
        .build()
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
        let mut index =
            Index::open_or_create(directory, schema).map_err(|e| filter_error(dir, e))?;
        // The documents are tiny: compressed on the indexing thread, not one started for it.
        index.settings_mut().docstore_compress_dedicated_thread = false;
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
        let mut index = Index::create_in_ram(schema);
        index.settings_mut().docstore_compress_dedicated_thread = false;
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
            match self.index.writer_with_options(writer_options()) {
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
        writer.set_merge_policy(Box::new(tantivy::merge_policy::NoMergePolicy));
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
        let (f, meta) = (&self.fields, &row.meta);
        if !row.tags.is_empty() {
            doc.add_text(f.has, "tag");
        }
        if let Some(format) = &meta.format {
            doc.add_text(f.has, "format");
            for name in format_names(format) {
                doc.add_text(f.format, name);
            }
        }
        if let Some(taken) = meta.taken {
            doc.add_text(f.has, "taken");
            doc.add_date(
                f.taken,
                tantivy::DateTime::from_timestamp_nanos(taken.local_ns),
            );
            if taken.source == crate::metadata::TakenFrom::Exif {
                doc.add_text(f.has, "date");
            }
        }
        if let Some(camera) = meta.camera() {
            doc.add_text(f.camera, camera);
            doc.add_text(f.has, "camera");
        }
        if let Some(lens) = &meta.lens {
            doc.add_text(f.lens, lens);
            doc.add_text(f.has, "lens");
        }
        if let Some(iso) = meta.iso {
            doc.add_text(f.has, "iso");
            doc.add_u64(f.iso, u64::from(iso));
        }
        if let Some(focal) = meta.focal_mm {
            doc.add_text(f.has, "focal");
            doc.add_f64(f.focal, f64::from(focal));
        }
        if meta.pair.is_some() {
            doc.add_text(f.has, "pair");
        }
        if let Some(gps) = meta.gps {
            doc.add_f64(f.lat, gps.lat);
            doc.add_f64(f.lon, gps.lon);
            doc.add_text(f.has, "gps");
        }
        doc
    }

    /// The paths that match a query in tantivy's syntax (`name:beach* AND tag:2023 -ext:png`).
    pub fn matching_paths(&self, query: &str) -> Result<HashSet<String>> {
        let f = &self.fields;
        let mut parser = QueryParser::for_index(&self.index, vec![f.name, f.dir, f.tag]);
        // `beach*` is a wildcard, which tantivy runs as a regular expression.
        parser.allow_regexes();
        let refused = |reason: String| Error::Query {
            query: query.to_string(),
            reason,
        };
        let rewritten = rewrite(query).map_err(refused)?;
        let parsed = parser
            .parse_query(&glob_wildcards(&rewritten))
            .map_err(|e| refused(e.to_string()))?;
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

/// The names a format is found by: its own and the usual file extensions for it.
fn format_names(format: &str) -> Vec<&str> {
    match format {
        "jpeg" => vec!["jpeg", "jpg"],
        "tiff" => vec!["tiff", "tif"],
        "heic" => vec!["heic", "heif"],
        "heif" => vec!["heif"],
        other => vec![other],
    }
}

/// The earliest and latest moments tantivy's dates hold (nanoseconds fit in an i64 between
/// 1677 and 2262), for open ends of a date range.
const EARLIEST: &str = "1678-01-01T00:00:00Z";
const LATEST: &str = "2261-12-31T00:00:00Z";

/// Rewrites imgsim's own forms into tantivy's syntax: dates (`taken:2023`,
/// `taken:[2023-06-01 TO 2023-08-31]`, `taken:>=2024-01`) into ranges of RFC 3339 moments,
/// and `near:LAT,LON,KM` into a box of `lat` and `lon` ranges. Everything else is left as it
/// is. The error says what was expected.
pub fn rewrite(query: &str) -> std::result::Result<String, String> {
    use std::sync::LazyLock;
    static RANGE: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"(?i)\btaken:([\[{])\s*(\S+?)\s+TO\s+(\S+?)\s*([\]}])").unwrap()
    });
    static COMPARE: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"(?i)\btaken:(>=|<=|>|<)([^\s()]+)").unwrap());
    static ONE: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"(?i)\btaken:([^\s()\[{<>*][^\s()]*)").unwrap());
    static NEAR: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"(?i)\bnear:([^\s()]+)").unwrap());

    let mut error = None;
    let mut fail = |e: String| {
        error.get_or_insert(e);
        String::new()
    };
    let text = RANGE.replace_all(query, |c: &regex::Captures| {
        let low = match (&c[1], &c[2]) {
            (_, "*") => Ok(EARLIEST.to_string()),
            ("[", spec) => period(spec).map(|(start, _)| start),
            (_, spec) => period(spec).map(|(_, end)| end),
        };
        let high = match (&c[4], &c[3]) {
            (_, "*") => Ok(LATEST.to_string()),
            ("]", spec) => period(spec).map(|(_, end)| end),
            (_, spec) => period(spec).map(|(start, _)| start),
        };
        match (low, high) {
            (Ok(low), Ok(high)) => format!("taken:[{low} TO {high}}}"),
            (Err(e), _) | (_, Err(e)) => fail(e),
        }
    });
    let text = COMPARE.replace_all(&text, |c: &regex::Captures| match (period(&c[2]), &c[1]) {
        (Ok((start, _)), ">=") => format!("taken:[{start} TO {LATEST}}}"),
        (Ok((_, end)), ">") => format!("taken:[{end} TO {LATEST}}}"),
        (Ok((start, _)), "<") => format!("taken:[{EARLIEST} TO {start}}}"),
        (Ok((_, end)), _) => format!("taken:[{EARLIEST} TO {end}}}"),
        (Err(e), _) => fail(e),
    });
    let text = ONE.replace_all(&text, |c: &regex::Captures| match period(&c[1]) {
        Ok((start, end)) => format!("taken:[{start} TO {end}}}"),
        Err(e) => fail(e),
    });
    let text = NEAR.replace_all(&text, |c: &regex::Captures| match near(&c[1]) {
        Ok(boxed) => boxed,
        Err(e) => fail(e),
    });
    // tantivy answers `field:*` only for fast fields: the index says instead which fields a
    // photo has a value in (`has:`).
    static ANY: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"(?i)\b(tag|camera|lens|taken|iso|focal|format):\*([\s)]|$)").unwrap()
    });
    let text = ANY.replace_all(&text, |c: &regex::Captures| {
        format!("has:{}{}", c[1].to_lowercase(), &c[2])
    });
    match error {
        Some(e) => Err(e),
        None => Ok(text.into_owned()),
    }
}

/// The moments a date as people write it starts and ends (end exclusive): `2023` (the
/// year), `2023-06` (the month), `2023-06-01` (the day), `2023-06-01T14:30` (the minute),
/// `2023-06-01T14:30:15` (the second).
fn period(spec: &str) -> std::result::Result<(String, String), String> {
    use chrono::{Datelike, Months, NaiveDate, NaiveDateTime, TimeDelta};
    let refuse = || {
        format!(
            "`{spec}` is not a date; `taken:` takes 2023, 2023-06, 2023-06-01 or \
             2023-06-01T14:30 (the photo's own clock), alone, in a range \
             ([2023-06-01 TO 2023-08-31]) or after >, >=, < or <="
        )
    };
    let (start, end): (NaiveDateTime, NaiveDateTime) = if let Ok(year) = spec.parse::<i32>() {
        let start = NaiveDate::from_ymd_opt(year, 1, 1).ok_or_else(refuse)?;
        let end = start.with_year(year + 1).ok_or_else(refuse)?;
        (start.into(), end.into())
    } else if let Ok(day) = NaiveDate::parse_from_str(spec, "%Y-%m-%d") {
        let start: NaiveDateTime = day.into();
        (start, start + TimeDelta::days(1))
    } else if let Ok(month) = NaiveDate::parse_from_str(&format!("{spec}-01"), "%Y-%m-%d") {
        let end = month
            .checked_add_months(Months::new(1))
            .ok_or_else(refuse)?;
        (month.into(), end.into())
    } else if let Ok(second) = NaiveDateTime::parse_from_str(spec, "%Y-%m-%dT%H:%M:%S") {
        (second, second + TimeDelta::seconds(1))
    } else if let Ok(minute) = NaiveDateTime::parse_from_str(spec, "%Y-%m-%dT%H:%M") {
        (minute, minute + TimeDelta::minutes(1))
    } else {
        return Err(refuse());
    };
    let in_range = |t: &NaiveDateTime| (1678..=2261).contains(&t.year());
    if !in_range(&start) || !in_range(&end) {
        return Err(format!("`{spec}`: dates between 1678 and 2261 only"));
    }
    let rfc = |t: NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    Ok((rfc(start), rfc(end)))
}

/// `near:LAT,LON,KM` as a box of latitude and longitude ranges (degrees), split in two where
/// it crosses the 180th meridian.
fn near(spec: &str) -> std::result::Result<String, String> {
    let refuse = || {
        format!(
            "`near:{spec}`: expected near:LATITUDE,LONGITUDE,KILOMETRES in degrees (north and \
             east positive), e.g. near:48.8584,2.2945,5"
        )
    };
    let parts: Vec<f64> = spec
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| refuse())?;
    let [lat, lon, km] = parts[..] else {
        return Err(refuse());
    };
    if !(-90.0..=90.0).contains(&lat)
        || !(-180.0..=180.0).contains(&lon)
        || !km.is_finite()
        || km < 0.0
    {
        return Err(refuse());
    }
    const KM_PER_DEGREE: f64 = 111.32;
    let dlat = km / KM_PER_DEGREE;
    let (south, north) = ((lat - dlat).max(-90.0), (lat + dlat).min(90.0));
    // Degrees of longitude shrink with the cosine of the latitude; near a pole, or for a
    // box wider than the world, every longitude.
    let widest = lat.abs().max(south.abs()).max(north.abs());
    let cos = widest.to_radians().cos();
    let dlon = if cos <= 1e-9 {
        360.0
    } else {
        km / (KM_PER_DEGREE * cos)
    };
    let lat_range = format!("lat:[{south} TO {north}]");
    if dlon >= 180.0 {
        return Ok(format!("({lat_range} AND lon:[-180 TO 180])"));
    }
    let (west, east) = (lon - dlon, lon + dlon);
    let lon_range = if west < -180.0 {
        format!("(lon:[{} TO 180] OR lon:[-180 TO {east}])", west + 360.0)
    } else if east > 180.0 {
        format!("(lon:[{west} TO 180] OR lon:[-180 TO {}])", east - 360.0)
    } else {
        format!("lon:[{west} TO {east}]")
    };
    Ok(format!("({lat_range} AND {lon_range})"))
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
    // `*` alone, or as an open end of a range (`[400 TO *]`, `[* TO 2023]`), is tantivy's.
    let open_end = ["*]", "*}", "[*", "{*"].contains(&pattern);
    if pattern == "*" || pattern.is_empty() || open_end {
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
            meta: Default::default(),
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
        assert_eq!(paths("tag:*").len(), 3);
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

    fn photo(path: &str, meta: crate::metadata::Meta) -> FilterRow {
        FilterRow {
            path: path.into(),
            tags: Vec::new(),
            meta,
        }
    }

    fn taken_at(local: &str, offset_min: Option<i32>) -> Option<crate::metadata::Taken> {
        let local = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S").unwrap();
        Some(crate::metadata::Taken {
            local_ns: local.and_utc().timestamp_nanos_opt().unwrap(),
            offset_min,
            source: crate::metadata::TakenFrom::Exif,
        })
    }

    #[test]
    fn queries_narrow_by_date_camera_lens_format_and_place() {
        use crate::metadata::{Gps, Meta};
        let dir = tempfile::tempdir().unwrap();
        let mut index = FilterIndex::open(dir.path()).unwrap();
        let rows = [
            // Just after midnight on 1 June in Paris: still 31 May in UTC.
            photo(
                "/p/paris.heic",
                Meta {
                    format: Some("heic".into()),
                    taken: taken_at("2023-06-01 00:30:00", Some(120)),
                    make: Some("Apple".into()),
                    model: Some("iPhone 13".into()),
                    lens: Some("iPhone 13 back dual wide camera 5.1mm f/1.6".into()),
                    gps: Some(Gps {
                        lat: 48.8584,
                        lon: 2.2945,
                        alt: Some(35.0),
                    }),
                    iso: Some(50),
                    ..Meta::default()
                },
            ),
            // Just before midnight on 31 May in New York: already 1 June in UTC.
            photo(
                "/p/newyork.jpg",
                Meta {
                    format: Some("jpeg".into()),
                    taken: taken_at("2023-05-31 23:30:00", Some(-240)),
                    make: Some("Google".into()),
                    model: Some("Pixel 7".into()),
                    gps: Some(Gps {
                        lat: 40.6892,
                        lon: -74.0445,
                        alt: None,
                    }),
                    iso: Some(800),
                    ..Meta::default()
                },
            ),
            photo(
                "/p/fiji.jpg",
                Meta {
                    format: Some("jpeg".into()),
                    taken: taken_at("2024-01-15 12:00:00", None),
                    gps: Some(Gps {
                        lat: -17.8,
                        lon: 179.9,
                        alt: None,
                    }),
                    ..Meta::default()
                },
            ),
            photo(
                "/p/scan.png",
                Meta {
                    format: Some("png".into()),
                    taken: Some(crate::metadata::Taken {
                        source: crate::metadata::TakenFrom::File,
                        ..taken_at("2023-08-31 23:59:59", Some(0)).unwrap()
                    }),
                    ..Meta::default()
                },
            ),
            // A row written before imgsim kept metadata.
            photo("/p/old.jpg", Meta::default()),
        ];
        index.rebuild(&rows, 1).unwrap();
        let paths = |q: &str| {
            let mut v: Vec<String> = index
                .matching_paths(q)
                .unwrap_or_else(|e| panic!("{q}: {e}"))
                .into_iter()
                .map(|p| p.trim_start_matches("/p/").to_string())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            paths("taken:2023"),
            ["newyork.jpg", "paris.heic", "scan.png"]
        );
        assert_eq!(paths("taken:2023-06-01"), ["paris.heic"]);
        assert_eq!(paths("taken:2023-05"), ["newyork.jpg"]);
        assert_eq!(
            paths("taken:[2023-06-01 TO 2023-08-31]"),
            ["paris.heic", "scan.png"]
        );
        assert_eq!(
            paths("taken:{2023-06-01 TO 2023-08-31}"),
            Vec::<String>::new()
        );
        assert_eq!(paths("taken:[* TO 2023-05-31]"), ["newyork.jpg"]);
        assert_eq!(paths("taken:>=2024"), ["fiji.jpg"]);
        assert_eq!(paths("taken:<2023-06"), ["newyork.jpg"]);
        assert_eq!(paths("taken:2023-06-01T00:30"), ["paris.heic"]);
        assert_eq!(
            paths("(taken:2024 OR taken:2023-05)"),
            ["fiji.jpg", "newyork.jpg"]
        );
        assert_eq!(paths("camera:pixel*"), ["newyork.jpg"]);
        assert_eq!(paths("camera:apple"), ["paris.heic"]);
        assert_eq!(paths("camera:\"iphone 13\""), ["paris.heic"]);
        assert_eq!(paths("lens:*"), ["paris.heic"]);
        assert_eq!(paths("(camera:* AND iso:*)"), ["newyork.jpg", "paris.heic"]);
        assert_eq!(paths("dir:p -taken:*"), ["old.jpg"]);
        assert_eq!(paths("has:lens"), ["paris.heic"]);
        assert_eq!(paths("has:gps"), ["fiji.jpg", "newyork.jpg", "paris.heic"]);
        assert_eq!(paths("has:date -has:gps"), Vec::<String>::new());
        assert_eq!(paths("dir:p -has:date"), ["old.jpg", "scan.png"]);
        assert_eq!(paths("format:heic"), ["paris.heic"]);
        assert_eq!(paths("format:jpg"), ["fiji.jpg", "newyork.jpg"]);
        assert_eq!(
            paths("format:jpeg AND has:gps"),
            ["fiji.jpg", "newyork.jpg"]
        );
        assert_eq!(paths("iso:[100 TO 1600]"), ["newyork.jpg"]);
        assert_eq!(paths("iso:[100 TO *]"), ["newyork.jpg"]);
        assert_eq!(paths("iso:[* TO 100]"), ["paris.heic"]);
        // 5 km around the Eiffel tower; across the 180th meridian; the southern hemisphere.
        assert_eq!(paths("near:48.86,2.29,5"), ["paris.heic"]);
        assert_eq!(
            paths("near:48.86,2.29,5 OR near:40.7,-74.0,10"),
            ["newyork.jpg", "paris.heic"]
        );
        assert_eq!(paths("near:-17.8,-179.95,20"), ["fiji.jpg"]);
        assert_eq!(paths("near:-17.8,179.9,1"), ["fiji.jpg"]);
        assert_eq!(paths("near:0,0,100"), Vec::<String>::new());

        for bad in [
            "taken:2023-13",
            "taken:yesterday",
            "near:1,2",
            "near:91,0,1",
            "taken:[2023 TO x]",
        ] {
            let err = index.matching_paths(bad).unwrap_err().to_string();
            assert!(
                err.contains(
                    bad.split(':')
                        .nth(1)
                        .unwrap()
                        .trim_start_matches('[')
                        .split(' ')
                        .next()
                        .unwrap()
                ),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn dates_are_the_periods_people_mean() {
        assert_eq!(
            period("2023").unwrap(),
            ("2023-01-01T00:00:00Z".into(), "2024-01-01T00:00:00Z".into())
        );
        assert_eq!(
            period("2024-02").unwrap(),
            ("2024-02-01T00:00:00Z".into(), "2024-03-01T00:00:00Z".into())
        );
        assert_eq!(
            period("2023-12-31").unwrap(),
            ("2023-12-31T00:00:00Z".into(), "2024-01-01T00:00:00Z".into())
        );
        assert!(period("2023-02-30").is_err());
        assert!(period("1500").is_err());
        assert_eq!(
            rewrite("name:x AND taken:2023").unwrap(),
            "name:x AND taken:[2023-01-01T00:00:00Z TO 2024-01-01T00:00:00Z}"
        );
        assert!(rewrite("tag:taken:2023x").is_err());
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
