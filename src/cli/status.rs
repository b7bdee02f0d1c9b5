//! `imgsim status`: what the index holds per model, and the watch daemon's state.

use std::path::Path;

use imgsim::store::Store;
use serde::{Deserialize, Serialize};

use super::common::{human_bytes, print_json, DbArgs};
use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    db: DbArgs,
    /// One JSON line per model, and one for the daemon.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StatusLine {
    pub model: String,
    /// f32, bf16, int8 or f16: the precision its vectors were made in (`--precision`).
    #[serde(default)]
    pub precision: imgsim::models::Precision,
    pub model_id: String,
    pub dim: usize,
    pub images: usize,
    pub bytes: u64,
    pub table: String,
    /// Whether an IVF-PQ index exists, and how many rows it does not cover yet.
    pub vector_index: bool,
    pub unindexed_rows: usize,
    /// Data files of the table that cannot be read (`imgsim repair` drops their rows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<String>,
    /// What the photos say about themselves, over all rows.
    #[serde(default)]
    pub photos: Photos,
}

/// The span of dates and the formats of one table's photos.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Photos {
    /// The earliest and latest local dates taken (`2023-06-01T00:30:00+02:00`), file times
    /// included where a photo has no date of its own.
    pub taken_first: Option<String>,
    pub taken_last: Option<String>,
    /// Photos dated by their file time (no date in the file).
    pub dated_by_file: usize,
    /// Rows per format (by content).
    pub formats: std::collections::BTreeMap<String, usize>,
    pub with_camera: usize,
    pub with_gps: usize,
    /// Rows whose metadata was not read yet (a database from before imgsim kept it: the next
    /// `index` or `watch` pass reads it).
    pub not_read: usize,
}

impl Photos {
    fn of(metas: &[imgsim::metadata::Meta], rows: usize) -> Self {
        let mut photos = Photos {
            not_read: rows.saturating_sub(metas.iter().filter(|m| m.is_read()).count()),
            ..Photos::default()
        };
        let dated: Vec<&imgsim::metadata::Taken> =
            metas.iter().filter_map(|m| m.taken.as_ref()).collect();
        photos.taken_first = dated.iter().min_by_key(|t| t.local_ns).map(|t| t.display());
        photos.taken_last = dated.iter().max_by_key(|t| t.local_ns).map(|t| t.display());
        photos.dated_by_file = dated
            .iter()
            .filter(|t| t.source == imgsim::metadata::TakenFrom::File)
            .count();
        for meta in metas {
            if let Some(format) = &meta.format {
                *photos.formats.entry(format.clone()).or_default() += 1;
            }
            photos.with_camera += usize::from(meta.camera().is_some());
            photos.with_gps += usize::from(meta.gps.is_some());
        }
        photos
    }

