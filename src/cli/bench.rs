use std::path::PathBuf;
use std::time::Duration;

use imgsim::bench::{self, Figures, PeerRequest};
use imgsim::models::{find, Family, Model, Precision, WeightsSource};
use serde::{Deserialize, Serialize};

use super::common::print_json;
use super::Outcome;

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Images/s of the model alone (batch 1 and --batch-size) and end to end over --images,
    /// beside PyTorch + transformers on the same machine (--peer).
    Embed(EmbedBenchArgs),
    /// Vector search: recall@k against exact search and query latency of the store (exact
    /// and IVF-PQ), beside FAISS on the same vectors (--peer).
    Ann(AnnBenchArgs),
    /// The watch daemon: photos ingested per second, how soon one new photo is searchable,
    /// idle memory, and `imgsim similar` with and without the daemon.
    Watch(super::bench_watch::WatchBenchArgs),
    /// Mixed use for --minutes: a watched library changed at random while index, tag,
    /// similar and status run beside the daemon; then the table must equal the disk.
    Soak(super::bench_soak::SoakArgs),
    /// `imgsim dupes` at a library's size: time to find the pairs and form the groups, and
    /// the recall of the pairs against exact all-pairs search (on a sample of rows).
    Dupes(DupesBenchArgs),
    /// One query in words: the text tower in-process, a whole `imgsim search` with and
    /// without the daemon, beside PyTorch's get_text_features on the same folder (--peer).
    Text(super::bench_text::TextBenchArgs),
    /// Photos decoded per second by format (JPEG, PNG, HEIC, AVIF, RAW previews, ...),
    /// through imgsim's own decode path, on one thread.
    Decode(super::bench_decode::DecodeBenchArgs),
    /// The web page (`imgsim serve`) in headless Chromium: time from a query to the first
    /// screen of thumbnails, made on demand and cached.
    Serve(super::bench_serve::ServeBenchArgs),
}

#[derive(clap::Args, Debug)]
pub struct DupesBenchArgs {
    /// Library sizes to measure (repeat the flag).
    #[arg(long = "rows", default_values_t = [100_000usize])]
    rows: Vec<usize>,
    /// Vector width (CLIP ViT-B/32: 512, DINOv2-base: 768).
    #[arg(long, default_value_t = 512)]
    dim: usize,
    /// Cosine at or above which two images are duplicates.
    #[arg(long, default_value_t = 0.9)]
    threshold: f32,
    /// Rows whose pairs are checked against exact search.
    #[arg(long, default_value_t = 1000)]
    sample: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the vectors into a table of this database first and read them back as `dupes`
    /// does (a folder or s3://bucket/prefix); the table is dropped after.
    #[arg(long, value_name = "PATH|URL")]
    db: Option<String>,
    /// One JSON line per size.
    #[arg(long)]
    json: bool,
}

fn run_dupes(args: DupesBenchArgs) -> anyhow::Result<Outcome> {
    let db = bench_db(args.db.as_deref())?;
    for &rows in &args.rows {
        anyhow::ensure!(rows >= 10, "--rows {rows}: give at least 10");
        let mut bar = super::common::Bar::new(args.json);
        let f = imgsim::bench::dupes::run(
            rows,
            args.dim,
            args.threshold,
            args.sample,
            args.seed,
            db.as_deref(),
            &mut bar,
        )?;
        drop(bar);
        if args.json {
            print_json(&f);
        } else {
            println!(
                "{} rows x {}: pairs in {:.1} s ({}), groups in {:.2} s; {} pairs, {} groups; \
                 pair recall {:.4} ({} exact pairs of {} sampled rows)",
                f.rows,
                f.dim,
                f.pairs_seconds,
                f.method,
                f.groups_seconds,
                f.pairs,
                f.groups,
                f.pair_recall,
                f.sampled_pairs,
                f.sampled_rows
            );
            if let (Some(write), Some(read)) = (f.write_seconds, f.read_seconds) {
                println!("  through the table: written in {write:.1} s, read back in {read:.1} s");
            }
        }
    }
    Ok(Outcome::Done)
}

