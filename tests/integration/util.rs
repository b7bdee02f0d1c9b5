//! Shared helpers: fixture paths, the reference embeddings, vector comparisons, and running
//! the `imgsim` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `imgsim` binary under test: this build's, or the one `IMGSIM_TEST_BINARY` names (the
/// CUDA build of `scripts/build-cuda.sh`, whose CPU commands must pass the same tests).
pub fn imgsim_binary() -> PathBuf {
    match std::env::var_os("IMGSIM_TEST_BINARY") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_imgsim")),
    }
}

pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures")
}

/// The real photos shared by the project: `../shared/data/coco128`.
pub fn coco() -> PathBuf {
    root().join("../shared/data/coco128/val2017")
}

pub fn model_dir(name: &str) -> PathBuf {
    fixtures().join(name)
}

#[derive(Debug, Deserialize)]
pub struct Reference {
    pub images: Vec<RefImage>,
}

#[derive(Debug, Deserialize)]
pub struct RefImage {
    /// `coco/<file>` or `images/<file>` (relative to tests/fixtures).
    pub image: String,
    pub crop: String,
    pub embedding: Vec<f32>,
    #[serde(default)]
    pub embedding_cls: Vec<f32>,
}

impl RefImage {
    pub fn path(&self) -> PathBuf {
        match self.image.strip_prefix("coco/") {
            Some(file) => coco().join(file),
            None => fixtures().join(&self.image),
        }
    }

    /// PNG inputs decode identically everywhere; JPEG decoders differ slightly.
    pub fn is_png(&self) -> bool {
        self.image.ends_with(".png")
    }
}

/// The reference's embeddings of the fixture images. A parity check over no images would pass
/// without checking anything: the list must hold PNGs and JPEGs.
pub fn reference(model: &str) -> Reference {
    let path = fixtures()
        .join("reference")
        .join(model)
        .join("embeddings.json");
    let reference: Reference =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let pngs = reference.images.iter().filter(|i| i.is_png()).count();
    assert!(
        pngs >= 3 && reference.images.len() - pngs >= 3,
        "{}: too few reference images ({pngs} PNG of {})",
        path.display(),
        reference.images.len()
    );
    assert!(reference.images.iter().all(|i| !i.embedding.is_empty()));
    reference
}

pub fn reference_crop(model: &str, image: &RefImage) -> image::RgbImage {
    let path = fixtures().join("reference").join(model).join(&image.crop);
    image::open(path).unwrap().into_rgb8()
}

/// ||a - b|| / ||b||
pub fn relative_l2(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let diff: f32 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt();
    diff / b.iter().map(|y| y * y).sum::<f32>().sqrt()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// The parity bound of an embedding: relative L2 <= 1e-3 where our pixels are the reference's
/// exactly (PNG; JPEG through libjpeg-turbo, the `turbojpeg` feature), cosine >= 0.9999 for
/// JPEG through the pure-Rust decoder.
pub fn within_parity_bound(image: &RefImage, ours: &[f32], reference: &[f32]) -> bool {
    if image.is_png() || cfg!(feature = "turbojpeg") {
        relative_l2(ours, reference) <= 1e-3
    } else {
        cosine(ours, reference) >= 0.9999
    }
}

/// `imgsim` as a test runs it (ripgrep's `TestCommand`): an empty, private Hugging Face
/// cache, no network, and a database of its own in a temporary folder (`IMGSIM_DB`; a `--db`
/// in the arguments wins).
pub struct Imgsim {
    cwd: PathBuf,
    db: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Imgsim {
    pub fn new() -> Self {
        Self {
            cwd: root(),
            db: tempfile::tempdir().expect("a temporary folder"),
            env: Vec::new(),
        }
    }

    /// Runs in `dir` instead of the repository's root.
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.cwd = dir.to_path_buf();
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The database folder the commands use.
    pub fn db(&self) -> PathBuf {
        self.db.path().join("db")
    }

    /// The command [`Self::run`] runs, for a test that starts it itself.
    pub fn command(&self, args: &[&str]) -> Command {
        let cache = std::env::temp_dir().join("imgsim-tests-empty-hf-cache");
        let mut command = Command::new(imgsim_binary());
        command
            .args(args)
            .current_dir(&self.cwd)
            .env("HF_HUB_CACHE", &cache)
            .env("HF_HUB_OFFLINE", "1")
            .env("IMGSIM_DB", self.db())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run imgsim");
        Run {
            out,
            args: args.join(" "),
        }
    }
}

/// One finished run of `imgsim`, with the checks scenarios make.
pub struct Run {
    pub out: Output,
    args: String,
}

/// A run of a command built by hand (a daemon, a second process).
impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            out,
            args: "(a command built by the test)".into(),
        }
    }
}

