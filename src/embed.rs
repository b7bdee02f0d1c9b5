//! Images -> L2-normalised embeddings. Decoding and preprocessing run on worker threads while
//! the model embeds the previous batch, and one batch is in flight: on a GPU the next batch is
//! stacked, copied and queued before the results of the one before are read (which waits for
//! the GPU). Results come back in input order through a callback,
//! so that callers (the commands, the indexer, eval's extraction, the daemon) draw progress and
//! report errors themselves. A stop flag ends the work within one forward pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use candle_core::{Device, Tensor};
use image::RgbImage;

use crate::decode;
use crate::error::{Error, Result};
use crate::models::Model;

/// The default number of images per forward pass on the CPU.
pub const DEFAULT_BATCH_SIZE: usize = 16;

/// The default on a GPU: large enough to keep it busy (a ViT-B forward pass at batch 16 is a
/// few milliseconds there), small enough that decoding the next batch on the CPU's cores
/// overlaps it. Not yet measured (no GPU machine so far): `scripts/gpu-check.sh` measures
/// batch 1, 16, 64 and 256.
pub const DEFAULT_GPU_BATCH_SIZE: usize = 64;

/// The default batch size on `device`.
pub fn default_batch_size(device: &Device) -> usize {
    if device.is_cpu() {
        DEFAULT_BATCH_SIZE
    } else {
        DEFAULT_GPU_BATCH_SIZE
    }
}

/// One image, ready for the model: planar `3 x side x side` floats, or for a model without a
/// network (`phash`) already its descriptor.
enum Prepared {
    Pixels { side: usize, pixels: Vec<f32> },
    Descriptor(Vec<f32>),
}

pub struct Embedder {
    model: Model,
    device: Device,
    batch_size: usize,
    decode_threads: usize,
}