#[derive(clap::Args, Debug)]
pub struct AnnBenchArgs {
    /// Table sizes to measure (repeat the flag).
    #[arg(long = "rows", default_values_t = [100_000usize])]
    rows: Vec<usize>,
    #[arg(long, default_value_t = 768)]
    dim: usize,
    /// Queries per method (perturbed copies of stored vectors).
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Queries against the exact, unindexed table (each scans every row).
    #[arg(long, default_value_t = 30)]
    exact_queries: usize,
    #[arg(short = 'k', long, default_value_t = 10)]
    k: usize,
    /// Clusters in the synthetic data (0: one per 100 rows).
    #[arg(long, default_value_t = 0)]
    clusters: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Working folder for the tables and vector files (several GB at 1M rows).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Put the table in this database instead (a folder or s3://bucket/prefix, as for every
    /// command): the table is made for the run and dropped after it.
    #[arg(long, value_name = "PATH|URL")]
    db: Option<String>,
    /// Also run FAISS (bench/peer_faiss.py: IndexFlatIP and IVF-PQ of the same shape).
    #[arg(long)]
    peer: bool,
    /// The Python that has faiss-cpu and numpy, for --peer.
    #[arg(long, env = "IMGSIM_PYTHON", default_value = "python3")]
    python: String,
    #[arg(long, default_value = "bench/peer_faiss.py")]
    peer_script: PathBuf,
    /// One JSON line per measurement.
    #[arg(long)]
    json: bool,
}

/// A benchmark's `--db`: a folder, or an address on object storage (its local folder).
fn bench_db(named: Option<&str>) -> anyhow::Result<Option<PathBuf>> {
    Ok(match named {
        Some(named) if imgsim::store::remote::is_address(named) => {
            Some(imgsim::store::remote::local_folder(named)?)
        }
        Some(named) => Some(PathBuf::from(named)),
        None => None,
    })
}

fn run_ann(args: AnnBenchArgs) -> anyhow::Result<Outcome> {
    use imgsim::bench::ann::{self, AnnConfig, AnnRow};
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("imgsim-bench-ann"));
    std::fs::create_dir_all(&dir)?;
    let db = bench_db(args.db.as_deref())?;
    let print = |row: &AnnRow| {
        if args.json {
            print_json(row);
        } else {
            println!(
                "{:>9} rows  {:<28} build {:>8}  recall@{} {:.4}  p50 {:>8.2} ms  p99 {:>8.2} ms  ({} queries)",
                row.rows,
                row.method,
                row.build_seconds.map_or("-".into(), |s| format!("{s:.1} s")),
                args.k,
                row.recall_at_k,
                row.p50_ms,
                row.p99_ms,
                row.queries
            );
        }
    };
    for &rows in &args.rows {
        let cfg = AnnConfig {
            rows,
            dim: args.dim,
            queries: args.queries,
            k: args.k,
            clusters: if args.clusters == 0 {
                (rows / 100).max(1)
            } else {
                args.clusters
            },
            seed: args.seed,
            dir: dir.clone(),
            exact_queries: args.exact_queries,
            db: db.clone(),
        };
        let started = std::time::Instant::now();
        let data = ann::clustered_vectors(rows, args.dim, cfg.clusters, args.seed);
        let queries = ann::perturbed_queries(&data, args.dim, args.queries, args.seed);
        let truth = ann::ground_truth(&data, &queries, args.dim, args.k)?;
        if !args.json {
            eprintln!(
                "imgsim bench ann: {rows} vectors of {} dimensions in {} clusters, {} queries, \
                 exact top {} in {:.1} s",
                args.dim,
                cfg.clusters,
                args.queries,
                args.k,
                started.elapsed().as_secs_f64()
            );
        }
        ann::run(&cfg, &data, &queries, &truth, &print)?;
        if args.peer {
            let vectors = dir.join("vectors.f32");
            let query_file = dir.join("queries.f32");
            let truth_file = dir.join("truth.json");
            ann::write_f32(&vectors, &data)?;
            ann::write_f32(&query_file, &queries)?;
            std::fs::write(&truth_file, serde_json::to_string(&truth)?)?;
            drop(data);
            let (nlist, m) = imgsim::store::ivf_pq_params(rows, args.dim);
            match ann::run_peer(&ann::AnnPeerRequest {
                python: &args.python,
                script: &args.peer_script,
                vectors: &vectors,
                queries: &query_file,
                truth: &truth_file,
                dim: args.dim,
                k: args.k,
                nlist,
                m,
                nprobe: imgsim::store::NPROBES,
                refine: imgsim::store::REFINE_FACTOR as usize,
            }) {
                Ok(peer_rows) => peer_rows.iter().for_each(&print),
                Err(e) => eprintln!("imgsim: the FAISS peer failed: {e}"),
            }
            for file in [&vectors, &query_file, &truth_file] {
                let _ = std::fs::remove_file(file);
            }
        }
    }
    Ok(Outcome::Done)
}