impl std::ops::Deref for Run {
    type Target = Output;
    fn deref(&self) -> &Output {
        &self.out
    }
}

impl Run {
    /// Checks the exit code (0 done, 1 nothing found, 2 error) and that nothing panicked;
    /// says what ran and what it printed when not.
    pub fn assert_exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.out.status.code(),
            Some(code),
            "imgsim {}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.stdout(),
            self.stderr()
        );
        assert!(!self.stderr().contains("panicked"), "{}", self.stderr());
        self
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    /// Standard output as JSON lines, each parsed into `T`.
    pub fn json_lines<T: for<'a> Deserialize<'a>>(&self) -> Vec<T> {
        parse_lines(&self.stdout())
    }

    /// Checks that standard error says `needle`.
    pub fn assert_stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr().contains(needle),
            "imgsim {}: no {needle:?} in\n{}",
            self.args,
            self.stderr()
        );
        self
    }
}

/// `imgsim ARGS...` in the repository's root (see [`Imgsim`]).
pub fn imgsim(args: &[&str]) -> Run {
    Imgsim::new().run(args)
}

/// `imgsim ARGS...` in `dir`.
pub fn imgsim_in(args: &[&str], dir: &Path) -> Run {
    Imgsim::new().current_dir(dir).run(args)
}

/// JSON Lines output parsed back into typed messages.
pub fn parse_lines<T: for<'a> Deserialize<'a>>(out: &str) -> Vec<T> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Copies the folder `from` to `to`, recursively (a fixture a test may change).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file under `dir` with its bytes, to compare a folder before and after.
pub fn tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect()
}

/// `mount ARGS...`; false where mounting is impossible (not root, no capability).
pub fn mount(args: &[&str]) -> bool {
    Command::new("mount")
        .args(args)
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Unmounts a mount when the test ends, however it ends.
pub struct Mounted(pub PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `of` seen read-only at `at` (a bind mount, remounted read-only) for the test; None, said,
/// where mounting is impossible.
pub fn read_only_view(of: &Path, at: &Path) -> Option<Mounted> {
    std::fs::create_dir_all(at).unwrap();
    let at_arg = at.to_str().unwrap();
    if !mount(&["--bind", of.to_str().unwrap(), at_arg]) {
        eprintln!("skipped: a read-only bind mount needs root (mount --bind failed)");
        return None;
    }
    let mounted = Mounted(at.to_path_buf());
    assert!(
        mount(&["-o", "remount,bind,ro", at_arg]),
        "remount read-only"
    );
    assert!(
        std::fs::write(at.join("probe"), "x").is_err(),
        "the mount is read-only"
    );
    Some(mounted)
}

/// A tmpfs of `size` mounted at `at` for the test (false where mounting is impossible).
pub fn small_disk(at: &Path, size: &str) -> Option<Mounted> {
    std::fs::create_dir_all(at).unwrap();
    let options = format!("size={size}");
    if !mount(&["-t", "tmpfs", "-o", &options, "tmpfs", at.to_str().unwrap()]) {
        eprintln!("skipped: mounting a small tmpfs needs root (mount -t tmpfs failed)");
        return None;
    }
    Some(Mounted(at.to_path_buf()))
}

/// Fills the file system of `dir` but for about `spare` bytes; the filler's path.
pub fn fill_disk(dir: &Path, spare: u64) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    while file.write_all(&block).is_ok() {}
    drop(file);
    let len = std::fs::metadata(&filler).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(len.saturating_sub(spare))
        .unwrap();
    filler
}

/// Waits until `done` holds, failing the test after `bound`.
pub fn wait_for(what: &str, bound: std::time::Duration, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < bound, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
