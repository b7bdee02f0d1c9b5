//! What every command shares: the model and database arguments, a photo library's arguments
//! and roots, the writer lock as a user meets it, the progress bar, and how results and
//! per-file failures are printed.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use imgsim::device::DeviceChoice;
use imgsim::models::{Model, Pooling, Precision, WeightsSource};
use imgsim::store::{remote, Store, WriterLock};

/// Options shared by every command that loads a model.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model name or alias: clip, dinov2, clip-vit-b32, clip-vit-l14, dinov2-small,
    /// dinov2-base, dinov2-large, or phash (the weight-free perceptual-hash baseline).
    /// `index`, `watch` and `compare` also take `all`: every model whose weights are local, and
    /// phash.
    #[arg(long, short = 'm', default_value = "clip")]
    pub model: String,
    /// Load the model from this directory (Hugging Face layout: config.json,
    /// model.safetensors, preprocessor_config.json) instead of the registry.
    #[arg(long, value_name = "DIR")]
    pub model_dir: Option<PathBuf>,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// The model's arithmetic: f32 (equal to the reference implementation; everywhere). On
    /// the CPU: bf16 (about twice as fast; needs AVX-512 BF16) or int8 (needs AVX-512 VNNI)
    /// for the linear layers. On a GPU: f16 or bf16 for the whole network. Each precision has
    /// its own table: index and search with the same one.
    #[arg(long, id = "model_precision", value_name = "PRECISION", value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
}

impl ModelArgs {
    pub fn source(&self) -> anyhow::Result<WeightsSource> {
        Ok(match &self.model_dir {
            Some(dir) => WeightsSource::Dir(dir.clone()),
            None => imgsim::models::source_for(&self.model)?,
        })
    }

    /// The model, or with `--model all` every registry model whose weights are local, and
    /// the weight-free `phash` (said once when that is all there is).
    pub fn sources_or_all(&self) -> anyhow::Result<Vec<WeightsSource>> {
        if self.model_dir.is_some() || !imgsim::models::is_all(&self.model) {
            return Ok(vec![self.source()?]);
        }
        let all = imgsim::models::local_sources();
        if all.len() == 1 {
            eprintln!(
                "imgsim: no network's weights are in the Hugging Face cache ({}), so only the \
                 phash baseline runs; fetch some with `imgsim models fetch clip dinov2`",
                imgsim::models::weights::cache_dir().display()
            );
        }
        Ok(all)
    }

    /// Loads the model on the chosen device, ready to embed.
    pub fn embedder(&self, pooling: Option<Pooling>) -> anyhow::Result<imgsim::embed::Embedder> {
        let device = select_device(self.device)?;
        let model = self.load(&self.source()?, pooling, &device)?;
        Ok(imgsim::embed::Embedder::new(model, device))
    }

    /// Loads one of the sources in the chosen precision.
    pub fn load(
        &self,
        source: &WeightsSource,
        pooling: Option<Pooling>,
        device: &candle_core::Device,
    ) -> imgsim::Result<Model> {
        Model::load_with(source, pooling, device, self.precision)
    }
}

/// The device for `choice`; says once, on stderr, when `auto` fell back to the CPU in a
/// binary built with a GPU backend, and why.
pub fn select_device(choice: imgsim::device::DeviceChoice) -> anyhow::Result<candle_core::Device> {
    let device = imgsim::device::select(choice)?;
    static SAID: std::sync::Once = std::sync::Once::new();
    if let Some(why) = imgsim::device::auto_fallback_reason() {
        SAID.call_once(|| eprintln!("imgsim: {why}"));
    }
    Ok(device)
}

