//! `imgsim dupes`: groups of duplicate and near-duplicate images, with the image each group
//! would keep. It reports; with `--apply` and an action it moves the others aside, to the
//! trash, or replaces exact copies by hard links, and `imgsim dupes undo` puts them back.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use imgsim::dupes::apply::{Apply, StepOutcome, Undo};
use imgsim::dupes::calibrate::{calibrate, Calibration, Thresholds};
use imgsim::dupes::ignored::{Apart, Ignored};
use imgsim::dupes::journal::Action;
use imgsim::dupes::{Dupes, Group, Keep, Kind, Report};
use imgsim::store::Store;
use serde::Serialize;

use super::common::{cosine, human_bytes, print_json, DbArgs, JsonPath, ModelArgs};
use super::Outcome;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
#[command(group(clap::ArgGroup::new("action").args(["move_to", "trash", "hardlink"])))]
// `--precision` here is the calibration's (a fraction); the model's arithmetic is
// `--model-precision`.
#[command(mut_arg("model_precision", |a| a.long("model-precision")))]
pub struct DupesArgs {
    #[command(subcommand)]
    action: Option<DupesAction>,
    /// Only images under these folders (indexed first, incrementally, so that the answer is
    /// current). None given: every image in the index.
    #[arg(value_name = "DIR")]
    dirs: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    db: DbArgs,
    /// Images at or above this cosine similarity are duplicates of each other. Default: the
    /// model's latest calibration on this database, else its measured default (phash: 0.5;
    /// see README, "Duplicates").
    #[arg(long, value_name = "S", value_parser = cosine, conflicts_with_all = ["calibrate", "precision"])]
    threshold: Option<f32>,
    /// Measure the threshold on your own photos first: edited copies of a sample of the
    /// indexed images must be found at --precision (default 0.95). Kept in the database for
    /// later runs.
    #[arg(long)]
    calibrate: bool,
    /// The precision of the threshold: with --calibrate, the one to measure; alone, the
    /// calibration measured at it earlier.
    #[arg(long, value_name = "P", value_parser = share)]
    precision: Option<f64>,
    /// Photos sampled by --calibrate.
    #[arg(long, value_name = "N", default_value_t = imgsim::dupes::calibrate::DEFAULT_SAMPLE, requires = "calibrate")]
    sample: usize,
    /// Which image of a group to keep: best (most pixels, then largest file, then oldest,
    /// then shortest path), largest, newest, oldest, or path:PREFIX (images under PREFIX).
    #[arg(long, value_name = "RULE", default_value = "best")]
    keep: Keep,
    /// Only groups of at least this many images.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u64).range(2..))]
    min_group: u64,
    /// One JSON line per group, then a summary line.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// CSV: one line per image (group, kind, keep, path, score, width, height, bytes,
    /// modified).
    #[arg(long)]
    csv: bool,
    /// Move each group's other images under DIR, at their full path (/home/me/a.jpg goes to
    /// DIR/home/me/a.jpg). Their index rows move with them. Needs --apply to act.
    #[arg(long, value_name = "DIR")]
    move_to: Option<PathBuf>,
    /// Move each group's other images to the desktop's trash (freedesktop.org trash). Needs
    /// --apply to act.
    #[arg(long)]
    trash: bool,
    /// Replace exact copies by hard links to the keeper (the same bytes, stored once; near
    /// duplicates are left alone). Needs --apply to act.
    #[arg(long)]
    hardlink: bool,
    /// Work without the watch daemon even when one runs on the database (it answers with the
    /// same groups, from its open tables).
    #[arg(long)]
    no_daemon: bool,
    /// Make the changes of --move-to, --trash or --hardlink. Without it nothing changes: the
    /// plan is printed. Every change is journaled in the database: `imgsim dupes undo` puts
    /// the last applied plan back.
    #[arg(long, requires = "action")]
    apply: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum DupesAction {
    /// Mark images as not duplicates of each other: later runs never group them together
    /// (kept by content, so the decision follows a moved or renamed file).
    Ignore {
        #[arg(required = true, num_args = 2.., value_name = "PATH")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Put back the last plan applied with --apply: every file moved, trashed or linked, byte
    /// for byte, with its time, permissions and index rows.
    Undo {
        #[command(flatten)]
        db: DbArgs,
        /// One JSON line per file, then a summary line.
        #[arg(long)]
        json: bool,
    },
    /// The images marked as not duplicates; --forget PATH... drops the decisions naming them.
    Ignored {
        #[arg(long, value_name = "PATH", num_args = 1..)]
        forget: Vec<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
        /// One JSON line per decision.
        #[arg(long)]
        json: bool,
    },
}

/// A precision given on the command line.
fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 1.0 => Ok(p),
        Ok(p) => Err(format!("{p} is not a precision (above 0, at most 1)")),
        Err(e) => Err(e.to_string()),
    }
}

