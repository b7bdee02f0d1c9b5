//! `imgsim eval`: runs benchmarks model by model and renders their reports.

use std::path::{Path, PathBuf};
use std::time::Instant;

use imgsim::embed::Embedder;
use imgsim::eval::cache::EmbeddingCache;
use imgsim::eval::coco;
use imgsim::eval::disc21::{self, CopyDetection, Layout, QuerySet, Selection};
use imgsim::eval::metrics::{self, Metrics};
use imgsim::eval::report::{self, file_label, write_reports, Chart, EvalLine};
use imgsim::eval::synth::{self, EditRecall, SynthOptions};
use imgsim::models::{self, Model, Precision, TextModel, WeightsSource};

use super::common::{print_json, Bar};
use super::Outcome;

#[derive(clap::Subcommand, Debug)]
pub enum EvalCommand {
    /// Copy detection on DISC21: which model finds the reference each query was copied from.
    Disc21(Disc21Args),
    /// Score a predictions file (query_id,reference_id,score) against a ground truth with the
    /// official DISC21 metrics.
    Score(ScoreArgs),
    /// Image-to-image retrieval on COCO: relevant = sharing an object category.
    Coco(CocoArgs),
    /// Build a DISC21-style copy-detection benchmark from any folder of photos (seeded edits
    /// of each photo, distractors from held-out photos) and evaluate it.
    Synth(SynthArgs),
}

/// Which models an eval compares, and how they run.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalModelArgs {
    /// Models to compare, comma-separated (clip, dinov2, clip-vit-l14, dinov2-small, ...,
    /// phash). Default: phash and every model whose weights are in the Hugging Face cache.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    models: Vec<String>,
    /// Also compare the model in this directory (Hugging Face layout); repeatable. Given
    /// without --models, it is compared with phash only.
    #[arg(long, value_name = "DIR")]
    model_dir: Vec<PathBuf>,
    /// Nearest references kept per query.
    #[arg(long, short = 'k', default_value_t = 10)]
    k: usize,
    /// Where predictions, the chart and the report go. Default: imgsim-eval/<benchmark>.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Where embeddings are kept between runs. Default: the user cache folder.
    #[arg(long, value_name = "DIR", env = "IMGSIM_EVAL_CACHE")]
    cache: Option<PathBuf>,
    /// Embed everything again and keep nothing.
    #[arg(long)]
    no_cache: bool,
    /// Images per forward pass [default: 16 on the CPU, 64 on a GPU].
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    #[arg(long, value_enum, default_value_t = imgsim::device::DeviceChoice::Auto)]
    device: imgsim::device::DeviceChoice,
    /// Precisions to compare, comma-separated (f32; bf16, int8 on the CPU; f16, bf16 on a
    /// GPU; see `--precision` of `index`): each model runs once per precision, reported as
    /// e.g. `dinov2-base+bf16` (phash once).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "LIST",
        default_value = "f32"
    )]
    precision: Vec<Precision>,
    /// JSON lines on stdout: one per model, then a summary.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub struct Disc21Args {
    /// The DISC21 folder: references (images/references, references, reference_images,
    /// val_ref), queries (images/queries, queries, dev_queries, query_images, val_query) and a
    /// ground-truth CSV (public_ground_truth.csv, dev_ground_truth.csv, ground_truth.csv, gt.csv).
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    /// The ground-truth CSV, where it is not one of the usual names under --root.
    #[arg(long, value_name = "CSV")]
    gt: Option<PathBuf>,
    /// Use the first N references (by id) as the pool.
    #[arg(long, value_name = "N")]
    refs: Option<usize>,
    /// `matched`: only queries whose reference is in the pool (the published comparison);
    /// `all`: distractor queries too (the official setup).
    #[arg(long, value_enum, default_value_t = QuerySet::Matched)]
    queries: QuerySet,
    #[command(flatten)]
    models: EvalModelArgs,
}

