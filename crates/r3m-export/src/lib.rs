//! # r3m-export
//!
//! Parquet writer and reader for per-frame embeddings (arrow/parquet 58): one row per frame with
//! LeRobot-style column names, checkpoint hash and config in the key-value metadata, written to a
//! temp file and renamed.
//!
//! It does not run models or decode video; it only moves rows to and from disk.
//!
//! Status: no code yet; the embedding-export issue fills it.