/// The threshold a model uses when none is given, and where it comes from. Measured with
/// `imgsim eval synth ../shared/data/coco128 --models phash` (README, "Duplicates"): the
/// score at precision 0.9. Models without a measurement have none: guessing one would claim
/// a precision nobody measured.
fn default_threshold(model: &str) -> Option<f32> {
    match model {
        "phash" => Some(0.5),
        _ => None,
    }
}

/// `imgsim dupes --json` lines.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum DupesLine<'a> {
    Group {
        group: usize,
        kind: Kind,
        /// Whether the images other than the keeper are proposed for removal.
        removable: bool,
        images: Vec<JsonMember<'a>>,
    },
    Summary {
        model: &'a str,
        threshold: f32,
        /// Where the threshold comes from: `given`, `calibrated` or `default`.
        threshold_from: &'a str,
        rows: usize,
        images: usize,
        pairs: usize,
        groups: usize,
        removable_images: usize,
        removable_bytes: u64,
        /// Whether the watch daemon of the database made the report.
        by_daemon: bool,
    },
}

#[derive(Debug, Serialize)]
struct JsonMember<'a> {
    #[serde(flatten)]
    path: JsonPath,
    keep: bool,
    score: Option<f32>,
    width: u32,
    height: u32,
    bytes: u64,
    modified: String,
    hash: &'a str,
    indexed: bool,
}

