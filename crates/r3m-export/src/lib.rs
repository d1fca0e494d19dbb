#![warn(clippy::too_many_lines)] // functions stay under clippy.toml's threshold (150 lines)
//! # r3m-export
//!
//! Per-frame embedding export: the Parquet format (arrow/parquet 58) with its writer and reader
//! ([`parquet_io`]), and the streaming engine behind `r3m embed` ([`embed`]): decode → frozen
//! encoder → rows, written to a temp file and renamed, resumable by pieces, shardable; and a copy
//! of a LeRobot dataset with the embeddings as a feature LeRobot's policies read ([`lerobot_out`]).
//!
//! It does not train and owns no model code (encoders come from `r3m-model`), and decodes only
//! through `r3m-video`.

pub mod embed;
pub mod lerobot_out;
pub mod meta;
pub mod parquet_io;

pub use embed::{embed_clips, select_frames, shard, EmbedConfig, EmbedReport};
pub use meta::{EmbedMeta, EMBED_FORMAT};
pub use parquet_io::{
    for_each_chunk, read_embeddings, read_embeddings_metadata, schema, ChunkReader, EmbeddingWriter, Embeddings,
    ExportError,
};

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