/// A count of at least one (`-k`).
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("give at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// The error for a model that has no table in the database, naming those it has.
/// (`precision`: the one asked for; a table of the model in another precision is named, with
/// the flag that searches it.)
pub fn not_indexed(
    model: &str,
    precision: Precision,
    db_dir: &Path,
    store: &Store,
) -> anyhow::Error {
    let tables = store.tables().unwrap_or_default();
    let indexed = if tables.is_empty() {
        "none".to_string()
    } else {
        tables
            .iter()
            .map(|t| t.label())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let other_precision = tables
        .iter()
        .filter(|t| t.model == model)
        .map(|t| Precision::of_model_id(&t.model_id))
        .find(|p| *p != precision);
    let search_there = match other_precision {
        Some(p) => format!("search it with --precision {p}, or "),
        None => String::new(),
    };
    anyhow::anyhow!(
        "model {model}{} has not been indexed in {} (indexed: {indexed}); {search_there}run \
         `imgsim index --model {model}{} DIR`",
        precision.id_suffix(),
        if store.is_remote() {
            store.name()
        } else {
            db_dir.display().to_string()
        },
        precision.flag(),
    )
}

/// The embedding of one image file.
pub fn embed_one(embedder: &imgsim::embed::Embedder, path: &Path) -> imgsim::Result<Vec<f32>> {
    let mut out = None;
    embedder.embed_files(&[path.to_path_buf()], |_, r| out = Some(r))?;
    out.expect("one result per file")
}

/// A cosine similarity given on the command line (`--min-score`, `--threshold`).
pub fn cosine(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(s) if (-1.0..=1.0).contains(&s) => Ok(s),
        Ok(s) => Err(format!("{s} is not a cosine similarity (from -1 to 1)")),
        Err(e) => Err(e.to_string()),
    }
}

/// Where the index lives.
#[derive(clap::Args, Debug, Clone)]
pub struct DbArgs {
    /// The index database: a folder, or an object store (s3://bucket/prefix; credentials and
    /// endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION,
    /// AWS_ALLOW_HTTP, ...). Default: $IMGSIM_DB, else ~/.local/share/imgsim.
    #[arg(long, value_name = "PATH|URL")]
    db: Option<PathBuf>,
}

impl DbArgs {
    /// The database's folder; for a database on object storage, this machine's folder of its
    /// local state (locks, socket, filter index), which points at the address.
    pub fn dir(&self) -> anyhow::Result<PathBuf> {
        let named =
            self.db.clone().or_else(Store::default_dir).ok_or_else(|| {
                anyhow::anyhow!("no data folder is known here; name one with --db")
            })?;
        match named.to_str() {
            Some(text) if remote::is_address(text) => Ok(remote::local_folder(text)?),
            _ => Ok(named),
        }
    }
}

/// A photo library: its folders, the model(s), the database, what to leave out. Shared by
/// `index` and `watch`.
#[derive(clap::Args, Debug)]
pub struct LibraryArgs {
    /// Folders to index (recursively). Links are not followed.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub db: DbArgs,
    /// Skip paths matching this glob (repeatable), e.g. '**/Screenshots' or '*.gif'.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Also take files of other names (or none) whose first bytes are an image (HEIC, JPEG,
    /// RAW, ...): one read of 64 bytes per such file. Off by default: files are taken by
    /// extension.
    #[arg(long)]
    pub sniff: bool,
}

impl LibraryArgs {
    /// The folders as canonical paths. A folder that is not there is an error, unless
    /// `allow_missing` (the daemon watches for it to appear: an unmounted drive).
    pub fn roots(&self, allow_missing: bool) -> anyhow::Result<Vec<PathBuf>> {
        let mut roots = Vec::new();
        for dir in &self.dirs {
            match std::fs::canonicalize(dir) {
                Ok(root) => {
                    anyhow::ensure!(root.is_dir(), "{}: not a folder", dir.display());
                    roots.push(root);
                }
                Err(e) if allow_missing && e.kind() == std::io::ErrorKind::NotFound => {
                    let root = std::path::absolute(dir)?;
                    eprintln!(
                        "imgsim: {}: not there (yet); it is indexed once it appears",
                        root.display()
                    );
                    roots.push(root);
                }
                Err(e) => anyhow::bail!("{}: {e}", dir.display()),
            }
        }
        Ok(roots)
    }

    /// The `--exclude` patterns as one matcher.
    pub fn exclude(&self) -> anyhow::Result<globset::GlobSet> {
        let mut globs = globset::GlobSetBuilder::new();
        for pattern in &self.exclude {
            globs.add(
                globset::Glob::new(pattern)
                    .map_err(|e| anyhow::anyhow!("--exclude {pattern}: {e}"))?,
            );
        }
        Ok(globs.build()?)
    }

    /// What the command does, for the lock file: `imgsim index ~/Pictures`.
    pub fn doing(&self, command: &str) -> String {
        let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        format!("imgsim {command} {}", dirs.join(" "))
    }
}

/// A path as the index keys it (canonical), or an error naming the path.
pub fn canonical(path: &Path) -> anyhow::Result<PathBuf> {
    std::fs::canonicalize(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The database's writer lock; while another process holds it, says so once and waits.
pub fn lock_for_writing(db_dir: &Path, doing: &str) -> anyhow::Result<WriterLock> {
    Ok(WriterLock::acquire(db_dir, doing, true, |holder| {
        eprintln!(
            "imgsim: waiting for {holder} to finish writing to {}",
            db_dir.display()
        )
    })?)
}

/// Prints one JSON line on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) {
    println!("{}", serde_json::to_string(value).expect("serialisable"));
}

/// Prints `prefix`, the path a stored key names, and `suffix`, as one line. The path goes out
/// as its own bytes, so that a name that is not UTF-8 can be pasted back and opened.
pub fn print_path_line(prefix: &str, key: &str, suffix: &str) {
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;
    let path = imgsim::util::path_of(key);
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(prefix.as_bytes())
        .and_then(|()| out.write_all(path.as_os_str().as_bytes()))
        .and_then(|()| writeln!(out, "{suffix}"));
}

/// A path in JSON output: `path` is text (bytes that are not UTF-8 shown as U+FFFD), and a
/// name that is not UTF-8 also has `path_bytes`, its bytes in base64 (as ripgrep does).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct JsonPath {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_bytes: Option<String>,
}

impl JsonPath {
    pub fn of_key(key: &str) -> Self {
        use base64::Engine;
        use std::os::unix::ffi::OsStrExt;
        let path = imgsim::util::path_of(key);
        let bytes = path.as_os_str().as_bytes();
        Self {
            path: path.to_string_lossy().into_owned(),
            path_bytes: std::str::from_utf8(bytes)
                .is_err()
                .then(|| base64::engine::general_purpose::STANDARD.encode(bytes)),
        }
    }
}

/// One file-level problem: reported, counted, never fatal.
pub fn report_file_error(err: &imgsim::Error) {
    eprintln!("imgsim: {err}");
}

/// A progress bar on stderr when it is a terminal and output is not JSON; hidden otherwise.
pub fn progress_bar(len: usize, json: bool) -> indicatif::ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} images  {per_sec}  ETA {eta}  {wide_msg}",
        )
        .expect("valid template"),
    );
    bar
}