pub fn run(args: DupesArgs) -> anyhow::Result<Outcome> {
    match args.action {
        Some(DupesAction::Ignore { paths, db }) => return ignore(&paths, &db.dir()?),
        Some(DupesAction::Ignored { forget, db, json }) => {
            return ignored(&forget, &db.dir()?, json)
        }
        Some(DupesAction::Undo { db, json }) => return undo(&db.dir()?, json),
        None => {}
    }
    let db_dir = args.db.dir()?;
    let action = action(&args)?;
    let roots = args
        .dirs
        .iter()
        .map(|d| super::common::canonical(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for root in &roots {
        anyhow::ensure!(root.is_dir(), "{}: not a folder", root.display());
    }
    let embedder = args.model.embedder(None)?;
    let model = embedder.model();
    // Without a threshold to use, say so before indexing anything.
    if args.threshold.is_none() && !args.calibrate {
        let stored = if db_dir.is_dir() {
            Thresholds::load(&db_dir)?
        } else {
            Thresholds::default()
        };
        match args.precision {
            Some(p) if stored.at(&model.id, p).is_none() => anyhow::bail!(
                "{} has no calibration at precision {p} in {}: measure one with `imgsim dupes \
                 --calibrate --precision {p}`",
                model.name,
                db_dir.display()
            ),
            None if stored.latest(&model.id).is_none()
                && default_threshold(&model.name).is_none() =>
            {
                anyhow::bail!(
                    "{} has no measured default threshold: measure one on your photos with \
                     --calibrate, or give one with --threshold S (a cosine similarity)",
                    model.name
                )
            }
            _ => {}
        }
    }
    let store = Store::open(&db_dir, !roots.is_empty())?;
    if !roots.is_empty() {
        let _lock = super::common::lock_for_writing(&db_dir, "imgsim dupes")?;
        let table = store.table_or_create(&model.name, &model.id, model.dim())?;
        let mut bar = super::common::Bar::new(args.json || args.csv);
        let summary = imgsim::indexer::index(
            &table,
            &embedder,
            &roots,
            &globset::GlobSet::empty(),
            false,
            &mut bar,
        )?;
        drop(bar);
        if summary.added + summary.updated + summary.moved + summary.removed > 0 {
            eprintln!(
                "imgsim: indexed first: {} added, {} updated, {} moved, {} removed",
                summary.added, summary.updated, summary.moved, summary.removed
            );
        }
    }
    let Some(table) = store.table(&model.id)? else {
        anyhow::bail!(
            "no {} index in {}: run `imgsim index DIR --model {}{}` first, or name the folders \
             here",
            model.label(),
            db_dir.display(),
            args.model.model,
            model.precision.flag()
        );
    };
    let (threshold, threshold_from) = threshold(&args, &db_dir, &table, &embedder)?;
    let decisions = Ignored::load(&db_dir)?;
    let by_daemon = if args.no_daemon {
        None
    } else {
        report_by_daemon(&args, &db_dir, &model.id, threshold, &roots)?
    };
    let answered_by_daemon = by_daemon.is_some();
    let report = match by_daemon {
        Some(report) => report,
        None => {
            let mut bar = super::common::Bar::new(args.json || args.csv);
            let report = Dupes::new(&table, threshold)
                .ignoring(&decisions)
                .keep(args.keep.clone())
                .min_group(args.min_group as usize)
                .within(&roots)
                .execute(&mut bar, &AtomicBool::new(false))?;
            drop(bar);
            report
        }
    };
    if args.json {
        print_json_report(&report, &model.name, threshold_from, answered_by_daemon);
    } else if args.csv {
        print_csv(&report)?;
    } else {
        print_text(&report, &model.name, threshold_from, action.is_some());
    }
    if let Some(action) = action {
        let plan = Apply::new(&store, &report, action.clone()).model(&model.name);
        if args.apply {
            let _lock = super::common::lock_for_writing(&db_dir, "imgsim dupes --apply")?;
            let mut bar = super::common::Bar::new(args.json || args.csv);
            let applied = plan.execute(&mut bar, &AtomicBool::new(false))?;
            drop(bar);
            print_changes(&applied.steps, &action, Said::Done, args.json);
            if applied.journal.is_some() && applied.done().next().is_some() {
                eprintln!("imgsim: `imgsim dupes undo` puts them back");
            }
        } else {
            print_changes(&plan.preview(), &action, Said::Planned, args.json);
        }
    }
    Ok(if report.groups.is_empty() {
        Outcome::NothingFound
    } else {
        Outcome::Done
    })
}

/// The daemon's report, if a daemon runs on this database.
fn report_by_daemon(
    args: &DupesArgs,
    db_dir: &std::path::Path,
    model_id: &str,
    threshold: f32,
    roots: &[PathBuf],
) -> anyhow::Result<Option<Report>> {
    use imgsim::watch::socket::{self, DupesRequest, Request, Response};
    let request = Request::Dupes(DupesRequest {
        model_id: model_id.to_string(),
        threshold,
        keep: args.keep.to_string(),
        min_group: args.min_group as usize,
        within: roots.to_vec(),
    });
    match socket::ask(db_dir, &request, &[])? {
        None | Some(Response::NotLoaded { .. }) => Ok(None),
        Some(Response::Dupes { report }) => Ok(Some(report)),
        // A daemon of an earlier imgsim does not know the request: work here.
        Some(Response::Error { message }) if message.starts_with("malformed request") => Ok(None),
        Some(Response::Error { message }) => anyhow::bail!("{message}"),
        Some(_) => Ok(None),
    }
}

/// The action named on the command line (a destination made absolute and checked).
fn action(args: &DupesArgs) -> anyhow::Result<Option<Action>> {
    if args.trash {
        return Ok(Some(Action::Trash));
    }
    if args.hardlink {
        return Ok(Some(Action::Hardlink));
    }
    let Some(dir) = &args.move_to else {
        return Ok(None);
    };
    let dir = std::path::absolute(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    if dir.exists() {
        anyhow::ensure!(dir.is_dir(), "--move-to {}: not a folder", dir.display());
        return Ok(Some(Action::MoveTo {
            dir: super::common::canonical(&dir)?,
        }));
    }
    // Made on first use; its nearest existing folder fixes where it is.
    Ok(Some(Action::MoveTo { dir }))
}

/// Whether changes were made or only planned.
#[derive(Clone, Copy, PartialEq)]
enum Said {
    Planned,
    Done,
    Undone,
}

/// `imgsim dupes --json` lines of a plan or its outcome, and of an undo.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ChangeLine<'a> {
    Change {
        /// `planned`, `done`, `undone`, or `skipped` (with the reason).
        status: &'static str,
        #[serde(flatten)]
        path: JsonPath,
        /// Where a move puts it (or, for an undo, where it was).
        to: Option<String>,
        keeper: String,
        bytes: u64,
        reason: Option<&'a str>,
    },
    Changes {
        action: &'a Action,
        status: &'static str,
        images: usize,
        bytes: u64,
        skipped: usize,
    },
}

fn print_changes(steps: &[StepOutcome], action: &Action, said: Said, json: bool) {
    let status = match said {
        Said::Planned => "planned",
        Said::Done => "done",
        Said::Undone => "undone",
    };
    let (mut images, mut bytes, mut skipped) = (0, 0, 0);
    for step in steps {
        match &step.skipped {
            None => {
                images += 1;
                bytes += step.bytes;
            }
            Some(_) => skipped += 1,
        }
        if json {
            print_json(&ChangeLine::Change {
                status: if step.skipped.is_some() {
                    "skipped"
                } else {
                    status
                },
                path: JsonPath::of_key(&step.path),
                to: step.to.as_deref().map(imgsim::util::display_key),
                keeper: imgsim::util::display_key(&step.keeper),
                bytes: step.bytes,
                reason: step.skipped.as_deref(),
            });
            continue;
        }
        let line = |verb: &str, other: Option<&str>| {
            let suffix = other.map_or(String::new(), |o| {
                format!(" -> {}", imgsim::util::display_key(o))
            });
            super::common::print_path_line(&format!("{verb} "), &step.path, &suffix);
        };
        match (&step.skipped, said, action) {
            (Some(reason), Said::Planned, _) => {
                super::common::print_path_line("left alone ", &step.path, &format!(": {reason}"))
            }
            // Skips of a run are said once, on stderr, as they happen.
            (Some(_), _, _) => {}
            (None, Said::Planned, Action::MoveTo { .. }) => line("would move", step.to.as_deref()),
            (None, Said::Planned, Action::Trash) => line("would trash", None),
            (None, Said::Planned, Action::Hardlink) => line("would link", Some(&step.keeper)),
            (None, Said::Done, Action::MoveTo { .. }) => line("moved", step.to.as_deref()),
            (None, Said::Done, Action::Trash) => line("trashed", None),
            (None, Said::Done, Action::Hardlink) => line("linked", Some(&step.keeper)),
            (None, Said::Undone, Action::MoveTo { .. }) => line("moved back", step.to.as_deref()),
            (None, Said::Undone, Action::Trash) => line("restored from the trash", None),
            (None, Said::Undone, Action::Hardlink) => line("unlinked", None),
        }
    }
    if json {
        print_json(&ChangeLine::Changes {
            action,
            status,
            images,
            bytes,
            skipped,
        });
        return;
    }
    let skipped = if skipped > 0 {
        format!("; {skipped} left alone")
    } else {
        String::new()
    };
    let size = human_bytes(bytes);
    let images = count(images, "image");
    match said {
        Said::Planned => eprintln!(
            "imgsim: with --apply, {images} ({size}) would be {}{skipped}. Nothing was changed.",
            action.done_verb()
        ),
        Said::Done => eprintln!("imgsim: {images} ({size}) {}{skipped}", action.done_verb()),
        Said::Undone => eprintln!("imgsim: {images} ({size}) put back{skipped}"),
    }
}

/// "1 image", "2 images".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `imgsim dupes undo`
fn undo(db_dir: &std::path::Path, json: bool) -> anyhow::Result<Outcome> {
    if !db_dir.is_dir() {
        anyhow::bail!("no index database at {}", db_dir.display());
    }
    let store = Store::open(db_dir, false)?;
    let _lock = super::common::lock_for_writing(db_dir, "imgsim dupes undo")?;
    let mut bar = super::common::Bar::new(json);
    let undone = Undo::new(&store).execute(&mut bar, &AtomicBool::new(false))?;
    drop(bar);
    let Some(undone) = undone else {
        eprintln!("imgsim: no applied plan to undo in {}", db_dir.display());
        return Ok(Outcome::NothingFound);
    };
    if !json {
        eprintln!(
            "imgsim: undoing the plan applied {} ({} {})",
            date(undone.applied_at * 1_000_000_000),
            count(undone.steps.len(), "image"),
            undone.action.done_verb()
        );
    }
    print_changes(&undone.steps, &undone.action, Said::Undone, json);
    let left = undone
        .steps
        .iter()
        .filter(|s| {
            s.skipped
                .as_deref()
                .is_some_and(|r| r != "was never changed")
        })
        .count();
    if left > 0 {
        eprintln!(
            "imgsim: {left} could not be put back (said above); `imgsim dupes undo` tries them \
             again"
        );
        anyhow::bail!("{left} files of the plan could not be put back");
    }
    Ok(Outcome::Done)
}

/// Each file's canonical key and content hash; a path that is not a file is an error.
fn contents(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, String)>> {
    paths
        .iter()
        .map(|p| {
            let path = super::common::canonical(p)?;
            anyhow::ensure!(path.is_file(), "{}: not a file", p.display());
            let hash = imgsim::indexer::hash_file(&path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            Ok((imgsim::util::path_string(&path), hash))
        })
        .collect()
}

/// `imgsim dupes ignore PATH PATH...`
fn ignore(paths: &[PathBuf], db_dir: &std::path::Path) -> anyhow::Result<Outcome> {
    let files = contents(paths)?;
    let mut hashes: Vec<String> = files.iter().map(|(_, h)| h.clone()).collect();
    hashes.sort();
    hashes.dedup();
    anyhow::ensure!(
        hashes.len() >= 2,
        "these files have the same bytes: they are copies of one image, so there is nothing to \
         keep apart"
    );
    std::fs::create_dir_all(db_dir).map_err(|e| anyhow::anyhow!("{}: {e}", db_dir.display()))?;
    let mut decisions = Ignored::load(db_dir)?;
    decisions.add(Apart {
        hashes,
        paths: files.into_iter().map(|(key, _)| key).collect(),
        decided_at: imgsim::util::now_seconds(),
    });
    decisions.save(db_dir)?;
    eprintln!(
        "imgsim: {} images will not be grouped as duplicates of each other \
         (`imgsim dupes ignored --forget PATH` undoes it)",
        paths.len()
    );
    Ok(Outcome::Done)
}

/// `imgsim dupes ignored [--forget PATH...]`
fn ignored(forget: &[PathBuf], db_dir: &std::path::Path, json: bool) -> anyhow::Result<Outcome> {
    let mut decisions = Ignored::load(db_dir)?;
    if !forget.is_empty() {
        let hashes = contents(forget)?.into_iter().map(|(_, h)| h).collect();
        let n = decisions.forget(&hashes);
        decisions.save(db_dir)?;
        eprintln!("imgsim: forgot {n} decisions");
        return Ok(if n == 0 {
            Outcome::NothingFound
        } else {
            Outcome::Done
        });
    }
    for decision in decisions.decisions() {
        if json {
            print_json(decision);
        } else {
            println!("not duplicates of each other:");
            for path in &decision.paths {
                super::common::print_path_line("  ", path, "");
            }
        }
    }
    Ok(if decisions.decisions().is_empty() {
        Outcome::NothingFound
    } else {
        Outcome::Done
    })
}

/// The threshold to use and where it comes from: given, calibrated (now or before), or the
/// model's measured default.
fn threshold(
    args: &DupesArgs,
    db_dir: &std::path::Path,
    table: &imgsim::store::ModelTable<'_>,
    embedder: &imgsim::embed::Embedder,
) -> anyhow::Result<(f32, &'static str)> {
    let model = embedder.model();
    if let Some(t) = args.threshold {
        return Ok((t, "given"));
    }
    if args.calibrate {
        let precision = args.precision.unwrap_or(0.95);
        let mut bar = super::common::Bar::new(args.json || args.csv);
        let c = calibrate(
            table,
            embedder,
            precision,
            args.sample,
            0,
            &mut bar,
            &AtomicBool::new(false),
        )?;
        drop(bar);
        Thresholds::save(db_dir, &model.id, &c)?;
        eprintln!("imgsim: {}", calibration_line(&model.name, &c));
        return Ok((c.threshold, "calibrated"));
    }
    let stored = Thresholds::load(db_dir)?;
    let found = match args.precision {
        Some(p) => stored.at(&model.id, p),
        None => stored.latest(&model.id),
    };
    if let Some(c) = found {
        if !args.json && !args.csv {
            eprintln!("imgsim: {}", calibration_line(&model.name, c));
        }
        return Ok((c.threshold, "calibrated"));
    }
    match default_threshold(&model.name) {
        Some(t) => Ok((t, "default")),
        None => anyhow::bail!(
            "{} has no threshold: use --calibrate or --threshold S",
            model.name
        ),
    }
}

/// "cosine >= 0.9312 keeps 95% precision on 1,000 of your photos: 87% of edited copies found"
fn calibration_line(model: &str, c: &Calibration) -> String {
    format!(
        "{model}: cosine >= {:.4} keeps {}% precision on {} of your photos: {:.0}% of edited \
         copies found",
        c.threshold,
        (c.precision * 100.0).round(),
        c.photos,
        c.recall * 100.0
    )
}

/// The images a plan would remove, and their bytes.
fn removable(report: &Report) -> (usize, u64) {
    report
        .groups
        .iter()
        .filter(|g| g.kind.removable())
        .flat_map(|g| g.members.iter().filter(|m| !m.keep))
        .fold((0, 0), |(n, bytes), m| (n + 1, bytes + m.size))
}

fn date(mtime_ns: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(mtime_ns.div_euclid(1_000_000_000), 0) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.format("%Y-%m-%d %H:%M").to_string()
        }
        chrono::LocalResult::None => String::new(),
    }
}

fn print_json_report(report: &Report, model: &str, threshold_from: &str, by_daemon: bool) {
    for (n, group) in report.groups.iter().enumerate() {
        print_json(&DupesLine::Group {
            group: n + 1,
            kind: group.kind,
            removable: group.kind.removable(),
            images: group
                .members
                .iter()
                .map(|m| JsonMember {
                    path: JsonPath::of_key(&m.path),
                    keep: m.keep,
                    score: m.score,
                    width: m.width,
                    height: m.height,
                    bytes: m.size,
                    modified: date(m.mtime_ns),
                    hash: &m.hash,
                    indexed: m.indexed,
                })
                .collect(),
        });
    }
    let (removable_images, removable_bytes) = removable(report);
    print_json(&DupesLine::Summary {
        model,
        threshold: report.threshold,
        threshold_from,
        rows: report.rows,
        images: report.images,
        pairs: report.pairs,
        groups: report.groups.len(),
        removable_images,
        removable_bytes,
        by_daemon,
    });
}

fn print_csv(report: &Report) -> anyhow::Result<()> {
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    out.write_record([
        "group", "kind", "keep", "path", "score", "width", "height", "bytes", "modified",
    ])?;
    for (n, group) in report.groups.iter().enumerate() {
        for m in &group.members {
            out.write_record([
                (n + 1).to_string(),
                serde_json::to_value(group.kind)?
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                m.keep.to_string(),
                imgsim::util::path_of(&m.path)
                    .to_string_lossy()
                    .into_owned(),
                m.score.map(|s| format!("{s:.4}")).unwrap_or_default(),
                m.width.to_string(),
                m.height.to_string(),
                m.size.to_string(),
                date(m.mtime_ns),
            ])?;
        }
    }
    out.flush()?;
    Ok(())
}

fn print_text(report: &Report, model: &str, threshold_from: &str, acting: bool) {
    for group in &report.groups {
        print_group(group);
    }
    let (n, bytes) = removable(report);
    let from = match threshold_from {
        "default" => "the model's default, uncalibrated: --calibrate measures one on your photos",
        "calibrated" => "calibrated on your photos",
        _ => "given",
    };
    let next = if acting {
        ""
    } else {
        " Nothing was changed (--move-to DIR, --trash or --hardlink, with --apply, act on it)."
    };
    eprintln!(
        "imgsim: {} groups among {} images ({} distinct) by {model} at cosine >= {:.4} ({from}); \
         {n} images ({}) could go, keeping one of each group.{next}",
        report.groups.len(),
        report.rows,
        report.images,
        report.threshold,
        human_bytes(bytes),
    );
}

fn print_group(group: &Group) {
    let note = match group.kind {
        Kind::Exact | Kind::Near => "",
        Kind::Burst => " (shots of their own: all kept)",
        Kind::RawJpeg => " (one shot: both kept)",
    };
    println!(
        "{} · {} images{note}",
        group.kind.label(),
        group.members.len()
    );
    for m in &group.members {
        let mark = if m.keep {
            "  keep ".to_string()
        } else {
            match m.score {
                Some(s) => format!("  {s:.3}"),
                None => "       ".to_string(),
            }
        };
        let size = if m.width > 0 {
            format!("{}x{}", m.width, m.height)
        } else {
            "-".to_string()
        };
        super::common::print_path_line(
            &format!("{mark} "),
            &m.path,
            &format!("  {size}  {}  {}", human_bytes(m.size), date(m.mtime_ns)),
        );
    }
    println!();
}
