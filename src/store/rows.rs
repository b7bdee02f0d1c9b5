//! What a table holds, and its Arrow form: the `Row` of one indexed file, the table schema,
//! and the conversions between rows and Arrow record batches (the only place that knows the
//! column names and types).

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::types::Float32Type;
use arrow_array::{
    Array, FixedSizeListArray, Float32Array, Int64Array, ListArray, RecordBatch, StringArray,
    UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::error::{Error, Result};

/// One indexed file under one model (serialisable for the journal of `dupes --apply`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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

/// The part of a row the filters index.
#[derive(Debug, Clone)]
pub struct FilterRow {
    pub path: String,
    pub tags: Vec<String>,
}

/// Best first; equal scores by path, so that results are stable.
pub fn sort_hits(hits: &mut [Hit]) {
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.path.cmp(&b.path))
    });
}

/// SQL string literal: quotes doubled.
pub fn sql_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `column IN ('a', 'b', ...)`, for at most [`IN_CHUNK`] values.
pub fn sql_in<S: AsRef<str>>(column: &str, values: &[S]) -> String {
    let list: Vec<String> = values.iter().map(|v| sql_quote(v.as_ref())).collect();
    format!("{column} IN ({})", list.join(", "))
}

/// How many values one `IN (...)` predicate lists (and one delete commit removes): long
/// enough to batch, short enough for DataFusion's planner.
pub const IN_CHUNK: usize = 500;

pub fn schema(dim: usize) -> SchemaRef {
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

pub fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .unwrap_or_else(|| panic!("the table schema has column {name}"))
}

pub fn strings<'a>(batch: &'a RecordBatch, name: &str) -> &'a StringArray {
    column::<StringArray>(batch, name)
}

/// Row `i` of a list-of-strings column.
pub fn string_list(list: &ListArray, i: usize) -> Vec<String> {
    let values = list.value(i);
    let values = values
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("string lists");
    values.iter().flatten().map(str::to_string).collect()
}

/// Row `i` of a vector column.
pub fn vector(vectors: &FixedSizeListArray, i: usize) -> Vec<f32> {
    let values = vectors.value(i);
    let values = values
        .as_any()
        .downcast_ref::<Float32Array>()
        .expect("f32 vectors");
    values.values().to_vec()
}

pub fn rows_of(batch: &RecordBatch) -> Vec<Row> {
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
        .map(|i| Row {
            path: paths.value(i).to_string(),
            size: sizes.value(i),
            mtime_ns: mtimes.value(i),
            hash: hashes.value(i).to_string(),
            width: widths.value(i),
            height: heights.value(i),
            indexed_at: indexed.value(i),
            tags: string_list(tags, i),
            vector: vector(vectors, i),
        })
        .collect()
}

/// Rows as one record batch of a `dim`-dimensional table.
pub fn record_batch(rows: &[&Row], dim: usize) -> Result<RecordBatch> {
    if let Some(bad) = rows.iter().find(|r| r.vector.len() != dim) {
        return Err(Error::VectorSize {
            path: bad.path.clone(),
            got: bad.vector.len(),
            want: dim,
        });
    }
    let mut tags = ListBuilder::new(StringBuilder::new());
    for row in rows {
        for tag in &row.tags {
            tags.values().append_value(tag);
        }
        tags.append(true);
    }
    let batch = RecordBatch::try_new(
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
    .expect("the columns follow the schema");
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_the_arrow_round_trip() {
        let row = Row {
            path: "/p/it's.jpg".into(),
            size: 7,
            mtime_ns: -3,
            hash: "h".into(),
            width: 4,
            height: 3,
            indexed_at: 9,
            tags: vec!["a".into(), "b c".into()],
            vector: vec![0.6, 0.8],
        };
        let empty = Row {
            tags: Vec::new(),
            path: "/q".into(),
            ..row.clone()
        };
        let batch = record_batch(&[&row, &empty], 2).unwrap();
        assert_eq!(rows_of(&batch), vec![row.clone(), empty]);
        let err = record_batch(&[&row], 3).unwrap_err().to_string();
        assert!(err.contains("2-d vector for a 3-d table"), "{err}");
    }

    #[test]
    fn sql_literals_double_their_quotes() {
        assert_eq!(sql_quote("it's"), "'it''s'");
        assert_eq!(sql_in("path", &["a", "b'"]), "path IN ('a', 'b''')");
    }
}
