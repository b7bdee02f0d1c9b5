//! `imgsim bench text`: how long one query in words takes, as a user meets it: the text
//! tower in-process (load, tokenize, embed), a whole `imgsim search` process without and with
//! the watch daemon (its tower loaded on the first text query, recent texts remembered), and
//! PyTorch's `get_text_features` on the same folder in the same run (--peer), whose
//! embeddings are compared with ours.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use imgsim::models::{TextModel, WeightsSource};
use serde::{Deserialize, Serialize};

use super::bench_watch::{p50, start_daemon, work_dir};
use super::common::print_json;
use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct TextBenchArgs {
    /// A CLIP folder in Hugging Face layout with its tokenizer.json (for the real
    /// architecture with random weights: `python bench/make_random_model.py clip DIR`).
    #[arg(long, value_name = "DIR")]
    model_dir: PathBuf,
    /// Photos to index for the whole-process runs (the first 4 are used).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "../shared/data/coco128/val2017"
    )]
    images: PathBuf,
    /// Texts embedded in-process (and by the peer); whole processes run a fifth as many.
    #[arg(long, default_value_t = 40)]
    queries: usize,
    /// Also run PyTorch + transformers (bench/peer_torch_text.py) with the same threads.
    #[arg(long)]
    peer: bool,
    /// The Python that has torch and transformers, for --peer.
    #[arg(long, env = "IMGSIM_PYTHON", default_value = "python3")]
    python: String,
    #[arg(long, default_value = "bench/peer_torch_text.py")]
    peer_script: PathBuf,
    /// Working folder (default: a fresh temporary one); empty or new, or one a benchmark made.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TextBenchLine {
    pub model: String,
    pub threads: usize,
    pub load_ms: f64,
    pub tokenize_p50_ms: f64,
    pub embed_p50_ms: f64,
    /// Whole `imgsim search` processes.
    pub search_without_daemon_p50_ms: f64,
    /// The daemon's first text query (its text tower loads).
    pub search_daemon_first_ms: f64,
    /// New texts, tower loaded.
    pub search_with_daemon_p50_ms: f64,
    /// Texts the daemon remembers.
    pub search_with_daemon_repeated_p50_ms: f64,
    pub peer: Option<PeerText>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PeerText {
    pub torch: String,
    pub transformers: String,
    pub threads: usize,
    pub import_s: f64,
    pub load_s: f64,
    pub tokenize_p50_ms: f64,
    pub embed_p50_ms: f64,
    /// A whole Python process that embeds one text.
    #[serde(default)]
    pub process_p50_ms: f64,
    /// Largest relative L2 distance between its embeddings and ours, same texts.
    #[serde(default)]
    pub max_relative_l2: f64,
    #[serde(skip_serializing, default)]
    pub embeddings: Vec<Vec<f32>>,
}

const WORDS: &[&str] = &[
    "dog",
    "cat",
    "bicycle",
    "red bus",
    "pizza",
    "beach at sunset",
    "kitchen",
    "snowboard",
    "giraffe",
    "birthday cake",
    "train station",
    "laptop on a desk",
    "two people talking",
    "umbrella in the rain",
    "teddy bear",
    "airplane",
    "sailing boat",
    "bowl of fruit",
    "traffic light",
    "skateboarder",
    "horse",
    "clock tower",
    "tennis racket",
    "sheep",
];

fn texts(n: usize, salt: &str) -> Vec<String> {
    (0..n)
        .map(|i| {
            let word = WORDS[i % WORDS.len()];
            match i / WORDS.len() {
                0 => format!("a photo of a {word}{salt}"),
                round => format!("a photo of a {word}, picture {round}{salt}"),
            }
        })
        .collect()
}