#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    /// Ground truth: query_id,reference_id per line (header optional; empty reference =
    /// distractor).
    #[arg(long, value_name = "CSV")]
    gt: PathBuf,
    /// Predictions: query_id,reference_id,score per line (header optional).
    #[arg(long, value_name = "CSV")]
    preds: PathBuf,
    /// Also draw the precision-recall curve into this PNG.
    #[arg(long, value_name = "PNG")]
    chart: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub struct CocoArgs {
    /// The COCO folder: <split>/*.jpg and annotations/instances_<split>.json.
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    #[arg(long, default_value = "val2017")]
    split: String,
    /// Zero-shot retrieval by words instead: each category present is the query "a photo of
    /// a {category}" (models with a text tower: CLIP); relevant = the image shows it.
    #[arg(long)]
    text: bool,
    #[command(flatten)]
    models: EvalModelArgs,
}

#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// The photos to build the benchmark from (searched recursively; nothing is changed).
    #[arg(value_name = "DIR")]
    source: PathBuf,
    /// Queries in all, copies and distractors. Default: one per photo (at most 2000).
    #[arg(long, value_name = "N")]
    queries: Option<usize>,
    /// The share of queries that are distractors, made from photos held out of the pool.
    #[arg(long, default_value_t = 0.2, value_name = "F")]
    distractors: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    models: EvalModelArgs,
}

pub fn run(command: EvalCommand) -> anyhow::Result<Outcome> {
    match command {
        EvalCommand::Disc21(args) => run_disc21(args),
        EvalCommand::Score(args) => run_score(args),
        EvalCommand::Coco(args) => run_coco(args),
        EvalCommand::Synth(args) => run_synth(args),
    }
}

/// A model to compare: its display name and where it comes from.
struct Candidate {
    label: String,
    source: WeightsSource,
    precision: Precision,
}

fn candidates(args: &EvalModelArgs) -> anyhow::Result<Vec<Candidate>> {
    anyhow::ensure!(args.k >= 1, "-k must be at least 1");
    let mut sources: Vec<WeightsSource> = if !args.models.is_empty() {
        args.models
            .iter()
            .map(|name| name.trim())
            .filter(|name| !name.is_empty())
            .map(models::source_for)
            .collect::<imgsim::Result<_>>()?
    } else if !args.model_dir.is_empty() {
        vec![WeightsSource::Phash]
    } else {
        // The baseline first, then every local model.
        let mut local = models::local_sources();
        local.rotate_right(1);
        local
    };
    sources.extend(args.model_dir.iter().cloned().map(WeightsSource::Dir));
    let mut precisions = Precision::distinct(&args.precision);
    if precisions.is_empty() {
        precisions.push(Precision::F32);
    }
    let mut out = Vec::new();
    for source in sources {
        // The hash has no linear layers: it runs once, whatever the precisions.
        let runs: &[Precision] = match source {
            WeightsSource::Phash => &[Precision::F32],
            _ => &precisions,
        };
        for &precision in runs {
            out.push(Candidate {
                label: format!("{}{}", source.label(), precision.id_suffix()),
                source: source.clone(),
                precision,
            });
        }
    }
    Ok(out)
}

/// Loads each model in turn and runs `each` with it; a model that cannot load is reported and
/// the others still run. Returns the number that failed.
fn for_each_model(
    args: &EvalModelArgs,
    text_only: bool,
    mut each: impl FnMut(&WeightsSource, &Embedder, &mut EmbeddingCache) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    let device = super::common::select_device(args.device)?;
    let mut failed = 0;
    let mut candidates = candidates(args)?;
    if text_only {
        let (text, left_out): (Vec<_>, Vec<_>) = candidates
            .into_iter()
            .partition(|c| imgsim::models::has_text_tower(&c.source));
        if !left_out.is_empty() {
            let names: Vec<&str> = left_out.iter().map(|c| c.label.as_str()).collect();
            eprintln!("imgsim: left out (no text tower): {}", names.join(", "));
        }
        anyhow::ensure!(
            !text.is_empty(),
            "no model with a text tower to run: --text needs a CLIP model (--models clip, or \
             --model-dir holding a CLIP checkpoint with its tokenizer.json)"
        );
        candidates = text;
    }
    if args.models.is_empty() && args.model_dir.is_empty() && candidates.len() == 1 {
        eprintln!(
            "imgsim: no model's weights are in the Hugging Face cache, so only the phash \
             baseline runs; fetch some with `imgsim models fetch clip dinov2`, or name \
             --model-dir"
        );
    }
    for candidate in candidates {
        let result = (|| -> anyhow::Result<()> {
            let model = Model::load_with(&candidate.source, None, &device, candidate.precision)?;
            let mut cache = if args.no_cache || model.random_weights {
                EmbeddingCache::disabled(model.dim())
            } else {
                EmbeddingCache::open(&cache_dir(args)?, &model.id, model.dim())?
            };
            let embedder =
                Embedder::new(model, device.clone()).batch_size_or_default(args.batch_size);
            each(&candidate.source, &embedder, &mut cache)
        })();
        if let Err(err) = result {
            failed += 1;
            if args.json {
                print_json(&EvalLine::ModelFailed {
                    model: candidate.label.clone(),
                    error: format!("{err:#}"),
                });
            }
            eprintln!("imgsim: model {} skipped: {err:#}", candidate.label);
        }
    }
    Ok(failed)
}