/// The library's progress drawn as bars, one per step, with unreadable files reported (and
/// counted) as they come.
pub struct Bar {
    bar: indicatif::ProgressBar,
    json: bool,
    /// Put before each step's label (the model's name, say).
    pub prefix: String,
    pub failed_files: usize,
}

impl Bar {
    pub fn new(json: bool) -> Self {
        Self {
            bar: indicatif::ProgressBar::hidden(),
            json,
            prefix: String::new(),
            failed_files: 0,
        }
    }
}

impl imgsim::progress::Progress for Bar {
    fn start(&mut self, label: &str, total: usize) {
        self.bar.finish_and_clear();
        self.bar = progress_bar(total, self.json);
        self.bar.set_message(format!("{}{label}", self.prefix));
    }
    fn advance(&mut self, n: usize) {
        self.bar.inc(n as u64);
    }
    fn file_failed(&mut self, error: &imgsim::Error) {
        self.failed_files += 1;
        self.bar.suspend(|| report_file_error(error));
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// `12 KiB`, `3.4 MiB`, `1.2 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    let kib = bytes as f64 / 1024.0;
    if kib < 1024.0 {
        format!("{kib:.0} KiB")
    } else if kib < 1024.0 * 1024.0 {
        format!("{:.1} MiB", kib / 1024.0)
    } else {
        format!("{:.1} GiB", kib / (1024.0 * 1024.0))
    }
}
