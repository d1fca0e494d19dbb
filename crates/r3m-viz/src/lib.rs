//! # r3m-viz
//!
//! Rerun logging for r3m (rerun SDK =0.36.3): the one place that knows entity paths, timelines and
//! the default blueprint. Training curves, frames, embedding trajectories and frame-distance
//! matrices are all logged through here.
//!
//! It computes nothing about models or data; callers hand it plain numbers and images.

/// Version of the rerun SDK this build links (the `.rrd` files it writes open in the viewer of the
/// same version, PyPI `rerun-sdk`).
pub fn sdk_version() -> String {
    rerun::external::re_build_info::CrateVersion::LOCAL.to_string()
}

/// Logs one scalar into an in-memory recording and checks that it arrived: proof that the SDK
/// links and works, for `r3m doctor`. Returns the number of bytes the recording encoded to.
pub fn self_check() -> Result<usize, String> {
    let (rec, storage) = rerun::RecordingStreamBuilder::new("r3m_doctor")
        .memory()
        .map_err(|e| format!("rerun: cannot create an in-memory recording: {e}"))?;
    rec.set_time_sequence("step", 0);
    rec.log("doctor/scalar", &rerun::Scalars::single(1.0))
        .map_err(|e| format!("rerun: log failed: {e}"))?;
    rec.flush_blocking().map_err(|e| format!("rerun: flush failed: {e}"))?;
    let bytes = rerun::sink::MemorySinkStorage::concat_memory_sinks_as_bytes(&[&storage])
        .map_err(|e| format!("rerun: encoding the recording failed: {e}"))?;
    if bytes.is_empty() {
        return Err("rerun: the recording is empty after logging one scalar".into());
    }
    Ok(bytes.len())
}