#[derive(clap::Args, Debug)]
pub struct EmbedBenchArgs {
    /// Models to measure (repeat the flag).
    #[arg(long = "model", short = 'm', default_values_t = ["clip-vit-b32".to_string(), "dinov2-base".to_string()])]
    models: Vec<String>,
    /// Build the real architecture with random weights (same work, no download needed).
    #[arg(long)]
    random_weights: bool,
    /// A folder of images for the end-to-end run (read, decode, preprocess, embed).
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
    /// Also make this many camera-sized photos (4000x3000 JPEGs upscaled from --images) and
    /// measure decoding and resizing them, and embedding them end to end.
    #[arg(long, default_value_t = 0, value_name = "N")]
    camera: usize,
    /// Run the end-to-end pass over --images this many times, reporting resident memory after
    /// each (a long run must not grow).
    #[arg(long, default_value_t = 1, value_name = "N")]
    repeat: usize,
    /// Batch sizes of the model-only runs, comma-separated; one size N measures 1 and N
    /// [default: 1 and the device's batch, 16 on the CPU, 64 on a GPU]. The end-to-end runs
    /// use the device's batch when it is listed, else the largest.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    batch_size: Vec<usize>,
    /// Seconds spent on each model-only measurement.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Also run the PyTorch peer script (bench/peer_torch.py) with the same threads.
    #[arg(long)]
    peer: bool,
    /// The Python that has torch and transformers, for --peer.
    #[arg(long, env = "IMGSIM_PYTHON", default_value = "python3")]
    python: String,
    /// The peer script.
    #[arg(long, default_value = "bench/peer_torch.py")]
    peer_script: PathBuf,
    #[arg(long, value_enum, default_value_t = imgsim::device::DeviceChoice::Auto)]
    device: imgsim::device::DeviceChoice,
    /// Precisions to measure, comma-separated (f32; bf16, int8 on the CPU; f16, bf16 on a
    /// GPU). Every one but f32 is also compared with f32 of the same weights over --images
    /// (cosine of the embeddings and overlap of the 10 nearest neighbours), so f32 runs first
    /// whenever images are given.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "LIST",
        default_value = "f32"
    )]
    precision: Vec<Precision>,
    /// One JSON line per model and precision.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BenchLine {
    pub model: String,
    #[serde(default)]
    pub precision: Precision,
    /// Against f32 with the same weights, over --images (absent for f32).
    #[serde(default)]
    pub fidelity: Option<bench::Fidelity>,
    pub random_weights: bool,
    pub device: String,
    pub threads: usize,
    pub imgsim: Figures,
    pub decode: Option<bench::DecodeResize>,
    /// Resident memory (MiB) after each end-to-end pass over --images.
    pub rss_mb_after_each_pass: Vec<f64>,
    /// Peak resident memory (MiB) of the process while this model ran at this precision
    /// (the peak is reset before each precision).
    pub peak_rss_mb: Option<f64>,
    pub pytorch: Option<Figures>,
    pub peer_error: Option<String>,
}

