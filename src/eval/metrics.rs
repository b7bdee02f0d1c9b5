//! Copy-detection metrics exactly as the official DISC21 evaluation computes them
//! (`facebookresearch/isc2021`, `isc/metrics.py` and `isc/io.py`), plus the two numbers of the
//! published CLIP-vs-DINOv2 comparison (top-1 and top-3 accuracy).
//!
//! - micro-AP: every prediction of every query pooled and sorted by decreasing score, ties
//!   broken pessimistically (negatives first); `sum (recall_i - recall_{i-1}) * precision_i`,
//!   recall divided by the number of ground-truth pairs.
//! - recall at precision 0.9: the highest recall where precision >= 0.9, and the score there.
//! - recall at rank 1 and 10, per ground-truth pair: rank = the number of that query's
//!   predictions scoring at least as high as the true reference, minus one.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// A query and its true reference (`query_id,reference_id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroundTruth {
    pub query: String,
    pub reference: String,
}

/// One predicted match (`query_id,reference_id,score`); higher scores are more similar.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub query: String,
    pub reference: String,
    pub score: f64,
}

/// A ground-truth file: the pairs, and every query it names (distractors included).
#[derive(Debug, Clone, Default)]
pub struct GroundTruthFile {
    pub pairs: Vec<GroundTruth>,
    /// Queries whose reference is empty: copies of nothing in the pool.
    pub distractors: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{}, line {line}: {reason}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("the predictions hold the pair ({query}, {reference}) more than once")]
    Duplicate { query: String, reference: String },
    #[error("the ground truth has no query with a reference, so recall is undefined")]
    NoGroundTruth,
}

/// Everything the official script reports, and the published comparison's accuracies.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    /// Micro average precision (muAP).
    pub micro_ap: f64,
    /// Highest recall at precision >= 0.9; `None` when precision never reaches 0.9.
    pub recall_at_p90: Option<f64>,
    /// The score threshold of that operating point.
    pub threshold_at_p90: Option<f64>,
    pub recall_at_rank1: f64,
    pub recall_at_rank10: f64,
    /// Share of the queries with a true reference whose top prediction is one (ties count
    /// against: a wrong reference with the same score ranks first).
    pub accuracy_top1: f64,
    /// The same with the true reference among the top three.
    pub accuracy_top3: f64,
    pub ground_truth_pairs: usize,
    pub predictions: usize,
    /// The precision-recall curve, one point per prediction in score order (for the chart;
    /// skipped in JSON output).
    #[serde(skip)]
    pub curve: Vec<CurvePoint>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct CurvePoint {
    pub recall: f64,
    pub precision: f64,
    pub score: f64,
}

/// Scores predictions against ground truth, as `isc.metrics.evaluate` does.
pub fn evaluate(
    ground_truth: &[GroundTruth],
    predictions: &[Prediction],
) -> Result<Metrics, MetricsError> {
    if ground_truth.is_empty() {
        return Err(MetricsError::NoGroundTruth);
    }
    check_duplicates(predictions)?;
    let positives: HashSet<(&str, &str)> = ground_truth
        .iter()
        .map(|g| (g.query.as_str(), g.reference.as_str()))
        .collect();
    let mut scored: Vec<(f64, bool)> = predictions
        .iter()
        .map(|p| {
            let positive = positives.contains(&(p.query.as_str(), p.reference.as_str()));
            (p.score, positive)
        })
        .collect();
    // Decreasing score; within a tie, negatives first (the worst possible AP).
    // (Python's comparison: -0.0 ties with 0.0, hence not `total_cmp`; NaN never gets here.)
    scored.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.1.cmp(&b.1))
    });

    let n_gt = ground_truth.len() as f64;
    let mut curve = Vec::with_capacity(scored.len());
    let (mut true_positives, mut micro_ap, mut previous_recall) = (0usize, 0.0, 0.0);
    for (i, &(score, positive)) in scored.iter().enumerate() {
        true_positives += usize::from(positive);
        let precision = true_positives as f64 / (i + 1) as f64;
        let recall = true_positives as f64 / n_gt;
        micro_ap += (recall - previous_recall) * precision;
        previous_recall = recall;
        curve.push(CurvePoint {
            recall,
            precision,
            score,
        });
    }

    let best_p90 = operating_point(&curve, 0.9);

    let ranks = true_reference_ranks(ground_truth, predictions);
    let share = |hit: &dyn Fn(usize) -> bool| {
        ranks.iter().filter(|r| r.is_some_and(hit)).count() as f64 / ranks.len() as f64
    };
    let (accuracy_top1, accuracy_top3) = query_accuracies(ground_truth, &ranks);
    Ok(Metrics {
        micro_ap,
        recall_at_p90: best_p90.map(|p| p.recall),
        threshold_at_p90: best_p90.map(|p| p.score),
        recall_at_rank1: share(&|r| r == 0),
        recall_at_rank10: share(&|r| r < 10),
        accuracy_top1,
        accuracy_top3,
        ground_truth_pairs: ground_truth.len(),
        predictions: predictions.len(),
        curve,
    })
}