impl Embedder {
    /// On the CPU half the cores decode while the model uses them all; on a GPU every core
    /// but the one that feeds it decodes.
    pub fn new(model: Model, device: Device) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let decode_threads = if device.is_cpu() {
            cores / 2
        } else {
            cores - 1
        };
        Self {
            model,
            batch_size: default_batch_size(&device),
            device,
            decode_threads: decode_threads.max(1),
        }
    }

    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// [`Self::batch_size`] when one is given; the device's default otherwise.
    pub fn batch_size_or_default(self, n: Option<usize>) -> Self {
        match n {
            Some(n) => self.batch_size(n),
            None => self,
        }
    }

    pub fn decode_threads(mut self, n: usize) -> Self {
        self.decode_threads = n.max(1);
        self
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Embeds a picture from its file bytes (a query a client sent); `name` names it in
    /// errors. JPEGs are decoded at the reduced size the model's resize allows.
    pub fn embed_bytes(&self, bytes: &[u8], name: &str) -> Result<Vec<f32>> {
        let shortest_edge = self.model().preprocess.shortest_edge;
        let decoded = crate::decode::decode_bytes_for(bytes, shortest_edge).map_err(|error| {
            crate::error::Error::Decode {
                path: std::path::PathBuf::from(name),
                error,
            }
        })?;
        self.embed_image(&decoded, Path::new(name))
    }

    /// Embeds one decoded image; `name` names it in errors.
    pub fn embed_image(&self, image: &RgbImage, name: &Path) -> Result<Vec<f32>> {
        match self.prepare_image(image)? {
            Prepared::Descriptor(vector) => Ok(vector),
            pixels => self.finite(l2_normalize_rows(&self.launch(&[pixels])?)?.remove(0), name),
        }
    }

    /// Embeds ready-made pixel values `[B, 3, H, W]` (as the reference processor makes them).
    pub fn embed_pixel_values(&self, pixel_values: &Tensor) -> Result<Vec<Vec<f32>>> {
        let pixel_values = pixel_values.to_device(&self.device)?;
        l2_normalize_rows(&self.model.forward(&pixel_values)?)
    }

    /// Embeds files, calling `on_result(index, result)` once per file, in input order. A file
    /// that cannot be decoded yields its error there and the others go on; a failure of the
    /// model itself ends the run with an error.
    pub fn embed_files(
        &self,
        paths: &[PathBuf],
        on_result: impl FnMut(usize, Result<Vec<f32>>),
    ) -> Result<()> {
        self.embed_files_until(paths, &AtomicBool::new(false), on_result)
    }

    /// [`Self::embed_files`], ending early once `stop` is set: files not yet embedded then get
    /// no callback (the daemon stops within one forward pass of a signal).
    pub fn embed_files_until(
        &self,
        paths: &[PathBuf],
        stop: &AtomicBool,
        mut on_result: impl FnMut(usize, Result<Vec<f32>>),
    ) -> Result<()> {
        let next_path = AtomicUsize::new(0);
        let (tx, rx) = crossbeam_channel::bounded::<(usize, Result<Prepared>)>(self.batch_size * 2);
        std::thread::scope(|scope| {
            for _ in 0..self.decode_threads.min(paths.len()) {
                let tx = tx.clone();
                let next_path = &next_path;
                scope.spawn(move || loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next_path.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = paths.get(i) else { break };
                    if tx.send((i, self.prepare_file(path))).is_err() {
                        break; // the consumer stopped
                    }
                });
            }
            drop(tx);
            // Owned here, so that it is dropped when this closure ends early (a model error, a
            // panic in `on_result`): the workers then see the channel closed and stop, and the
            // scope can join them. Left outside, they would block on `send` forever.
            let rx = rx;

            // Results arrive out of order from the workers; release them in order.
            let mut arrived = BTreeMap::new();
            let mut next_in_order = 0;
            let mut batch: Vec<(usize, Prepared)> = Vec::new();
            // Results that need no forward pass: errors and network-free descriptors.
            let mut done: Vec<(usize, Result<Vec<f32>>)> = Vec::new();
            // One batch in flight: on a GPU its forward pass is queued and runs while the next
            // batch is stacked, copied and queued behind it; its embeddings are read (which
            // waits for the GPU) only then. On the CPU the pass has run by the time it returns.
            let mut in_flight: Option<(Vec<usize>, Tensor)> = None;
            // Results held back until everything before them is out (input order).
            let mut waiting: Vec<(usize, Result<Vec<f32>>)> = Vec::new();
            let mut flush = |batch: &mut Vec<(usize, Prepared)>,
                             done: &mut Vec<(usize, Result<Vec<f32>>)>|
             -> Result<()> {
                waiting.append(done);
                let launched = if batch.is_empty() {
                    None
                } else {
                    let (indices, prepared): (Vec<usize>, Vec<Prepared>) = batch.drain(..).unzip();
                    Some((indices, self.launch(&prepared)?))
                };
                if let Some((indices, embeddings)) = in_flight.take() {
                    let vectors = l2_normalize_rows(&embeddings)?;
                    waiting.extend(indices.into_iter().zip(vectors).map(|(i, v)| {
                        let checked = self.finite(v, &paths[i]);
                        (i, checked)
                    }));
                }
                in_flight = launched;
                // A batch's indices ascend: what comes before its first is ready.
                let before = in_flight
                    .as_ref()
                    .map_or(usize::MAX, |(indices, _)| indices[0]);
                waiting.sort_by_key(|(i, _)| *i);
                let ready = waiting.partition_point(|(i, _)| *i < before);
                for (i, r) in waiting.drain(..ready) {
                    on_result(i, r);
                }
                Ok(())
            };
            for (i, prepared) in rx.iter() {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                arrived.insert(i, prepared);
                while let Some(prepared) = arrived.remove(&next_in_order) {
                    next_in_order += 1;
                    let i = next_in_order - 1;
                    match prepared {
                        Err(e) => done.push((i, Err(e))),
                        Ok(Prepared::Descriptor(vector)) => done.push((i, Ok(vector))),
                        Ok(p) => {
                            // Only same-sized inputs stack into one tensor.
                            if batch.first().is_some_and(|(_, b)| side(b) != side(&p)) {
                                flush(&mut batch, &mut done)?;
                            }
                            batch.push((i, p));
                            if batch.len() >= self.batch_size {
                                flush(&mut batch, &mut done)?;
                            }
                            continue;
                        }
                    }
                    // Results that skip the model go out at once while no batch holds
                    // earlier images back (keeping the callback in input order).
                    if batch.is_empty() {
                        flush(&mut batch, &mut done)?;
                    }
                }
            }
            flush(&mut batch, &mut done)?;
            // The last batch in flight.
            flush(&mut Vec::new(), &mut Vec::new())
        })
    }

    fn prepare_file(&self, path: &Path) -> Result<Prepared> {
        let image = decode::decode_file_for(path, self.model.preprocess.shortest_edge).map_err(
            |source| Error::Decode {
                path: path.to_path_buf(),
                error: source,
            },
        )?;
        self.prepare_image(&image)
    }

    fn prepare_image(&self, image: &RgbImage) -> Result<Prepared> {
        if let Some(vector) = self.model.describe_without_network(image) {
            return Ok(Prepared::Descriptor(vector));
        }
        let cropped = self.model.preprocess.resize_and_crop(image);
        let (w, h) = cropped.dimensions();
        if w != h {
            return Err(Error::Unsupported(format!(
                "model input must be square, got {w}x{h}: the preprocessing has no center crop"
            )));
        }
        Ok(Prepared::Pixels {
            side: w as usize,
            pixels: self.model.preprocess.normalize(&cropped),
        })
    }

    /// The embedding, or an error when it holds NaN or infinity (a half-precision network's
    /// values can outgrow f16's range): such a vector would match nothing, and is never stored.
    fn finite(&self, vector: Vec<f32>, path: &Path) -> Result<Vec<f32>> {
        if vector.iter().all(|x| x.is_finite()) {
            return Ok(vector);
        }
        let hint = match self.model.precision {
            crate::models::Precision::F16 => {
                "; in --precision f16 a layer's values can exceed half precision's range: \
                 use --precision bf16 or f32"
            }
            _ => "",
        };
        Err(Error::NonFinite {
            path: path.to_path_buf(),
            hint: hint.into(),
        })
    }

    /// Stacks a batch, copies it to the device and queues the forward pass: the embeddings
    /// (not yet normalised), still on the device.
    fn launch(&self, batch: &[Prepared]) -> Result<Tensor> {
        let side = side(&batch[0]);
        let mut flat = Vec::with_capacity(batch.len() * 3 * side * side);
        for p in batch {
            if let Prepared::Pixels { pixels, .. } = p {
                flat.extend_from_slice(pixels);
            }
        }
        let pixel_values = Tensor::from_vec(flat, (batch.len(), 3, side, side), &self.device)?;
        self.model.forward(&pixel_values)
    }
}

