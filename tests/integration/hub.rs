//! Weights from a hub, tested against a local one: a small HTTP server on loopback that speaks
//! the part of the Hugging Face hub protocol that hf-hub uses (`<repo>/resolve/<rev>/<file>`
//! with `Range`, `ETag`, `X-Repo-Commit` and `Content-Range`), serving the tiny DINOv2 fixture
//! as `facebook/dinov2-small` at its pinned revision, and the tiny CLIP (with its tokenizer) as
//! `openai/clip-vit-base-patch32` at its pinned branch ref. Faults: an unknown revision (404), a
//! server error (500), a connection cut half-way through the weights.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::util::*;

const REPO: &str = "facebook/dinov2-small";
/// The revision `models/dinov2-small.toml` pins.
const REVISION: &str = "ed25f3a31f01632728cabb09d1542f84ab7b0056";
/// `models/clip-vit-b32.toml` pins a ref, which the hub resolves to a commit.
const CLIP_REPO: &str = "openai/clip-vit-base-patch32";
const CLIP_REF: &str = "refs/pr/15";
const CLIP_COMMIT: &str = "3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268";

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// Serves another revision only: the pinned one is not found.
    OtherRevision,
    ServerError,
    /// Announces the whole weights file, sends half, and hangs up.
    CutHalfway,
}

struct Hub {
    endpoint: String,
    /// The path of every request, in order.
    requests: Arc<Mutex<Vec<String>>>,
}