/// The point of highest recall among those with precision >= `precision` (numpy's argmax over
/// the valid points, as the official script: the first one with the highest recall). Its
/// score is the threshold that keeps that precision: `dupes --calibrate` uses it too.
pub fn operating_point(curve: &[CurvePoint], precision: f64) -> Option<CurvePoint> {
    let mut best: Option<CurvePoint> = None;
    for point in curve.iter().filter(|p| p.precision >= precision) {
        if best.is_none_or(|b| point.recall > b.recall) {
            best = Some(*point);
        }
    }
    best
}

fn check_duplicates(predictions: &[Prediction]) -> Result<(), MetricsError> {
    let mut seen = HashSet::with_capacity(predictions.len());
    for p in predictions {
        if !seen.insert((p.query.as_str(), p.reference.as_str())) {
            return Err(MetricsError::Duplicate {
                query: p.query.clone(),
                reference: p.reference.clone(),
            });
        }
    }
    Ok(())
}

/// `find_tp_ranks`: per ground-truth pair, the rank of the true reference among its query's
/// predictions (`None`: not predicted).
fn true_reference_ranks(
    ground_truth: &[GroundTruth],
    predictions: &[Prediction],
) -> Vec<Option<usize>> {
    let mut by_query: HashMap<&str, Vec<&Prediction>> = HashMap::new();
    for p in predictions {
        by_query.entry(p.query.as_str()).or_default().push(p);
    }
    ground_truth
        .iter()
        .map(|g| {
            let results = by_query.get(g.query.as_str())?;
            let true_score = results.iter().find(|p| p.reference == g.reference)?.score;
            Some(results.iter().filter(|p| p.score >= true_score).count() - 1)
        })
        .collect()
}

/// The rank of the true reference of each query with one (its best, where it has several);
/// `None`: not among its predictions. Ties count against, as in the official ranks.
pub fn rank_by_query(
    ground_truth: &[GroundTruth],
    predictions: &[Prediction],
) -> HashMap<String, Option<usize>> {
    let ranks = true_reference_ranks(ground_truth, predictions);
    let mut best: HashMap<String, Option<usize>> = HashMap::new();
    for (g, rank) in ground_truth.iter().zip(ranks) {
        let entry = best.entry(g.query.clone()).or_insert(None);
        *entry = match (*entry, rank) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    best
}

/// Top-1 and top-3 accuracy over the queries that have a true reference: a query counts when
/// any of its true references ranks inside.
fn query_accuracies(ground_truth: &[GroundTruth], ranks: &[Option<usize>]) -> (f64, f64) {
    let mut best: HashMap<&str, Option<usize>> = HashMap::new();
    for (g, rank) in ground_truth.iter().zip(ranks) {
        let entry = best.entry(g.query.as_str()).or_insert(None);
        *entry = match (*entry, *rank) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let queries = best.len() as f64;
    let within = |k: usize| best.values().filter(|r| r.is_some_and(|r| r < k)).count() as f64;
    (within(1) / queries, within(3) / queries)
}

/// Reads a ground-truth CSV as `isc.io.read_ground_truth` does: `query_id,reference_id` per
/// line, the header optional, an empty reference marking a distractor query.
pub fn read_ground_truth(path: &Path) -> Result<GroundTruthFile, MetricsError> {
    let text = read(path)?;
    let mut file = GroundTruthFile::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line == "query_id,reference_id" || line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        let [query, reference] = fields[..] else {
            return Err(parse_error(path, n, "expected `query_id,reference_id`"));
        };
        if reference.is_empty() {
            file.distractors.push(query.to_string());
        } else {
            file.pairs.push(GroundTruth {
                query: query.to_string(),
                reference: reference.to_string(),
            });
        }
    }
    Ok(file)
}

/// Reads a predictions CSV as `isc.io.read_predictions` does: `query_id,reference_id,score`
/// per line, the header optional.
pub fn read_predictions(path: &Path) -> Result<Vec<Prediction>, MetricsError> {
    let text = read(path)?;
    let mut predictions = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line == "query_id,reference_id,score" || line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        let [query, reference, score] = fields[..] else {
            return Err(parse_error(
                path,
                n,
                "expected `query_id,reference_id,score`",
            ));
        };
        let score: f64 = score
            .trim()
            .parse()
            .ok()
            .filter(|s: &f64| !s.is_nan())
            .ok_or_else(|| parse_error(path, n, &format!("score `{score}` is not a number")))?;
        predictions.push(Prediction {
            query: query.to_string(),
            reference: reference.to_string(),
            score,
        });
    }
    Ok(predictions)
}