/// What [`run_models`] gives back.
struct ModelRuns<R> {
    /// By model name, in the order the models ran.
    results: Vec<(String, R)>,
    failed_models: usize,
    failed_files: usize,
}

/// Runs one benchmark with every model, writing each model's predictions under `out`.
fn run_models<R>(
    args: &EvalModelArgs,
    out: &Path,
    text_only: bool,
    mut run: impl FnMut(&WeightsSource, &Embedder, &mut EmbeddingCache, &mut Bar) -> anyhow::Result<R>,
    predictions_of: fn(&R) -> &[metrics::Prediction],
) -> anyhow::Result<ModelRuns<R>> {
    let mut bar = Bar::new(args.json);
    let mut results = Vec::new();
    let failed_models = for_each_model(args, text_only, |source, embedder, cache| {
        let name = embedder.model().label();
        bar.prefix = format!("{name}: ");
        let result = run(source, embedder, cache, &mut bar)?;
        let file = predictions_path(out, &name);
        metrics::write_predictions(&file, predictions_of(&result))?;
        results.push((name, result));
        Ok(())
    })?;
    Ok(ModelRuns {
        results,
        failed_models,
        failed_files: bar.failed_files,
    })
}

fn cache_dir(args: &EvalModelArgs) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &args.cache {
        return Ok(dir.clone());
    }
    let base = dirs::cache_dir().ok_or_else(|| {
        anyhow::anyhow!("no user cache folder is known here; name one with --cache")
    })?;
    Ok(base.join("imgsim").join("eval-embeddings"))
}

fn out_dir(args: &EvalModelArgs, default_name: &str) -> anyhow::Result<PathBuf> {
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("imgsim-eval").join(default_name));
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create the output folder {}: {e}", dir.display()))?;
    Ok(dir)
}

struct CopyDetectionRun {
    benchmark: String,
    selection: Selection,
    k: usize,
    results: Vec<(String, CopyDetection)>,
    failed_models: usize,
    failed_files: usize,
    out: PathBuf,
}

/// Embeds, searches and scores `selection` with every model; writes predictions and the chart.
/// `group`: also score `imgsim dupes`' groups of the benchmark's images (synth).
fn copy_detection(
    benchmark: &str,
    selection: Selection,
    args: &EvalModelArgs,
    out: PathBuf,
    group: bool,
) -> anyhow::Result<CopyDetectionRun> {
    let ModelRuns {
        results,
        failed_models,
        failed_files,
    } = run_models(
        args,
        &out,
        false,
        |_, embedder, cache, bar| {
            Ok(disc21::run(
                &selection, embedder, cache, args.k, group, bar,
            )?)
        },
        |r| &r.predictions,
    )?;
    if !results.is_empty() {
        Chart {
            title: &format!("{benchmark}: precision-recall (micro, all predictions pooled)"),
            x_label: "recall",
            y_label: "precision",
            x_range: (0.0, 1.0),
            series: results
                .iter()
                .map(|(name, r)| (name.clone(), report::thin(&r.metrics.curve, 2000)))
                .collect(),
        }
        .save(&out.join("pr-curves.png"))?;
    }
    Ok(CopyDetectionRun {
        benchmark: benchmark.to_string(),
        selection,
        k: args.k,
        results,
        failed_models,
        failed_files,
        out,
    })
}