    /// One line for people, or none for an empty table.
    fn line(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let (Some(first), Some(last)) = (&self.taken_first, &self.taken_last) {
            let day = |t: &str| t.get(..10).unwrap_or(t).to_string();
            let mut span = format!("taken {} to {}", day(first), day(last));
            if self.dated_by_file > 0 {
                span.push_str(&format!(" ({} dated by file time)", self.dated_by_file));
            }
            parts.push(span);
        }
        if !self.formats.is_empty() {
            let formats: Vec<String> = self
                .formats
                .iter()
                .map(|(f, n)| format!("{f} {n}"))
                .collect();
            parts.push(formats.join(", "));
        }
        if self.with_camera > 0 || self.with_gps > 0 {
            parts.push(format!(
                "{} with a camera, {} with GPS",
                self.with_camera, self.with_gps
            ));
        }
        if self.not_read > 0 {
            parts.push(format!(
                "{} without metadata yet (`imgsim index DIR` reads it, embedding nothing)",
                self.not_read
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

pub fn run(args: StatusArgs) -> anyhow::Result<Outcome> {
    let db_dir = args.db.dir()?;
    let store = Store::open(&db_dir, false)?;
    let mut lines = Vec::new();
    for info in store.tables()? {
        let Some(table) = store.table(&info.model_id)? else {
            continue;
        };
        let damaged: Vec<String> = table
            .damaged_files()?
            .iter()
            .map(|f| format!("{}: {}", f.path.display(), f.reason))
            .collect();
        let vector_index = table.vector_index()?;
        let images = table.count()?;
        // A damaged table still gets its status (its damage is what status is for).
        let photos = table
            .metas()
            .map(|metas| Photos::of(&metas, images))
            .unwrap_or_default();
        lines.push(StatusLine {
            photos,
            damaged,
            vector_index: vector_index.is_some(),
            unindexed_rows: vector_index.map_or(images, |(_, unindexed)| unindexed),
            images,
            bytes: if store.is_remote() {
                table.stored_bytes()?
            } else {
                dir_size(&db_dir.join(format!("{}.lance", info.table)))
            } + dir_size(&db_dir.join(format!("{}.filters", info.table))),
            precision: imgsim::models::Precision::of_model_id(&info.model_id),
            model: info.model,
            model_id: info.model_id,
            dim: info.dim,
            table: info.table,
        });
    }
    let daemon = daemon_status(&db_dir);
    let damaged = lines.iter().any(|l| !l.damaged.is_empty());
    if args.json {
        for line in lines {
            print_json(&StatusJson::Model(line));
        }
        print_json(&StatusJson::Daemon {
            running: daemon.is_some(),
            status: daemon,
        });
    } else {
        println!("index: {}", store.name());
        print_daemon(daemon.as_ref());
        if lines.is_empty() {
            println!("no model indexed yet: run `imgsim index DIR`");
        }
        for l in &lines {
            let index = if l.vector_index {
                format!("IVF-PQ index, {} rows not in it yet", l.unindexed_rows)
            } else {
                "exact search (no vector index)".into()
            };
            println!(
                "{:<16} {:>8} images  {:>9}  dim {:<5} {index}",
                format!("{}{}", l.model, l.precision.id_suffix()),
                l.images,
                human_bytes(l.bytes),
                l.dim
            );
            if let Some(photos) = l.photos.line() {
                println!("  {photos}");
            }
            for file in &l.damaged {
                println!("  damaged: {file}");
            }
        }
    }
    if damaged {
        eprintln!(
            "imgsim: a table is damaged: `imgsim repair` drops the rows in damaged files and \
             keeps the others; `imgsim index DIR` then embeds those files again"
        );
        return Ok(Outcome::SomeFailed);
    }
    Ok(Outcome::Done)
}

/// `imgsim status --json` lines.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StatusJson {
    Model(StatusLine),
    Daemon {
        running: bool,
        #[serde(flatten)]
        status: Option<imgsim::watch::DaemonStatus>,
    },
}

/// The state of the watch daemon on this database, if one answers.
#[cfg(unix)]
fn daemon_status(db_dir: &Path) -> Option<imgsim::watch::DaemonStatus> {
    imgsim::watch::socket::daemon_status(db_dir)
}

#[cfg(not(unix))]
fn daemon_status(_: &Path) -> Option<imgsim::watch::DaemonStatus> {
    None
}

fn print_daemon(daemon: Option<&imgsim::watch::DaemonStatus>) {
    let Some(d) = daemon else {
        println!("daemon: not running (start one with `imgsim watch DIR`)");
        return;
    };
    let ago = |at: i64| {
        let seconds = (imgsim::util::now_seconds() - at).max(0);
        if seconds < 120 {
            format!("{seconds} s ago")
        } else if seconds < 7200 {
            format!("{} min ago", seconds / 60)
        } else {
            format!("{} h ago", seconds / 3600)
        }
    };
    println!(
        "daemon: running (pid {}, since {}), {}, {}, {} queued, {} changes",
        d.pid,
        ago(d.started_at),
        d.mode,
        d.phase,
        d.queue,
        d.changes
    );
    for root in &d.roots {
        let state = if root.present {
            ""
        } else {
            "  (missing: rows kept)"
        };
        println!("  root: {}{state}", root.path);
    }
    println!("  models: {}", d.models.join(", "));
    println!("  memory: {}", human_bytes(d.resident_bytes));
    match &d.last_event {
        Some(e) => println!("  last event: {} ({})", e.what, ago(e.at)),
        None => println!("  last event: none yet"),
    }
    if let Some(e) = &d.last_error {
        println!("  last error: {} ({})", e.what, ago(e.at));
    }
}

fn dir_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}
