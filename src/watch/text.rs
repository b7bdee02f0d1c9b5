//! The daemon's text towers, for `imgsim search` with words: each loaded on the first text
//! query for its model (a daemon that only ever answers pictures never holds one), and the
//! embeddings of recent texts (someone refining a search sends the same words again).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use candle_core::Device;

use super::socket::ModelKey;
use crate::error::Result;
use crate::models::{TextModel, WeightsSource};

/// Texts whose embeddings are kept, all models together.
const RECENT: usize = 256;

#[derive(Default)]
pub struct TextTowers {
    loaded: Mutex<Vec<(ModelKey, Arc<TextModel>)>>,
    /// (model id, text, embedding), most recent first.
    recent: Mutex<VecDeque<(String, String, Vec<f32>)>>,
}

impl TextTowers {
    /// The L2-normalised embedding of `text` under the model the client named, whose image
    /// table has id `model_id`.
    pub fn embed(
        &self,
        key: &ModelKey,
        model_id: &str,
        text: &str,
        device: &Device,
    ) -> Result<Vec<f32>> {
        if let Some(vector) = self.remembered(model_id, text) {
            return Ok(vector);
        }
        let tower = self.tower(key, device)?;
        if tower.id != model_id {
            return Err(crate::Error::Unsupported(format!(
                "the text tower of {} does not belong to the table the daemon holds for it",
                tower.name
            )));
        }
        let vector = tower.embed(text)?;
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.push_front((model_id.to_string(), text.to_string(), vector.clone()));
        recent.truncate(RECENT);
        Ok(vector)
    }

    /// How many text towers are loaded (for tests and status).
    pub fn loaded(&self) -> usize {
        self.loaded.lock().map_or(0, |l| l.len())
    }

    fn remembered(&self, model_id: &str, text: &str) -> Option<Vec<f32>> {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let at = recent
            .iter()
            .position(|(id, t, _)| id == model_id && t == text)?;
        let entry = recent.remove(at)?;
        let vector = entry.2.clone();
        recent.push_front(entry);
        Some(vector)
    }

    fn tower(&self, key: &ModelKey, device: &Device) -> Result<Arc<TextModel>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, tower)) = loaded.iter().find(|(k, _)| k == key) {
            return Ok(tower.clone());
        }
        let source = match key {
            ModelKey::Named(name) => crate::models::source_for(name)?,
            ModelKey::Dir(dir) => WeightsSource::Dir(dir.clone()),
        };
        let tower = Arc::new(TextModel::load(&source, device)?);
        loaded.push((key.clone(), tower.clone()));
        Ok(tower)
    }
}
