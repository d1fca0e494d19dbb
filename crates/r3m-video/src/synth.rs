//! Writes small synthetic videos with FFmpeg's own encoders, for `r3m doctor`'s self-check: a real
//! encode → mux → demux → decode round trip that needs no file and no `ffmpeg` CLI.
//!
//! Tests and benchmarks make their videos with the `ffmpeg` CLI instead, so they never depend on
//! this writer being right.

use std::path::Path;

use ffmpeg_next as ff;

use crate::{Error, Result};

/// The luma value of frame `i` in [`write_gray_ramp`]'s output: flat grey frames whose brightness
/// steps with the index, so a decoder that returns the wrong frame shows it.
pub fn ramp_luma(i: usize) -> u8 {
    (32 + (i * 16) % 192) as u8
}

/// Writes `frames` flat grey frames of `width`×`height` at 10 fps to `path` (container from the
/// extension), luma [`ramp_luma`]`(i)`, neutral chroma, full range. Uses libx264 when this FFmpeg
/// has it, else the built-in MPEG-4 encoder. Returns the encoder's name.
pub fn write_gray_ramp(path: &Path, width: u32, height: u32, frames: usize) -> Result<String> {
    crate::init();
    let err = |op: &'static str| move |e: ff::Error| Error::ffmpeg(path, op, e);
    let codec = ff::encoder::find_by_name("libx264")
        .or_else(|| ff::encoder::find(ff::codec::Id::MPEG4))
        .ok_or_else(|| Error::NoDecoder { path: path.into(), codec: "libx264/mpeg4 encoder".into() })?;
    let mut octx = ff::format::output(&path).map_err(err("creating output"))?;
    let global_header = octx.format().flags().contains(ff::format::Flags::GLOBAL_HEADER);
    let mut enc =
        ff::codec::context::Context::new_with_codec(codec).encoder().video().map_err(err("creating encoder"))?;
    enc.set_width(width);
    enc.set_height(height);
    enc.set_format(ff::format::Pixel::YUV420P);
    enc.set_time_base((1, 10));
    enc.set_frame_rate(Some((10, 1)));
    enc.set_gop(4);
    enc.set_max_b_frames(0);
    enc.set_colorspace(ff::color::Space::BT470BG);
    enc.set_color_range(ff::color::Range::JPEG);
    if global_header {
        enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    }
    let mut opts = ff::Dictionary::new();
    opts.set("crf", "10");
    opts.set("preset", "ultrafast");
    opts.set("qscale", "2");
    let mut enc = enc.open_as_with(codec, opts).map_err(err("opening encoder"))?;
    {
        let mut ost = octx.add_stream(codec).map_err(err("adding stream"))?;
        ost.set_parameters(&enc);
        ost.set_time_base((1, 10));
    }
    octx.write_header().map_err(err("writing header"))?;
    let ost_tb = octx.stream(0).map(|s| s.time_base()).unwrap_or((1, 10).into());
    let mut frame = ff::frame::Video::new(ff::format::Pixel::YUV420P, width, height);
    let mut packet = ff::Packet::empty();
    let mut drain = |enc: &mut ff::encoder::Video, octx: &mut ff::format::context::Output| -> Result<()> {
        while enc.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            // without a duration the mp4 muxer's edit list ends at the last frame's start, and
            // demuxers then discard that frame
            packet.set_duration(1);
            packet.rescale_ts((1, 10), ost_tb);
            packet.write_interleaved(octx).map_err(err("writing packet"))?;
        }
        Ok(())
    };
    for i in 0..frames {
        frame.data_mut(0).fill(ramp_luma(i));
        frame.data_mut(1).fill(128);
        frame.data_mut(2).fill(128);
        frame.set_pts(Some(i as i64));
        frame.set_color_range(ff::color::Range::JPEG);
        enc.send_frame(&frame).map_err(err("encoding"))?;
        drain(&mut enc, &mut octx)?;
    }
    enc.send_eof().map_err(err("flushing encoder"))?;
    drain(&mut enc, &mut octx)?;
    octx.write_trailer().map_err(err("writing trailer"))?;
    Ok(codec.name().to_string())
}