impl Hub {
    fn start(fault: Fault) -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let mut files = HashMap::new();
        for (repo, fixture, names) in [
            (
                REPO,
                "tiny-dinov2",
                &[
                    "config.json",
                    "model.safetensors",
                    "preprocessor_config.json",
                ][..],
            ),
            (
                CLIP_REPO,
                "tiny-clip",
                &["config.json", "model.safetensors", "tokenizer.json"][..],
            ),
        ] {
            for name in names {
                files.insert(
                    format!("{repo}/{name}"),
                    std::fs::read(model_dir(fixture).join(name)).unwrap(),
                );
            }
        }
        let seen = requests.clone();
        // The server thread ends with the test binary; each test has its own port.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve(stream, &files, fault, &seen);
            }
        });
        Hub { endpoint, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// One request, one response, then the connection closes.
fn serve(
    stream: TcpStream,
    files: &HashMap<String, Vec<u8>>,
    fault: Fault,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut range_start = 0usize;
    let mut range_end: Option<usize> = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("range") {
                let spec = value.trim().trim_start_matches("bytes=");
                let (start, end) = spec.split_once('-').unwrap_or((spec, ""));
                range_start = start.parse().unwrap_or(0);
                range_end = end.parse().ok();
            }
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    seen.lock().unwrap().push(path.clone());
    let mut out = stream;
    let served_revision = if fault == Fault::OtherRevision {
        "main"
    } else {
        REVISION
    };
    let served = [
        (REPO, served_revision.to_string(), REVISION),
        (CLIP_REPO, CLIP_REF.to_string(), CLIP_COMMIT),
        (CLIP_REPO, CLIP_REF.replace('/', "%2F"), CLIP_COMMIT),
    ];
    let (file, commit) = served
        .iter()
        .find_map(|(repo, revision, commit)| {
            let name = path.strip_prefix(&format!("/{repo}/resolve/{revision}/"))?;
            Some((files.get(&format!("{repo}/{name}")), *commit))
        })
        .unwrap_or((None, REVISION));
    let Some(body) = file.filter(|_| fault != Fault::ServerError) else {
        let (status, code) = if fault == Fault::ServerError {
            ("500 Internal Server Error", "")
        } else {
            ("404 Not Found", "X-Error-Code: RevisionNotFound\r\n")
        };
        write!(
            out,
            "HTTP/1.1 {status}\r\n{code}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return Ok(());
    };
    let end = range_end.unwrap_or(body.len() - 1).min(body.len() - 1);
    let part = &body[range_start.min(body.len())..=end];
    write!(
        out,
        "HTTP/1.1 206 Partial Content\r\nETag: \"{}\"\r\nX-Repo-Commit: {commit}\r\n\
         Content-Range: bytes {range_start}-{end}/{}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        blake3::hash(body).to_hex(),
        body.len(),
        part.len()
    )?;
    let whole_weights = path.ends_with("model.safetensors") && part.len() > 1;
    if fault == Fault::CutHalfway && whole_weights {
        out.write_all(&part[..part.len() / 2])?;
        return Ok(()); // hangs up
    }
    out.write_all(part)
}

/// imgsim with an empty cache of its own, pointed at `hub`.
fn online(hub: &Hub, cache: &Path) -> Imgsim {
    Imgsim::new()
        .env("HF_HUB_CACHE", cache.to_str().unwrap())
        .env("HF_HUB_OFFLINE", "0")
        .env("HF_ENDPOINT", &hub.endpoint)
}

fn offline(hub: &Hub, cache: &Path) -> Imgsim {
    online(hub, cache).env("HF_HUB_OFFLINE", "1")
}

/// `imgsim embed --model dinov2-small IMAGE`: the first use of the registry model.
fn embed(cmd: &Imgsim) -> Run {
    cmd.run(&[
        "embed",
        "--model",
        "dinov2-small",
        "tests/fixtures/images/tiny.png",
    ])
}

#[derive(Deserialize)]
struct ModelLine {
    name: String,
    local: bool,
}

fn is_local(cmd: &Imgsim) -> bool {
    let out = cmd.run(&["models", "list", "--json"]);
    out.assert_exit(0);
    out.json_lines::<ModelLine>()
        .iter()
        .any(|l| l.name == "dinov2-small" && l.local)
}

/// `imgsim models fetch dinov2-small` from `hub` into `cache`; the weights' path it prints.
fn fetch_weights(hub: &Hub, cache: &Path) -> String {
    let out = online(hub, cache).run(&["models", "fetch", "dinov2-small"]);
    out.assert_exit(0);
    out.stdout().trim().split('\t').nth(1).unwrap().to_string()
}

#[test]
fn models_fetch_gets_the_pinned_revision_and_then_works_offline() {
    let hub = Hub::start(Fault::None);
    let cache = tempfile::tempdir().unwrap();
    let weights = fetch_weights(&hub, cache.path());
    assert_eq!(
        std::fs::read(weights).unwrap(),
        std::fs::read(model_dir("tiny-dinov2").join("model.safetensors")).unwrap()
    );
    let requests = hub.requests();
    assert!(!requests.is_empty());
    for path in &requests {
        assert!(
            path.starts_with(&format!("/{REPO}/resolve/{REVISION}/")),
            "{path}"
        );
    }

    // Offline from now on: the hub hears nothing more.
    let offline = offline(&hub, cache.path());
    assert!(is_local(&offline));
    embed(&offline).assert_exit(0);
    assert_eq!(hub.requests().len(), requests.len());
}

#[test]
fn first_use_fetches_and_offline_never_touches_the_network() {
    let hub = Hub::start(Fault::None);
    let cache = tempfile::tempdir().unwrap();
    embed(&offline(&hub, cache.path()))
        .assert_exit(2)
        .assert_stderr_has("HF_HUB_OFFLINE is set");
    assert!(hub.requests().is_empty(), "{:?}", hub.requests());
    embed(&online(&hub, cache.path())).assert_exit(0);
    assert!(!hub.requests().is_empty());
}

#[test]
fn hub_failures_are_clear_errors_and_leave_nothing_to_load() {
    for (fault, says) in [
        (Fault::OtherRevision, "404"),
        (Fault::ServerError, "500"),
        (Fault::CutHalfway, "model.safetensors"),
    ] {
        let hub = Hub::start(fault);
        let cache = tempfile::tempdir().unwrap();
        online(&hub, cache.path())
            .run(&["models", "fetch", "dinov2-small"])
            .assert_exit(2)
            .assert_stderr_has("could not download the weights of 'dinov2-small'")
            .assert_stderr_has(says);
        // Nothing half-written is taken for the model later.
        let offline = offline(&hub, cache.path());
        assert!(!is_local(&offline));
        embed(&offline)
            .assert_exit(2)
            .assert_stderr_has("not in the cache");
    }
}

#[test]
fn damaged_weights_in_the_cache_say_how_to_fetch_them_again() {
    let hub = Hub::start(Fault::None);
    let cache = tempfile::tempdir().unwrap();
    let weights = fetch_weights(&hub, cache.path());
    // Damage the blob the snapshot points at.
    let blob = std::fs::canonicalize(&weights).unwrap();
    let bytes = std::fs::read(&blob).unwrap();
    std::fs::write(&blob, &bytes[..bytes.len() - 100]).unwrap();
    let offline = offline(&hub, cache.path());
    embed(&offline)
        .assert_exit(2)
        .assert_stderr_has("damaged")
        .assert_stderr_has("imgsim models fetch dinov2-small");
    assert!(!is_local(&offline));
}

#[test]
fn a_fetched_clip_searches_by_words_offline() {
    let hub = Hub::start(Fault::None);
    let cache = tempfile::tempdir().unwrap();
    online(&hub, cache.path())
        .run(&["models", "fetch", "clip"])
        .assert_exit(0);
    let asked: Vec<String> = hub.requests();
    assert!(
        asked.iter().any(|p| p.ends_with("/tokenizer.json")),
        "{asked:?}"
    );
    let snapshot = cache
        .path()
        .join("models--openai--clip-vit-base-patch32/snapshots")
        .join(CLIP_COMMIT);
    assert_eq!(
        std::fs::read(snapshot.join("tokenizer.json")).unwrap(),
        std::fs::read(model_dir("tiny-clip").join("tokenizer.json")).unwrap()
    );

    // Offline from now on: index with the fetched CLIP, then search by words.
    let cmd = offline(&hub, cache.path());
    let photos = tempfile::tempdir().unwrap();
    for name in ["000000000009.jpg", "000000000025.jpg", "000000000030.jpg"] {
        std::fs::copy(coco().join(name), photos.path().join(name)).unwrap();
    }
    cmd.run(&["index", "--model", "clip", photos.path().to_str().unwrap()])
        .assert_exit(0);
    let before = hub.requests().len();
    let out = cmd.run(&["search", "--model", "clip", "a photo of a dog", "--json"]);
    out.assert_exit(0);
    assert_eq!(out.stdout().lines().count(), 3 + 1, "{}", out.stdout());
    assert_eq!(
        hub.requests().len(),
        before,
        "offline runs ask the hub nothing"
    );
}
