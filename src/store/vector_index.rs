//! The vector-index policy: when a table gets an IVF-PQ index, its shape, when new rows are
//! folded in, and when a filtered search scores its rows exactly instead. The rules are pure
//! functions (unit-tested below); the `ModelTable` methods apply them.

use lancedb::DistanceType;

use super::table::ModelTable;
use crate::error::Result;

/// IVF partitions searched per query, and Lance's re-ranking factor (candidates = k x it).
/// Starting values; the ANN benchmark tunes them against recall.
pub const NPROBES: usize = 32;
pub const REFINE_FACTOR: u32 = 8;

/// Tables from this size on get an IVF-PQ index automatically. Measured (`imgsim bench ann`,
/// 768-d, 2 cores): exact search takes 13.5 ms at 10k rows and grows linearly (172 ms at
/// 100k); with the index a query takes ~7 ms at any size, at recall@10 1.0 (README).
pub const AUTO_INDEX_ROWS: usize = 10_000;

/// PQ needs 256 rows to train its 8-bit codebooks.
pub const MIN_INDEX_ROWS: usize = 256;

/// A filter matching at most this many rows (or a twentieth of the table) is scored exactly.
const SELECTIVE_ROWS: usize = 20_000;

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

/// What a table of `rows` rows needs, given its index (`(indexed, unindexed)` rows, or none):
/// an index once it reaches [`AUTO_INDEX_ROWS`]; a refresh once the rows added since are more
/// than a tenth of it, since unindexed rows are scanned exactly by every query.
pub fn upkeep_needed(index: Option<(usize, usize)>, rows: usize) -> IndexUpkeep {
    match index {
        None if rows >= AUTO_INDEX_ROWS => IndexUpkeep::Built,
        Some((indexed, unindexed)) if unindexed > indexed / 10 => IndexUpkeep::Refreshed,
        _ => IndexUpkeep::Nothing,
    }
}

/// Whether a filter that allows `allowed` of `total` rows is cheaper to score exactly over its
/// own rows than to search the vectors and skip the rows outside it.
pub fn exact_scan_pays(allowed: usize, total: usize) -> bool {
    allowed <= SELECTIVE_ROWS.max(total / 20)
}

impl ModelTable<'_> {
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
    /// least [`MIN_INDEX_ROWS`]; with fewer, searches stay exact and nothing is built.
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

    /// Keeps the vector index worth having ([`upkeep_needed`]).
    pub fn maintain_vector_index(&self) -> Result<IndexUpkeep> {
        let upkeep = upkeep_needed(self.vector_index()?, self.count()?);
        match upkeep {
            IndexUpkeep::Built => {
                self.build_vector_index()?;
            }
            IndexUpkeep::Refreshed => self.optimize()?,
            IndexUpkeep::Nothing => {}
        }
        Ok(upkeep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_is_built_at_the_threshold_and_refreshed_past_a_tenth_unindexed() {
        assert_eq!(
            upkeep_needed(None, AUTO_INDEX_ROWS - 1),
            IndexUpkeep::Nothing
        );
        assert_eq!(upkeep_needed(None, AUTO_INDEX_ROWS), IndexUpkeep::Built);
        assert_eq!(
            upkeep_needed(Some((10_000, 1_000)), 11_000),
            IndexUpkeep::Nothing
        );
        assert_eq!(
            upkeep_needed(Some((10_000, 1_001)), 11_001),
            IndexUpkeep::Refreshed
        );
    }

    #[test]
    fn index_shape_follows_the_table() {
        assert_eq!(ivf_pq_params(10_000, 768), (100, 48));
        assert_eq!(ivf_pq_params(1_000_000, 512), (1000, 32));
        assert_eq!(ivf_pq_params(100_000_000, 384), (4096, 24));
        assert_eq!(ivf_pq_params(300, 24), (17, 3));
        assert_eq!(ivf_pq_params(300, 7), (17, 1));
    }

    #[test]
    fn selective_filters_are_scored_exactly() {
        assert!(exact_scan_pays(20_000, 30_000));
        assert!(!exact_scan_pays(20_001, 30_000));
        assert!(exact_scan_pays(50_000, 1_000_000));
        assert!(!exact_scan_pays(50_001, 1_000_000));
    }
}