/// Writes predictions as `isc.io.write_predictions` does (header, scores with 6 decimals).
pub fn write_predictions(path: &Path, predictions: &[Prediction]) -> Result<(), MetricsError> {
    let mut text = String::from("query_id,reference_id,score\n");
    for p in predictions {
        let _ = writeln!(text, "{},{},{:.6}", p.query, p.reference, p.score);
    }
    std::fs::write(path, text).map_err(|source| MetricsError::Io {
        path: path.to_path_buf(),
        cause: source,
    })
}

/// A score as the predictions file stores it (6 decimals), so that the metrics computed in
/// memory equal those of the written file.
pub fn as_written(score: f32) -> f64 {
    format!("{score:.6}")
        .parse()
        .expect("a formatted float parses")
}

fn read(path: &Path) -> Result<String, MetricsError> {
    std::fs::read_to_string(path).map_err(|source| MetricsError::Io {
        path: path.to_path_buf(),
        cause: source,
    })
}

fn parse_error(path: &Path, line_index: usize, reason: &str) -> MetricsError {
    MetricsError::Parse {
        path: path.to_path_buf(),
        line: line_index + 1,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gt(pairs: &[(&str, &str)]) -> Vec<GroundTruth> {
        pairs
            .iter()
            .map(|(q, r)| GroundTruth {
                query: q.to_string(),
                reference: r.to_string(),
            })
            .collect()
    }

    fn preds(rows: &[(&str, &str, f64)]) -> Vec<Prediction> {
        rows.iter()
            .map(|(q, r, s)| Prediction {
                query: q.to_string(),
                reference: r.to_string(),
                score: *s,
            })
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hand_computed_micro_ap() {
        // Sorted: Q1-R1 (tp) 0.9, Q2-R9 (fp) 0.8, Q2-R2 (tp) 0.7, Q3-R3 (fp) 0.1.
        // Two of three pairs found: AP = 1/3 * 1 + 1/3 * 2/3 = 5/9.
        let g = gt(&[("Q1", "R1"), ("Q2", "R2"), ("Q4", "R4")]);
        let p = preds(&[
            ("Q2", "R9", 0.8),
            ("Q1", "R1", 0.9),
            ("Q3", "R3", 0.1),
            ("Q2", "R2", 0.7),
        ]);
        let m = evaluate(&g, &p).unwrap();
        assert!(close(m.micro_ap, 5.0 / 9.0), "{}", m.micro_ap);
        // Precision >= 0.9 only at the first prediction.
        assert_eq!(m.recall_at_p90, Some(1.0 / 3.0));
        assert_eq!(m.threshold_at_p90, Some(0.9));
        // Ranks: Q1 -> 0, Q2 -> 1, Q4 -> not predicted.
        assert!(close(m.recall_at_rank1, 1.0 / 3.0));
        assert!(close(m.recall_at_rank10, 2.0 / 3.0));
        assert!(close(m.accuracy_top1, 1.0 / 3.0));
        assert!(close(m.accuracy_top3, 2.0 / 3.0));
    }

    #[test]
    fn ties_count_against_the_predictor() {
        // All three predictions score 0.5; the true one is ranked last of the tie.
        let g = gt(&[("Q1", "R1")]);
        let p = preds(&[("Q1", "R1", 0.5), ("Q1", "R2", 0.5), ("Q1", "R3", 0.5)]);
        let m = evaluate(&g, &p).unwrap();
        assert!(close(m.micro_ap, 1.0 / 3.0));
        assert_eq!(m.recall_at_p90, None);
        assert_eq!(m.threshold_at_p90, None);
        assert_eq!(m.recall_at_rank1, 0.0);
        assert_eq!(m.recall_at_rank10, 1.0);
        assert_eq!(m.accuracy_top1, 0.0);
        assert_eq!(m.accuracy_top3, 1.0);
    }

    #[test]
    fn distractor_predictions_are_negatives_and_missing_queries_not_found() {
        let g = gt(&[("Q1", "R1"), ("Q2", "R2")]);
        // Q9 is a distractor: its confident match is a false positive ranked first.
        let p = preds(&[("Q9", "R1", 0.99), ("Q1", "R1", 0.6)]);
        let m = evaluate(&g, &p).unwrap();
        // Sorted: fp, tp: AP = 1/2 * 1/2.
        assert!(close(m.micro_ap, 0.25));
        assert_eq!(m.recall_at_p90, None);
        assert!(close(m.recall_at_rank1, 0.5));
        assert_eq!(m.ground_truth_pairs, 2);
    }

    #[test]
    fn duplicates_and_empty_ground_truth_are_errors() {
        let g = gt(&[("Q1", "R1")]);
        let p = preds(&[("Q1", "R1", 0.5), ("Q1", "R1", 0.4)]);
        assert!(matches!(
            evaluate(&g, &p),
            Err(MetricsError::Duplicate { .. })
        ));
        assert!(matches!(
            evaluate(&[], &p[..1]),
            Err(MetricsError::NoGroundTruth)
        ));
    }

    #[test]
    fn files_parse_like_the_official_reader() {
        let dir = tempfile::tempdir().unwrap();
        let gt_path = dir.path().join("gt.csv");
        std::fs::write(&gt_path, "query_id,reference_id\nQ1,R1\nQ2,\nQ3,R3\n").unwrap();
        let file = read_ground_truth(&gt_path).unwrap();
        assert_eq!(file.pairs, gt(&[("Q1", "R1"), ("Q3", "R3")]));
        assert_eq!(file.distractors, ["Q2"]);

        let p = preds(&[("Q1", "R1", 0.123_456_7), ("Q3", "R4", -0.5)]);
        let preds_path = dir.path().join("p.csv");
        write_predictions(&preds_path, &p).unwrap();
        let text = std::fs::read_to_string(&preds_path).unwrap();
        assert_eq!(
            text,
            "query_id,reference_id,score\nQ1,R1,0.123457\nQ3,R4,-0.500000\n"
        );
        let back = read_predictions(&preds_path).unwrap();
        assert_eq!(back[0].score, 0.123457);

        std::fs::write(&preds_path, "Q1,R1\n").unwrap();
        let err = read_predictions(&preds_path).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("score"), "{err}");
        std::fs::write(&preds_path, "Q1,R1,high\n").unwrap();
        assert!(read_predictions(&preds_path).is_err());
    }

    /// Agreement with the official script: `tests/fixtures/metrics/official.json` holds what
    /// `isc.metrics.evaluate` of facebookresearch/isc2021 (commit e12efd5, the version the
    /// file names) computed for each committed predictions file (`scripts/official_metrics.py`).
    #[test]
    fn equals_the_official_script_on_committed_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics");
        let official: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("official.json")).unwrap())
                .unwrap();
        assert!(official["isc2021_commit"]
            .as_str()
            .unwrap()
            .starts_with("e12efd5"));
        let truth = read_ground_truth(&dir.join("gt.csv")).unwrap();
        assert_eq!((truth.pairs.len(), truth.distractors.len()), (80, 40));
        let files = official["files"].as_object().unwrap();
        assert_eq!(files.len(), 3);
        for (name, expected) in files {
            let m = evaluate(&truth.pairs, &read_predictions(&dir.join(name)).unwrap()).unwrap();
            let check = |ours: Option<f64>, key: &str| {
                let theirs = expected[key].as_f64();
                match (ours, theirs) {
                    (Some(a), Some(b)) => assert!((a - b).abs() < 1e-6, "{name} {key}: {a} vs {b}"),
                    (a, b) => assert_eq!(a, b, "{name} {key}"),
                }
            };
            check(Some(m.micro_ap), "micro_ap");
            check(m.recall_at_p90, "recall_at_p90");
            check(m.threshold_at_p90, "threshold_at_p90");
            check(Some(m.recall_at_rank1), "recall_at_rank1");
            check(Some(m.recall_at_rank10), "recall_at_rank10");
        }
    }
}
