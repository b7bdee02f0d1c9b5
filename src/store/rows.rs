//! What a table holds, and its Arrow form: the `Row` of one indexed file, the table schema,
//! and the conversions between rows and Arrow record batches (the only place that knows the
//! column names and types).

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::types::Float32Type;
use arrow_array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int32Array, Int64Array,
    ListArray, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::error::{Error, Result};
use crate::metadata::{Gps, Meta, Taken, TakenFrom};

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
    /// What the photo says about itself (format, EXIF). Rows of databases written before
    /// imgsim kept it have none until the next pass reads it.
    #[serde(default)]
    pub meta: Meta,
}

/// What the indexer compares with the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub size: u64,
    pub mtime_ns: i64,
    pub hash: String,
    /// Whether the row's metadata was read (see [`Meta::is_read`]).
    pub described: bool,
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
    pub meta: Meta,
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
    let mut fields = vec![
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
    ];
    fields.extend(meta_fields());
    Arc::new(Schema::new(fields))
}

/// The metadata columns (format 3), all nullable: added to older tables as nulls, in place,
/// and filled by the next pass (see `store::format`). After the vector, in this order.
pub fn meta_fields() -> Vec<Field> {
    vec![
        Field::new("format", DataType::Utf8, true),
        Field::new("taken_local_ns", DataType::Int64, true),
        Field::new("taken_offset_min", DataType::Int32, true),
        Field::new("taken_source", DataType::Utf8, true),
        Field::new("make", DataType::Utf8, true),
        Field::new("model", DataType::Utf8, true),
        Field::new("lens", DataType::Utf8, true),
        Field::new("focal_mm", DataType::Float32, true),
        Field::new("iso", DataType::UInt32, true),
        Field::new("exposure_s", DataType::Float32, true),
        Field::new("gps_lat", DataType::Float64, true),
        Field::new("gps_lon", DataType::Float64, true),
        Field::new("gps_alt", DataType::Float64, true),
        Field::new("orientation", DataType::UInt32, true),
        Field::new("pair", DataType::Utf8, true),
    ]
}

/// The metadata column names, for queries that read them.
pub fn meta_columns() -> Vec<String> {
    meta_fields().iter().map(|f| f.name().clone()).collect()
}

/// The metadata of row `i` of a batch; none where the batch has no metadata columns (a
/// table of an older database, read where it cannot be upgraded).
pub fn meta_of(batch: &RecordBatch, i: usize) -> Meta {
    fn get<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Option<&'a T> {
        batch.column_by_name(name)?.as_any().downcast_ref::<T>()
    }
    fn text(batch: &RecordBatch, name: &str, i: usize) -> Option<String> {
        let a = get::<StringArray>(batch, name)?;
        a.is_valid(i).then(|| a.value(i).to_string())
    }
    macro_rules! value {
        ($ty:ty, $name:expr) => {
            get::<$ty>(batch, $name).and_then(|a| a.is_valid(i).then(|| a.value(i)))
        };
    }
    let taken = match (
        value!(Int64Array, "taken_local_ns"),
        text(batch, "taken_source", i).and_then(|s| TakenFrom::parse(&s)),
    ) {
        (Some(local_ns), Some(source)) => Some(Taken {
            local_ns,
            offset_min: value!(Int32Array, "taken_offset_min"),
            source,
        }),
        _ => None,
    };
    let gps = match (
        value!(Float64Array, "gps_lat"),
        value!(Float64Array, "gps_lon"),
    ) {
        (Some(lat), Some(lon)) => Some(Gps {
            lat,
            lon,
            alt: value!(Float64Array, "gps_alt"),
        }),
        _ => None,
    };
    Meta {
        format: text(batch, "format", i),
        taken,
        make: text(batch, "make", i),
        model: text(batch, "model", i),
        lens: text(batch, "lens", i),
        focal_mm: value!(Float32Array, "focal_mm"),
        iso: value!(UInt32Array, "iso"),
        exposure_s: value!(Float32Array, "exposure_s"),
        gps,
        orientation: value!(UInt32Array, "orientation").and_then(|o| u16::try_from(o).ok()),
        pair: text(batch, "pair", i),
    }
}

/// The metadata columns of `rows`, in [`meta_fields`]' order.
fn meta_arrays(rows: &[&Row]) -> Vec<ArrayRef> {
    let metas: Vec<&Meta> = rows.iter().map(|r| &r.meta).collect();
    let strings = |f: fn(&Meta) -> Option<&str>| -> ArrayRef {
        Arc::new(StringArray::from_iter(metas.iter().map(|m| f(m))))
    };
    vec![
        strings(|m| m.format.as_deref()),
        Arc::new(Int64Array::from_iter(
            metas.iter().map(|m| m.taken.map(|t| t.local_ns)),
        )),
        Arc::new(Int32Array::from_iter(
            metas.iter().map(|m| m.taken.and_then(|t| t.offset_min)),
        )),
        strings(|m| m.taken.map(|t| t.source.as_str())),
        strings(|m| m.make.as_deref()),
        strings(|m| m.model.as_deref()),
        strings(|m| m.lens.as_deref()),
        Arc::new(Float32Array::from_iter(metas.iter().map(|m| m.focal_mm))),
        Arc::new(UInt32Array::from_iter(metas.iter().map(|m| m.iso))),
        Arc::new(Float32Array::from_iter(metas.iter().map(|m| m.exposure_s))),
        Arc::new(Float64Array::from_iter(
            metas.iter().map(|m| m.gps.map(|g| g.lat)),
        )),
        Arc::new(Float64Array::from_iter(
            metas.iter().map(|m| m.gps.map(|g| g.lon)),
        )),
        Arc::new(Float64Array::from_iter(
            metas.iter().map(|m| m.gps.and_then(|g| g.alt)),
        )),
        Arc::new(UInt32Array::from_iter(
            metas.iter().map(|m| m.orientation.map(u32::from)),
        )),
        strings(|m| m.pair.as_deref()),
    ]
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
    // A listing reads rows without their vectors (`ModelTable::listing`).
    let vectors = batch
        .column_by_name("vector")
        .and_then(|c| c.as_any().downcast_ref::<FixedSizeListArray>());
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
            vector: vectors.map(|v| vector(v, i)).unwrap_or_default(),
            meta: meta_of(batch, i),
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
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.path))) as ArrayRef,
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
        ]
        .into_iter()
        .chain(meta_arrays(rows))
        .collect(),
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
            meta: Meta {
                format: Some("jpeg".into()),
                taken: Some(Taken {
                    local_ns: 1_685_579_400_000_000_000,
                    offset_min: Some(120),
                    source: TakenFrom::Exif,
                }),
                make: Some("Google".into()),
                model: Some("Pixel 7".into()),
                lens: None,
                focal_mm: Some(6.8),
                iso: Some(100),
                exposure_s: Some(0.01),
                gps: Some(Gps {
                    lat: -33.85,
                    lon: 151.2,
                    alt: None,
                }),
                orientation: Some(6),
                pair: Some("/p/it's.CR2".into()),
            },
        };
        let empty = Row {
            tags: Vec::new(),
            path: "/q".into(),
            meta: Meta::default(),
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
