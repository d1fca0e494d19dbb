//! What an embeddings file says about itself: [`EmbedMeta`], written as flat `r3m.*` key-value
//! metadata (so pyarrow, DuckDB and Polars users read plain strings) and read back with
//! validation: a missing key, an unknown format or a `r3m.dim` that disagrees with the rows is an
//! error naming the file and the key, never a silent default.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ExportError;

/// Format tag written now (`r3m.format`).
pub const EMBED_FORMAT: &str = "r3m-embed-1";

/// An embeddings file's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedMeta {
    /// [`EMBED_FORMAT`].
    pub format: String,
    /// The r3m version that wrote it.
    pub version: String,
    /// The checkpoint directory.
    pub checkpoint: String,
    /// SHA-256 of its `model.safetensors`.
    pub checkpoint_sha256: String,
    /// Encoder architecture (`resnet18`, ...).
    pub arch: String,
    /// Embedding size.
    pub dim: usize,
    /// Frame preprocessing (resize, scale, mean, std, every, fps), JSON.
    pub preprocess: serde_json::Value,
    /// Arithmetic and layout (`fp32, channels-last`).
    pub precision: String,
    /// The input (videos folder, LeRobot root, manifest).
    pub source: String,
    /// `I/N` of a sharded job (`0/1` otherwise).
    pub shard: String,
    /// The checkpoint's run config, less the resume state, JSON.
    pub checkpoint_config: serde_json::Value,
}

/// `(key, is JSON)` of every field, in the order written.
const KEYS: [(&str, bool); 11] = [
    ("format", false),
    ("version", false),
    ("checkpoint", false),
    ("checkpoint_sha256", false),
    ("arch", false),
    ("dim", false),
    ("preprocess", true),
    ("precision", false),
    ("source", false),
    ("shard", false),
    ("checkpoint_config", true),
];

impl EmbedMeta {
    /// The flat `r3m.KEY` → string pairs written into the Parquet footer.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        // EmbedMeta serialises to an object of these keys by construction
        let v = serde_json::to_value(self).unwrap_or_default();
        KEYS.iter()
            .map(|&(k, json)| {
                let field = &v[k];
                let text = match field {
                    serde_json::Value::String(s) if !json => s.clone(),
                    other => other.to_string(),
                };
                (format!("r3m.{k}"), text)
            })
            .collect()
    }

    /// Reads and checks the metadata of `path` (as [`crate::read_embeddings_metadata`] returns
    /// it); `dim`, when known, is the width of the file's embedding column.
    pub fn from_metadata(
        path: &Path,
        metadata: &HashMap<String, String>,
        dim: Option<usize>,
    ) -> Result<EmbedMeta, ExportError> {
        let err = |reason: String| ExportError::Format { path: path.to_path_buf(), reason };
        let mut obj = serde_json::Map::new();
        for (k, json) in KEYS {
            let key = format!("r3m.{k}");
            let Some(text) = metadata.get(&key) else {
                return Err(err(format!(
                    "no '{key}' in the file's metadata: not written by `r3m embed` (or by a version before format {EMBED_FORMAT})"
                )));
            };
            let value = if json {
                serde_json::from_str(text).map_err(|e| err(format!("'{key}' is not JSON ({e})")))?
            } else if k == "dim" {
                let d: usize = text.trim().parse().map_err(|_| err(format!("'{key}' = '{text}' is not a size")))?;
                serde_json::Value::from(d)
            } else {
                serde_json::Value::String(text.clone())
            };
            obj.insert(k.to_string(), value);
        }
        let meta: EmbedMeta =
            serde_json::from_value(serde_json::Value::Object(obj)).map_err(|e| err(format!("metadata: {e}")))?;
        if meta.format != EMBED_FORMAT {
            return Err(err(format!("'r3m.format' = '{}': this r3m reads {EMBED_FORMAT}", meta.format)));
        }
        if let Some(d) = dim.filter(|&d| d != meta.dim) {
            return Err(err(format!("'r3m.dim' says {} but the embedding column holds {d} values per row", meta.dim)));
        }
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EmbedMeta {
        EmbedMeta {
            format: EMBED_FORMAT.into(),
            version: "0.1.0".into(),
            checkpoint: "run/checkpoints/step-00000010".into(),
            checkpoint_sha256: "ab".repeat(32),
            arch: "resnet18".into(),
            dim: 512,
            preprocess: serde_json::json!({"scale": 255.0, "every": 1}),
            precision: "fp32, channels-last".into(),
            source: "videos".into(),
            shard: "0/1".into(),
            checkpoint_config: serde_json::json!({"arch": "resnet18"}),
        }
    }

    #[test]
    fn round_trips_through_flat_string_pairs() {
        let m = sample();
        let pairs: HashMap<String, String> = m.to_pairs().into_iter().collect();
        assert_eq!(pairs["r3m.dim"], "512");
        assert_eq!(pairs["r3m.arch"], "resnet18", "plain strings, not JSON-quoted");
        assert!(pairs["r3m.preprocess"].starts_with('{'));
        assert_eq!(EmbedMeta::from_metadata(Path::new("e.parquet"), &pairs, Some(512)).unwrap(), m);
    }

    #[test]
    fn refuses_what_it_cannot_trust_naming_file_and_key() {
        let p = Path::new("e.parquet");
        let good: HashMap<String, String> = sample().to_pairs().into_iter().collect();
        let check = |edit: &dyn Fn(&mut HashMap<String, String>), dim: Option<usize>, want: &str| {
            let mut m = good.clone();
            edit(&mut m);
            let e = EmbedMeta::from_metadata(p, &m, dim).unwrap_err().to_string();
            assert!(e.starts_with("e.parquet: ") && e.contains(want), "{e}");
        };
        check(&|m| drop(m.remove("r3m.format")), None, "no 'r3m.format'");
        check(&|m| drop(m.insert("r3m.format".into(), "r3m-embed-9".into())), None, "r3m-embed-9");
        check(&|m| drop(m.insert("r3m.dim".into(), "many".into())), None, "'r3m.dim' = 'many' is not a size");
        check(&|m| drop(m.insert("r3m.preprocess".into(), "{".into())), None, "'r3m.preprocess' is not JSON");
        check(&|_| {}, Some(256), "'r3m.dim' says 512 but the embedding column holds 256");
    }
}