fn side(prepared: &Prepared) -> usize {
    match prepared {
        Prepared::Pixels { side, .. } => *side,
        Prepared::Descriptor(_) => 0,
    }
}

/// `torch.nn.functional.normalize(x, dim=-1)`: divide by the L2 norm, at least 1e-12.
pub(crate) fn l2_normalize_rows(embeddings: &Tensor) -> Result<Vec<Vec<f32>>> {
    let rows: Vec<Vec<f32>> = embeddings
        .to_device(&Device::Cpu)?
        .to_dtype(candle_core::DType::F32)?
        .to_vec2()?;
    Ok(rows
        .into_iter()
        .map(|mut v| {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect())
}

/// Cosine similarity of two L2-normalised vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{find, WeightsSource};

    /// Results come back once each, in input order, with failures in their places, and equal
    /// whatever the batch size (a batch is read only after the next is queued).
    #[test]
    fn results_come_in_input_order_with_failures_in_place_at_every_batch_size() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.png");
        std::fs::write(&bad, "not an image").unwrap();
        let images: Vec<PathBuf> = ["gray.png", "rgba.png", "tall.png", "tiny.png"]
            .iter()
            .map(|n| fixtures.join("images").join(n))
            .collect();
        // Failures first, between batches, inside a batch and last.
        let paths: Vec<PathBuf> = vec![
            bad.clone(),
            images[0].clone(),
            images[1].clone(),
            bad.clone(),
            images[2].clone(),
            images[3].clone(),
            images[0].clone(),
            bad.clone(),
            images[1].clone(),
            bad,
        ];
        let run = |batch: usize| -> Vec<(usize, Option<Vec<f32>>)> {
            let model = Model::load(
                &WeightsSource::Dir(fixtures.join("tiny-clip")),
                None,
                &Device::Cpu,
            )
            .unwrap();
            let mut out = Vec::new();
            Embedder::new(model, Device::Cpu)
                .batch_size(batch)
                .decode_threads(3)
                .embed_files(&paths, |i, r| out.push((i, r.ok())))
                .unwrap();
            out
        };
        let one = run(1);
        assert_eq!(
            one.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            (0..paths.len()).collect::<Vec<_>>()
        );
        for (i, (_, v)) in one.iter().enumerate() {
            let is_bad = paths[i].ends_with("bad.png");
            assert_eq!(v.is_none(), is_bad, "path {i}");
        }
        for batch in [2, 3, 4, 16] {
            let got = run(batch);
            assert_eq!(got.len(), one.len(), "batch {batch}");
            for ((i, a), (j, b)) in got.iter().zip(&one) {
                assert_eq!(i, j, "batch {batch}: order");
                match (a, b) {
                    (Some(a), Some(b)) => assert!(cosine(a, b) > 0.99999, "batch {batch} #{i}"),
                    (None, None) => {}
                    _ => panic!("batch {batch} #{i}: success differs"),
                }
            }
        }
    }

    /// A vector with NaN or infinity is an error naming the file (never a stored row); f16's
    /// says what to use instead.
    #[test]
    fn a_non_finite_embedding_is_an_error_naming_the_file() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let f32_model = Model::load(
            &WeightsSource::Dir(fixtures.join("tiny-clip")),
            None,
            &Device::Cpu,
        )
        .unwrap();
        let half = f32_model
            .to_whole_network_precision(crate::models::Precision::F16)
            .unwrap();
        let path = Path::new("/photos/a.jpg");
        for (model, hint) in [(f32_model, false), (half, true)] {
            let embedder = Embedder::new(model, Device::Cpu);
            assert_eq!(embedder.finite(vec![0.6, 0.8], path).unwrap(), [0.6, 0.8]);
            for bad in [f32::NAN, f32::INFINITY] {
                let e = embedder
                    .finite(vec![0.6, bad], path)
                    .unwrap_err()
                    .to_string();
                assert!(
                    e.starts_with("/photos/a.jpg: the model's output is not a number"),
                    "{e}"
                );
                assert_eq!(e.contains("use --precision bf16 or f32"), hint, "{e}");
            }
        }
    }

    /// A panic in the caller's callback must unwind, not leave the decoding workers blocked.
    #[test]
    fn a_panicking_callback_does_not_hang_the_pipeline() {
        let model = Model::load(
            &WeightsSource::Random(find("dinov2-small").unwrap()),
            None,
            &Device::Cpu,
        )
        .unwrap();
        let embedder = Embedder::new(model, Device::Cpu)
            .batch_size(1)
            .decode_threads(2);
        let dir = tempfile::tempdir().unwrap();
        // Many files that fail fast (not images), so that the workers fill the channel.
        let paths: Vec<PathBuf> = (0..50)
            .map(|i| {
                let p = dir.path().join(format!("{i}.png"));
                std::fs::write(&p, "not an image").unwrap();
                p
            })
            .collect();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                embedder.embed_files(&paths, |_, _| panic!("the caller failed"))
            }));
            done_tx.send(result.is_err()).unwrap();
        });
        let panicked = done_rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("no hang");
        assert!(panicked);
    }
}