pub fn run(args: TextBenchArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(args.queries >= 5, "--queries must be at least 5");
    let model_dir = std::fs::canonicalize(&args.model_dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.model_dir.display()))?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let texts = texts(args.queries, "");

    // In-process.
    let t = Instant::now();
    let model = TextModel::load(
        &WeightsSource::Dir(model_dir.clone()),
        &candle_core::Device::Cpu,
    )?;
    let load_ms = ms(t);
    model.embed(&texts[0])?;
    let (mut tokenize, mut embed) = (Vec::new(), Vec::new());
    let mut ours = Vec::new();
    for text in &texts {
        let t = Instant::now();
        model.tokens(text)?;
        tokenize.push(ms(t));
        let t = Instant::now();
        ours.push(model.embed(text)?);
        embed.push(ms(t));
    }

    // Whole processes, on a small indexed library.
    let work = work_dir(&args.dir, "text")?;
    let (library, db) = (work.join("library"), work.join("db"));
    std::fs::create_dir_all(&library)?;
    for photo in imgsim::scan::images_in(&args.images)?.iter().take(4) {
        std::fs::copy(photo, library.join(photo.file_name().expect("a file")))?;
    }
    let exe = std::env::current_exe()?;
    let model_arg = model_dir.display().to_string();
    let run = |sub: &[&str]| -> anyhow::Result<f64> {
        let t = Instant::now();
        let out = Command::new(&exe)
            .args(sub)
            .arg("--db")
            .arg(&db)
            .args(["--model-dir", &model_arg])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "imgsim {} failed: {}",
            sub.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(ms(t))
    };
    run(&["index", &library.display().to_string()])?;
    let processes = (args.queries / 5).max(3);
    let mut without = Vec::new();
    for text in &texts[..processes] {
        without.push(run(&["search", text, "--no-daemon", "-k", "3"])?);
    }
    let daemon = start_daemon(
        &exe,
        &library,
        &db,
        &["--model-dir".to_string(), model_arg.clone()],
    )?;
    let fresh = self::texts(processes + 1, " (new)");
    let first = run(&["search", &fresh[0], "-k", "3"])?;
    let mut with = Vec::new();
    for text in &fresh[1..] {
        with.push(run(&["search", text, "-k", "3"])?);
    }
    let mut repeated = Vec::new();
    for text in &fresh[1..] {
        repeated.push(run(&["search", text, "-k", "3"])?);
    }
    drop(daemon);
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }

    let peer = if args.peer {
        Some(run_peer(&args, &model_dir, &texts, threads, &ours)?)
    } else {
        None
    };
    let line = TextBenchLine {
        model: model.name.clone(),
        threads,
        load_ms,
        tokenize_p50_ms: p50(tokenize),
        embed_p50_ms: p50(embed),
        search_without_daemon_p50_ms: p50(without),
        search_daemon_first_ms: first,
        search_with_daemon_p50_ms: p50(with),
        search_with_daemon_repeated_p50_ms: p50(repeated),
        peer,
    };
    if args.json {
        print_json(&line);
    } else {
        print_table(&line, args.queries, processes);
    }
    Ok(Outcome::Done)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn run_peer(
    args: &TextBenchArgs,
    model_dir: &std::path::Path,
    texts: &[String],
    threads: usize,
    ours: &[Vec<f32>],
) -> anyhow::Result<PeerText> {
    let base = || {
        let mut cmd = Command::new(&args.python);
        cmd.arg(&args.peer_script)
            .arg("--model-dir")
            .arg(model_dir)
            .args(["--threads", &threads.to_string()]);
        cmd
    };
    let mut cmd = base();
    for text in texts {
        cmd.args(["--text", text]);
    }
    let out = cmd
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run `{}`: {e}", args.python))?;
    anyhow::ensure!(
        out.status.success(),
        "the peer script failed: {}",
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    let mut peer: PeerText = serde_json::from_str(line)
        .map_err(|e| anyhow::anyhow!("the peer script printed no figures ({e})"))?;
    peer.max_relative_l2 = peer
        .embeddings
        .iter()
        .zip(ours)
        .map(|(theirs, ours)| relative_l2(ours, theirs))
        .fold(0.0, f64::max);
    let mut process = Vec::new();
    for text in texts.iter().take(3) {
        let t = Instant::now();
        let status = base().args(["--one", "--text", text]).status()?;
        anyhow::ensure!(status.success(), "the peer script failed on one text");
        process.push(ms(t));
    }
    peer.process_p50_ms = p50(process);
    Ok(peer)
}

fn relative_l2(a: &[f32], b: &[f32]) -> f64 {
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum::<f64>().sqrt();
    diff / norm.max(1e-12)
}

fn print_table(line: &TextBenchLine, queries: usize, processes: usize) {
    println!("model: {} ({} threads)", line.model, line.threads);
    println!("| | imgsim | PyTorch + transformers |");
    println!("|---|---:|---:|");
    let peer = line.peer.as_ref();
    let theirs = |f: fn(&PeerText) -> f64, unit: &str| {
        peer.map_or("not run (--peer)".to_string(), |p| {
            format!("{:.1} {unit}", f(p))
        })
    };
    println!(
        "| load the text tower and tokenizer | {:.0} ms | {} |",
        line.load_ms,
        theirs(|p| p.load_s * 1e3, "ms")
    );
    println!(
        "| tokenize one text (p50 of {queries}) | {:.2} ms | {} |",
        line.tokenize_p50_ms,
        theirs(|p| p.tokenize_p50_ms, "ms")
    );
    println!(
        "| embed one text, tokenizer included (p50 of {queries}) | {:.1} ms | {} |",
        line.embed_p50_ms,
        theirs(|p| p.embed_p50_ms, "ms")
    );
    println!(
        "| whole process, one text query (p50 of {processes}) | {:.0} ms (`search --no-daemon`) | {} |",
        line.search_without_daemon_p50_ms,
        theirs(|p| p.process_p50_ms, "ms (embed only)")
    );
    println!(
        "| `search` with the daemon: first text (tower loads) | {:.0} ms | |",
        line.search_daemon_first_ms
    );
    println!(
        "| `search` with the daemon: new texts (p50 of {processes}) | {:.0} ms | |",
        line.search_with_daemon_p50_ms
    );
    println!(
        "| `search` with the daemon: a remembered text (p50 of {processes}) | {:.0} ms | |",
        line.search_with_daemon_repeated_p50_ms
    );
    if let Some(p) = peer {
        println!(
            "PyTorch {} / transformers {}, {} threads; import {:.1} s; largest relative L2 \
             between its embeddings and ours: {:.2e}",
            p.torch, p.transformers, p.threads, p.import_s, p.max_relative_l2
        );
    }
}