pub fn run(command: BenchCommand) -> anyhow::Result<Outcome> {
    let args = match command {
        BenchCommand::Embed(args) => args,
        BenchCommand::Ann(args) => return run_ann(args),
        BenchCommand::Watch(args) => return super::bench_watch::run(args),
        BenchCommand::Soak(args) => return super::bench_soak::run(args),
        BenchCommand::Dupes(args) => return run_dupes(args),
        BenchCommand::Text(args) => return super::bench_text::run(args),
        BenchCommand::Decode(args) => return super::bench_decode::run(args),
        BenchCommand::Serve(args) => return super::bench_serve::run(args),
    };
    let device = super::common::select_device(args.device)?;
    let threads = candle_core::utils::get_num_threads();
    let paths = match &args.images {
        Some(dir) => {
            let paths = imgsim::scan::images_in(dir)?;
            if paths.is_empty() {
                anyhow::bail!("no images in {}", dir.display());
            }
            paths
        }
        None => Vec::new(),
    };
    let camera_dir = std::env::temp_dir().join("imgsim-bench-camera");
    let camera = if args.camera > 0 {
        if paths.is_empty() {
            anyhow::bail!("--camera makes its photos from --images DIR: give one");
        }
        let _ = std::fs::remove_dir_all(&camera_dir);
        bench::make_camera_photos(&paths, &camera_dir, args.camera)?
    } else {
        Vec::new()
    };
    let budget = Duration::from_secs_f64(args.seconds);
    let device_batch = imgsim::embed::default_batch_size(&device);
    let batch_sizes = match args.batch_size.as_slice() {
        [] => vec![1, device_batch],
        [1] => vec![1],
        [n] => vec![1, *n],
        list => list.to_vec(),
    };
    anyhow::ensure!(
        !batch_sizes.contains(&0),
        "--batch-size: a batch holds at least 1 image"
    );
    let end_to_end_batch = if batch_sizes.contains(&device_batch) {
        device_batch
    } else {
        *batch_sizes.iter().max().expect("not empty")
    };
    for name in &args.models {
        if name.eq_ignore_ascii_case(imgsim::models::PHASH) {
            anyhow::bail!(
                "phash has no network to benchmark; `imgsim eval` reports its images/s \
                 (decoding and hashing)"
            );
        }
        find(name)?;
    }
    if !args.json {
        println!(
            "imgsim bench embed: device {}, {threads} threads{}",
            imgsim::device::describe(&device),
            if args.random_weights {
                ", RANDOM weights of the real architectures (same work)"
            } else {
                ""
            }
        );
    }
    let mut precisions = Precision::distinct(&args.precision);
    if !paths.is_empty() && precisions.iter().any(|p| *p != Precision::F32) {
        // f32 first: the others' embeddings are compared with its.
        precisions.retain(|p| *p != Precision::F32);
        precisions.insert(0, Precision::F32);
    }
    for p in &precisions {
        imgsim::models::check_precision(*p, &device)?;
    }
    for name in &args.models {
        let spec = find(name)?;
        let source = if args.random_weights {
            WeightsSource::Random(spec)
        } else {
            WeightsSource::Hub(spec)
        };
        // One set of weights for every precision, so that their embeddings compare.
        let master = Model::load(&source, None, &device)?;
        let mut reference: Option<Vec<Option<Vec<f32>>>> = None;
        for &precision in &precisions {
            imgsim::util::reset_peak_memory();
            let model = master.to_precision(precision)?;
            let embedder =
                imgsim::embed::Embedder::new(model, device.clone()).batch_size(end_to_end_batch);
            let model_only = batch_sizes
                .iter()
                .map(|&b| bench::model_only(&embedder, b, budget))
                .collect::<Result<Vec<_>, _>>()?;
            let mut end_to_end = None;
            let mut fidelity = None;
            let mut rss_mb_after_each_pass = Vec::new();
            for pass in 0..if paths.is_empty() {
                0
            } else {
                args.repeat.max(1)
            } {
                let (figures, vectors) = bench::end_to_end_vectors(&embedder, &paths)?;
                end_to_end = Some(figures);
                if pass == 0 {
                    match &reference {
                        None if precision == Precision::F32 => reference = Some(vectors),
                        Some(f32_vectors) if precision != Precision::F32 => {
                            fidelity = bench::fidelity(f32_vectors, &vectors);
                        }
                        _ => {}
                    }
                }
                if let Some((_, rss)) = imgsim::util::resident_memory_mb() {
                    rss_mb_after_each_pass.push(rss);
                }
            }
            let (decode, end_to_end_camera) = if camera.is_empty() {
                (None, None)
            } else {
                (
                    Some(bench::decode_resize(&camera, &embedder.model().preprocess)?),
                    Some(bench::end_to_end(&embedder, &camera)?),
                )
            };
            drop(embedder);
            let ours = Figures {
                model_only,
                end_to_end,
                end_to_end_camera,
                decode_resize_ms: decode.as_ref().map(|d| d.reduced_ms),
                peak_rss_mb: imgsim::util::resident_memory_mb().map(|(peak, _)| peak),
            };
            let (pytorch, peer_error) = if args.peer {
                let family = match spec.family {
                    Family::Clip => "clip",
                    Family::Dinov2 => "dinov2",
                    Family::Phash => unreachable!("bench runs registry networks"),
                };
                match bench::run_peer(&PeerRequest {
                    python: &args.python,
                    script: &args.peer_script,
                    family,
                    architecture: &spec.architecture,
                    images: args.images.as_deref(),
                    camera: (!camera.is_empty()).then_some(camera_dir.as_path()),
                    batch_sizes: &batch_sizes,
                    threads,
                    seconds: args.seconds,
                    precision: precision.name(),
                    device: imgsim::device::describe(&device),
                }) {
                    Ok(f) => (Some(f), None),
                    Err(e) => (None, Some(e)),
                }
            } else {
                (None, None)
            };
            let line = BenchLine {
                model: spec.name.clone(),
                precision,
                fidelity,
                random_weights: args.random_weights,
                device: imgsim::device::describe(&device).into(),
                threads,
                peak_rss_mb: ours.peak_rss_mb,
                imgsim: ours,
                decode,
                rss_mb_after_each_pass,
                pytorch,
                peer_error,
            };
            if args.json {
                print_json(&line);
            } else {
                print_table(&line);
            }
        }
    }
    Ok(Outcome::Done)
}