fn describe_selection(run: &CopyDetectionRun) -> String {
    let s = &run.selection;
    let mut text = format!(
        "{} references, {} queries ({} with a copy in the pool, {} distractors), k = {}",
        s.references.len(),
        s.queries.len(),
        s.queries.len() - s.distractors,
        s.distractors,
        run.k
    );
    if s.copies_outside_pool > 0 {
        text.push_str(&format!(
            "; {} ground-truth pairs point outside the pool",
            s.copies_outside_pool
        ));
    }
    if s.missing_query_files > 0 {
        text.push_str(&format!(
            "; {} queries of the ground truth are not on disk",
            s.missing_query_files
        ));
    }
    text
}

fn metrics_json(m: &Metrics) -> serde_json::Value {
    serde_json::to_value(m).expect("serialisable")
}

/// Prints the report (or the JSON lines), writes report.md and report.json.
fn finish_copy_detection(
    run: &CopyDetectionRun,
    extra_markdown: &str,
    by_edit: Option<&EditRecall>,
    started: Instant,
    json: bool,
) -> anyhow::Result<Outcome> {
    let rows: Vec<(String, &CopyDetection)> =
        run.results.iter().map(|(n, r)| (n.clone(), r)).collect();
    let mut markdown = format!(
        "## imgsim eval {}\n\n{}\n\n{}",
        run.benchmark,
        describe_selection(run),
        report::copy_detection_table(&rows)
    );
    markdown.push_str(extra_markdown);
    let lines: Vec<EvalLine> = run
        .results
        .iter()
        .map(|(name, r)| EvalLine::CopyDetection {
            benchmark: run.benchmark.clone(),
            model: name.clone(),
            metrics: metrics_json(&r.metrics),
            extraction: Some(serde_json::to_value(&r.extraction).expect("serialisable")),
            predictions_file: Some(predictions_path(&run.out, name).display().to_string()),
            recall_at_rank1_by_edit: by_edit
                .and_then(|e| e.of_model(name))
                .map(|recalls| serde_json::to_value(recalls).expect("serialisable")),
        })
        .chain([EvalLine::Summary {
            benchmark: run.benchmark.clone(),
            references: run.selection.references.len(),
            queries: run.selection.queries.len(),
            distractors: run.selection.distractors,
            k: run.k,
            models: run.results.len(),
            failed_models: run.failed_models,
            failed_files: run.failed_files,
            seconds: started.elapsed().as_secs_f64(),
            out: Some(run.out.display().to_string()),
        }])
        .collect();
    let runs = Runs {
        ran: run.results.len(),
        failed_models: run.failed_models,
        failed_files: run.failed_files,
    };
    let report = Report {
        out: &run.out,
        markdown: &markdown,
        lines: &lines,
        chart: "pr-curves.png",
    };
    finish(&report, started, json, runs)
}

/// How many models ran and what failed.
struct Runs {
    ran: usize,
    failed_models: usize,
    failed_files: usize,
}

/// What a benchmark run reports, and where.
struct Report<'a> {
    out: &'a Path,
    markdown: &'a str,
    lines: &'a [EvalLine],
    /// The chart's file name in `out`.
    chart: &'a str,
}

