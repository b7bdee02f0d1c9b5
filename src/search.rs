//! `imgsim similar`: the indexed images most like a query, narrowed by a filter. Shared by
//! the command (working on the database directly) and the watch daemon's query server.

use crate::error::Result;
use crate::store::{Hit, ModelTable};

/// A search as the user asked for it.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// The query image's canonical path: if it is indexed, its stored vector is used and it is
    /// left out of the hits.
    pub path: &'a str,
    pub k: usize,
    /// tantivy query syntax over name, dir, ext and tag.
    pub filter: Option<&'a str>,
    pub min_score: Option<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    pub hits: Vec<Hit>,
    /// Rows in the table.
    pub indexed: usize,
    /// Whether the query's stored vector was used.
    pub query_indexed: bool,
}

/// Runs `query` on `table`; `embed` is called only when the query image is not indexed.
/// `filters_lock` serialises rebuilds of the filter index within one process.
pub fn similar(
    table: &ModelTable<'_>,
    query: &Query<'_>,
    embed: impl FnOnce() -> Result<Vec<f32>>,
    filters_lock: Option<&std::sync::Mutex<()>>,
) -> Result<Results> {
    let indexed = table.count()?;
    if indexed == 0 {
        return Ok(Results {
            hits: Vec::new(),
            indexed,
            query_indexed: false,
        });
    }
    // No search returns more rows than the table has (a `-k` of 2^64 - 1 is the table).
    let k = query.k.min(indexed);
    let stored = table.row(query.path)?;
    let query_indexed = stored.is_some();
    let vector = match stored {
        Some(row) => row.vector,
        None => embed()?,
    };
    let mut hits = match query.filter {
        None => table.nearest(&vector, k, Some(query.path))?,
        Some(filter) => {
            let allowed = {
                let _guard = filters_lock.map(|l| l.lock());
                table.filters()?.matching_paths(filter)?
            };
            table.nearest_among(&vector, k, Some(query.path), &allowed)?
        }
    };
    if let Some(min) = query.min_score {
        hits.retain(|h| h.score >= min);
    }
    Ok(Results {
        hits,
        indexed,
        query_indexed,
    })
}