fn print_table(line: &BenchLine) {
    println!("\n{} ({})", line.model, line.precision);
    println!(
        "  {:<34} {:>10} {:>10} {:>7}",
        "images/s", "imgsim", "PyTorch", "ratio"
    );
    let row = |label: String, ours: f64, theirs: Option<f64>| {
        let (t, r) = match theirs {
            Some(t) => (format!("{t:.2}"), format!("{:.2}x", ours / t)),
            None => ("-".into(), "-".into()),
        };
        println!("  {label:<34} {ours:>10.2} {t:>10} {r:>7}");
    };
    for m in &line.imgsim.model_only {
        let theirs = line.pytorch.as_ref().and_then(|p| {
            p.model_only
                .iter()
                .find(|x| x.batch_size == m.batch_size)
                .map(|x| x.images_per_s)
        });
        row(
            format!("model only, batch {}", m.batch_size),
            m.images_per_s,
            theirs,
        );
    }
    let peer = line.pytorch.as_ref();
    let end_to_end_rows = [
        (
            "files",
            line.imgsim.end_to_end.as_ref(),
            peer.and_then(|p| p.end_to_end.as_ref()),
        ),
        (
            "camera photos",
            line.imgsim.end_to_end_camera.as_ref(),
            peer.and_then(|p| p.end_to_end_camera.as_ref()),
        ),
    ];
    for (what, ours, theirs) in end_to_end_rows {
        let Some(e) = ours else { continue };
        row(
            format!("end to end, {} {what}", e.images),
            e.images_per_s,
            theirs.map(|x| x.images_per_s),
        );
        if e.failed > 0 {
            println!("  ({} files failed to decode)", e.failed);
        }
    }
    if let Some(d) = &line.decode {
        let pil = line.pytorch.as_ref().and_then(|p| p.decode_resize_ms);
        println!(
            "\n  decode + resize of {}x{} JPEGs, one thread   ms/image   PIL ms    speed-up",
            d.width, d.height
        );
        for (label, ours) in [
            ("full decode", d.full_ms),
            ("reduced-size decode (used)", d.reduced_ms),
        ] {
            let (t, r) = match pil {
                Some(p) => (format!("{p:.1}"), format!("{:.2}x", p / ours)),
                None => ("-".into(), "-".into()),
            };
            println!("  {label:<42} {ours:>8.1} {t:>9} {r:>9}");
        }
        println!(
            "  model input, reduced vs full decode: mean abs difference {:.3}/255 (largest image {:.3}/255)",
            d.mean_abs_diff, d.max_image_abs_diff
        );
    }
    if let Some(d) = &line.decode {
        // CPU time per camera photo, at the larger batch size: where the time goes.
        if let Some(m) = line.imgsim.model_only.last() {
            let model_ms = 1000.0 / m.images_per_s;
            let decode_ms = d.reduced_decode_ms;
            let resize_ms = d.reduced_ms - d.reduced_decode_ms;
            let total = d.reduced_ms + model_ms;
            let share = |ms: f64| 100.0 * ms / total;
            println!(
                "  CPU time per camera photo: decode {decode_ms:.0} ms ({:.0}%), resize {resize_ms:.0} ms \
                 ({:.0}%), model {model_ms:.0} ms ({:.0}%)",
                share(decode_ms),
                share(resize_ms),
                share(model_ms)
            );
        }
    }
    if !line.rss_mb_after_each_pass.is_empty() {
        let passes: Vec<String> = line
            .rss_mb_after_each_pass
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect();
        println!(
            "  resident memory after each end-to-end pass (MiB): {}",
            passes.join(", ")
        );
    }
    if let Some(peak) = line.peak_rss_mb {
        match line.pytorch.as_ref().and_then(|p| p.peak_rss_mb) {
            Some(theirs) => println!(
                "  peak resident memory: {peak:.0} MiB (PyTorch: {theirs:.0} MiB, {:.2}x)",
                peak / theirs
            ),
            None => println!("  peak resident memory: {peak:.0} MiB"),
        }
    }
    if let Some(f) = &line.fidelity {
        println!(
            "  against f32 (same weights, {} images): cosine mean {:.6}, worst {:.6}; \
             top-{} neighbour overlap {:.4}",
            f.images, f.mean_cosine, f.worst_cosine, f.k, f.top_k_overlap
        );
    }
    if let Some(err) = &line.peer_error {
        println!("  PyTorch peer not measured: {err}");
    }
}