/// The end of every benchmark run: the reports written, then printed (Markdown, or the JSON
/// lines), and the outcome.
fn finish(report: &Report, started: Instant, json: bool, runs: Runs) -> anyhow::Result<Outcome> {
    write_reports(report.out, report.markdown, report.lines)?;
    if json {
        report.lines.iter().for_each(print_json);
    } else {
        println!("{}", report.markdown);
        println!(
            "Predictions, {} and report.md are in {} ({:.1} s in all).",
            report.chart,
            report.out.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(outcome(runs.ran, runs.failed_models, runs.failed_files))
}

fn predictions_path(out: &Path, model: &str) -> PathBuf {
    out.join(format!("predictions-{}.csv", file_label(model)))
}

fn outcome(ran: usize, failed_models: usize, failed_files: usize) -> Outcome {
    if ran == 0 {
        eprintln!("imgsim: no model could run");
        Outcome::SomeFailed
    } else if failed_models > 0 || failed_files > 0 {
        Outcome::SomeFailed
    } else {
        Outcome::Done
    }
}

fn run_disc21(args: Disc21Args) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    candidates(&args.models)?;
    let layout = Layout::find(&args.root, args.gt.as_deref())?;
    let selection = Selection::new(&layout, args.refs, args.queries)?;
    let out = out_dir(&args.models, "disc21")?;
    let run = copy_detection("disc21", selection, &args.models, out, false)?;
    finish_copy_detection(&run, "", None, started, args.models.json)
}

fn run_score(args: ScoreArgs) -> anyhow::Result<Outcome> {
    let truth = metrics::read_ground_truth(&args.gt)?;
    let predictions = metrics::read_predictions(&args.preds)?;
    let m = metrics::evaluate(&truth.pairs, &predictions)?;
    if let Some(path) = &args.chart {
        Chart {
            title: "precision-recall (micro, all predictions pooled)",
            x_label: "recall",
            y_label: "precision",
            x_range: (0.0, 1.0),
            series: vec![(
                args.preds.display().to_string(),
                report::thin(&m.curve, 2000),
            )],
        }
        .save(path)?;
    }
    if args.json {
        print_json(&EvalLine::CopyDetection {
            benchmark: "score".into(),
            model: args.preds.display().to_string(),
            metrics: metrics_json(&m),
            extraction: None,
            predictions_file: Some(args.preds.display().to_string()),
            recall_at_rank1_by_edit: None,
        });
        return Ok(Outcome::Done);
    }
    println!(
        "{} predictions, {} ground-truth pairs, {} distractor queries",
        m.predictions,
        m.ground_truth_pairs,
        truth.distractors.len()
    );
    println!("Average Precision: {:.5}", m.micro_ap);
    match (m.recall_at_p90, m.threshold_at_p90) {
        (Some(r), Some(t)) => {
            println!("Recall at P90    : {r:.5}");
            println!("Threshold at P90 : {t}");
        }
        _ => println!("Does not reach P90"),
    }
    println!("Recall at rank 1:  {:.5}", m.recall_at_rank1);
    println!("Recall at rank 10: {:.5}", m.recall_at_rank10);
    println!("Accuracy (top 1):  {:.5}", m.accuracy_top1);
    println!("Accuracy (top 3):  {:.5}", m.accuracy_top3);
    Ok(Outcome::Done)
}

fn run_coco(args: CocoArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    candidates(&args.models)?;
    let set = coco::CocoSet::load(&args.root, &args.split)?;
    let m = &args.models;
    let benchmark = if args.text { "coco-text" } else { "coco" };
    let out = out_dir(m, benchmark)?;
    let ModelRuns {
        results,
        failed_models,
        failed_files,
    } = run_models(
        m,
        &out,
        args.text,
        |source, embedder, cache, bar| {
            if !args.text {
                return Ok(coco::run(&set, embedder, cache, m.k, bar)?);
            }
            let text = TextModel::load(source, embedder.device())?;
            let embed_text = |words: &str| text.embed(words);
            Ok(coco::run_text(
                &set,
                embedder,
                &embed_text,
                cache,
                m.k,
                bar,
            )?)
        },
        |r| &r.predictions,
    )?;
    if !results.is_empty() {
        Chart {
            title: if args.text {
                "COCO, by words: precision at each rank (relevant = shows the category)"
            } else {
                "COCO: precision at each rank (relevant = a shared category)"
            },
            x_label: "rank",
            y_label: "precision",
            x_range: (1.0, m.k as f64),
            series: results
                .iter()
                .map(|(name, r)| {
                    let points = r
                        .precision_at_rank
                        .iter()
                        .enumerate()
                        .map(|(i, p)| ((i + 1) as f64, *p))
                        .collect();
                    (name.clone(), points)
                })
                .collect(),
        }
        .save(&out.join("precision-at-rank.png"))?;
    }
    let queries = results.first().map_or(0, |(_, r)| r.queries);
    let chance = results.first().map_or(0.0, |(_, r)| r.chance_precision);
    let rows: Vec<(String, &coco::Retrieval)> =
        results.iter().map(|(n, r)| (n.clone(), r)).collect();
    let what = if args.text {
        format!(
            "{queries} categories as text queries (\"{}\"), relevant = the image shows the \
             category",
            coco::prompt("{category}")
        )
    } else {
        format!("{queries} queries with at least one image of a shared category")
    };
    let markdown = format!(
        "## imgsim {}\n\n{} images ({}), {what}, k = {}; a random ranking would score \
         precision {:.2}\n\n{}",
        if args.text {
            "eval coco --text"
        } else {
            "eval coco"
        },
        set.images.len(),
        args.root.join(&args.split).display(),
        m.k,
        100.0 * chance,
        report::retrieval_table(&rows)
    );
    let lines: Vec<EvalLine> = results
        .iter()
        .map(|(name, r)| EvalLine::Retrieval {
            benchmark: benchmark.into(),
            model: name.clone(),
            result: serde_json::to_value(r).expect("serialisable"),
            predictions_file: predictions_path(&out, name).display().to_string(),
        })
        .chain([EvalLine::Summary {
            benchmark: benchmark.into(),
            references: set.images.len(),
            queries,
            distractors: 0,
            k: m.k,
            models: results.len(),
            failed_models,
            failed_files,
            seconds: started.elapsed().as_secs_f64(),
            out: Some(out.display().to_string()),
        }])
        .collect();
    let runs = Runs {
        ran: results.len(),
        failed_models,
        failed_files,
    };
    let report = Report {
        out: &out,
        markdown: &markdown,
        lines: &lines,
        chart: "precision-at-rank.png",
    };
    finish(&report, started, m.json, runs)
}

fn run_synth(args: SynthArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    candidates(&args.models)?;
    let name = std::fs::canonicalize(&args.source)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "photos".into());
    let out = out_dir(&args.models, &format!("synth-{}", file_label(&name)))?;
    let bench_dir = out.join("benchmark");
    let options = SynthOptions {
        queries: args.queries,
        distractors: args.distractors,
        seed: args.seed,
    };
    let mut bar = Bar::new(args.models.json);
    let benchmark = synth::build(&args.source, &bench_dir, &options, &mut bar)?;
    drop(bar);
    if benchmark.reused {
        // Reported when the benchmark was built; repeated so that the exit code stays true.
        for reason in &benchmark.unreadable {
            eprintln!("imgsim: left out of the benchmark: {reason}");
        }
    }
    if !args.models.json {
        eprintln!(
            "imgsim: {} benchmark in {} ({} references, {} queries, seed {})",
            if benchmark.reused {
                "reusing the"
            } else {
                "built a"
            },
            bench_dir.display(),
            benchmark.references,
            benchmark.queries.len(),
            args.seed
        );
    }
    let layout = benchmark.layout(&bench_dir);
    let selection = Selection::new(&layout, None, QuerySet::All)?;
    let mut run = copy_detection("synth", selection, &args.models, out, true)?;
    run.failed_files += benchmark.unreadable.len();

    // Recall at rank 1 per edit kind: which edits each model survives.
    let predictions: Vec<(String, &[metrics::Prediction])> = run
        .results
        .iter()
        .map(|(name, r)| (name.clone(), r.predictions.as_slice()))
        .collect();
    let by_edit = EditRecall::of(&benchmark, &run.selection.ground_truth, &predictions);
    let mut extra = format!(
        "\nRecall at rank 1 by edit (a query with several edits counts under each):\n\n{}",
        report::edit_table(&by_edit.models, &by_edit.rows)
    );
    extra.push_str("\nSuggested duplicate threshold (the score at precision 0.9):\n\n");
    for (name, r) in &run.results {
        extra.push_str(&match r.metrics.threshold_at_p90 {
            Some(t) => format!(
                "- {name}: cosine >= {t:.4} (recall {:.1}%)\n",
                100.0 * r.metrics.recall_at_p90.unwrap_or(0.0)
            ),
            None => format!("- {name}: precision never reaches 0.9\n"),
        });
    }
    extra.push_str(
        "\n`imgsim dupes` at that threshold, on references and queries together (a pair is right \
         when both are copies of one photo, or one is the other's original):\n\n\
         | model | pairs grouped | right | precision | recall |\n|---|---|---|---|---|\n",
    );
    for (name, r) in &run.results {
        match &r.groups {
            Some(g) => extra.push_str(&format!(
                "| {name} | {} | {} | {:.3} | {:.3} (of {}) |\n",
                g.claimed, g.correct, g.precision, g.recall, g.truth
            )),
            None => extra.push_str(&format!("| {name} | - | - | - | - |\n")),
        }
    }
    finish_copy_detection(&run, &extra, Some(&by_edit), started, args.models.json)
}
