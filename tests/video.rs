//! r3m-video on files the `ffmpeg` CLI makes: every codec and container users bring, odd sizes,
//! rotation, variable frame rate, bad input, and pixel parity with the CLI's own RGB output.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failure is a failed run

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use r3m_suite::{ffmpeg, make_video};
use r3m_video::{probe, DecodeOptions, DecodePool, Error, Request, Resize, Scaler, VideoReader};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The ffmpeg CLI's RGB24 bytes for frame `n` of `path`, selected by decode order `n` and scaled
/// with `scale` (a filter string, or empty for native size).
fn cli_frame(path: &Path, n: usize, scale: &str) -> Vec<u8> {
    // native size still goes through an explicit bilinear scale: the CLI's auto-inserted
    // converter would use bicubic chroma upsampling
    let scale = if scale.is_empty() { "scale=iw:ih:flags=bilinear" } else { scale };
    r3m_suite::cli_rgb(path, &format!("select=eq(n\\,{n}),{scale}"))
}

fn assert_same(ours: &[u8], theirs: &[u8], what: &str) {
    assert_eq!(ours.len(), theirs.len(), "{what}: size differs");
    let diff = ours.iter().zip(theirs).filter(|(a, b)| a != b).count();
    assert_eq!(diff, 0, "{what}: {diff} of {} bytes differ from the ffmpeg CLI", ours.len());
}

struct Case {
    name: &'static str,
    file: &'static str,
    args: &'static [&'static str],
    codec: &'static str,
}

const CASES: &[Case] = &[
    Case { name: "h264/mp4", file: "v.mp4", args: &["-c:v", "libx264", "-g", "12", "-bf", "2"], codec: "h264" },
    Case { name: "h264/mov", file: "v.mov", args: &["-c:v", "libx264", "-g", "8"], codec: "h264" },
    Case {
        name: "hevc/mkv",
        file: "v.mkv",
        args: &["-c:v", "libx265", "-x265-params", "log-level=none:keyint=10"],
        codec: "hevc",
    },
    Case {
        name: "hevc/mp4",
        file: "v.mp4",
        args: &["-c:v", "libx265", "-tag:v", "hvc1", "-x265-params", "log-level=none"],
        codec: "hevc",
    },
    Case {
        name: "vp9/webm",
        file: "v.webm",
        args: &["-c:v", "libvpx-vp9", "-g", "10", "-deadline", "realtime", "-cpu-used", "8"],
        codec: "vp9",
    },
    Case {
        name: "av1/mp4 (g=2, LeRobot)",
        file: "v.mp4",
        args: &["-c:v", "libsvtav1", "-g", "2", "-crf", "30", "-preset", "12"],
        codec: "av1",
    },
    Case {
        name: "av1/mkv",
        file: "v.mkv",
        args: &["-c:v", "libaom-av1", "-cpu-used", "8", "-crf", "40", "-g", "10"],
        codec: "av1",
    },
];

#[test]
fn every_codec_and_container_matches_the_cli_at_random_indices() {
    for case in CASES {
        let dir = tmp();
        let path = dir.path().join(case.file);
        make_video(&path, "96x64", 25, 30, case.args);
        let info = probe(&path).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(info.codec, case.codec, "{}", case.name);
        assert_eq!((info.width, info.height), (96, 64), "{}", case.name);
        assert_eq!(info.frame_count(), 30, "{}: frame count", case.name);
        assert!(info.frames.exact, "{}", case.name);
        assert!((info.fps - 25.0).abs() < 0.01, "{}: fps {}", case.name, info.fps);
        assert!((info.duration_s - 1.2).abs() < 0.05, "{}: duration {}", case.name, info.duration_s);

        // random access in R3M's pattern: 5 sorted indices, some far apart, then an earlier set
        let opts = DecodeOptions::with_resize(Resize::square(48));
        let mut reader = VideoReader::open(&path, opts).unwrap();
        for tuple in [[1usize, 7, 8, 20, 29], [0, 3, 11, 12, 25]] {
            let frames = reader.read_frames(&tuple).unwrap();
            for (f, &i) in frames.iter().zip(&tuple) {
                assert_eq!(f.index, i);
                assert_eq!((f.width, f.height), (48, 48));
                let theirs = cli_frame(&path, i, "scale=48:48:flags=bilinear");
                assert_same(&f.data, &theirs, &format!("{} frame {i}", case.name));
            }
        }
        assert!(reader.stats().seeks >= 1, "{}: the second tuple needs a backward seek", case.name);
    }
}

#[test]
fn sequential_decode_equals_random_access() {
    let dir = tmp();
    let path = dir.path().join("seq.mp4");
    make_video(&path, "128x96", 30, 45, &["-c:v", "libx264", "-g", "15", "-bf", "3"]);
    let opts = DecodeOptions::with_resize(Resize::square(32));
    let all = VideoReader::open(&path, opts).unwrap().read_all().unwrap();
    assert_eq!(all.len(), 45);
    assert!(all.iter().enumerate().all(|(i, f)| f.index == i));
    let mut r = VideoReader::open(&path, opts).unwrap();
    for i in [44, 0, 17, 30, 31] {
        let f = r.read_frames(&[i]).unwrap().pop().unwrap();
        assert_eq!(f.data, all[i].data, "frame {i}");
        assert!((f.timestamp - i as f64 / 30.0).abs() < 1e-3, "frame {i} at {}", f.timestamp);
    }
    // many tuples in one pass: shapes kept, shared frames decoded once, content identical
    let sets = vec![vec![0, 5, 9, 30, 44], vec![2, 5, 6, 20, 40], vec![1, 1, 7, 8, 43]];
    let before = r.stats().decoded;
    let many = r.read_many(&sets).unwrap();
    for (set, got) in sets.iter().zip(&many) {
        assert_eq!(got.iter().map(|f| f.index).collect::<Vec<_>>(), *set);
        for f in got {
            assert_eq!(f.data, all[f.index].data, "frame {}", f.index);
        }
    }
    assert!(
        r.stats().decoded - before <= 45,
        "one pass decodes each frame at most once: {}",
        r.stats().decoded - before
    );
}

/// `skip_ref_loop_filter` (off by default): the same frames come back, decoded through references
/// without the deblocking filter: near FFmpeg's pixels but not equal to them, and a frame with no
/// references before it is untouched.
#[test]
fn references_without_the_loop_filter_change_pixels_a_little() {
    let dir = tmp();
    let path = dir.path().join("lf.mp4");
    make_video(&path, "128x96", 30, 60, &["-c:v", "libx264", "-g", "30", "-bf", "2", "-crf", "35"]);
    let exact = DecodeOptions::with_resize(Resize::square(64));
    let fast = DecodeOptions { skip_ref_loop_filter: true, ..exact };
    let tuples = [vec![3usize, 10, 17, 40, 55], vec![1, 2, 28, 33, 59]];
    let read = |opts| -> Vec<r3m_video::Frame> {
        let mut r = VideoReader::open(&path, opts).unwrap();
        tuples.iter().flat_map(|t| r.read_frames(t).unwrap()).collect()
    };
    let (a, b) = (read(exact), read(fast));
    assert_eq!(a.iter().map(|f| f.index).collect::<Vec<_>>(), b.iter().map(|f| f.index).collect::<Vec<_>>());
    let (mut sum, mut n, mut differ) = (0u64, 0usize, 0usize);
    for (x, y) in a.iter().zip(&b) {
        differ += usize::from(x.data != y.data);
        sum += x.data.iter().zip(&y.data).map(|(p, q)| u64::from(p.abs_diff(*q))).sum::<u64>();
        n += x.data.len();
    }
    let mean = sum as f64 / n as f64;
    assert!(differ > 0, "the option changed nothing: is skip_loop_filter reaching the decoder?");
    assert!(mean < 8.0, "mean difference {mean:.2} levels: more than a missing deblocking filter");
    // the first frame has no references before it: decoded exactly
    let first = |opts| VideoReader::open(&path, opts).unwrap().read_frames(&[0]).unwrap().remove(0).data;
    assert_eq!(first(exact), first(fast));
    assert_same(&first(fast), &cli_frame(&path, 0, "scale=64:64:flags=bilinear"), "frame 0");
}

#[test]
fn forward_requests_reuse_the_decoder() {
    let dir = tmp();
    let path = dir.path().join("fwd.mp4");
    make_video(&path, "64x64", 25, 60, &["-c:v", "libx264", "-g", "30"]);
    let mut r = VideoReader::open(&path, DecodeOptions::default()).unwrap();
    r.read_frames(&[2, 4]).unwrap();
    r.read_frames(&[6, 9]).unwrap();
    r.read_frames(&[12]).unwrap();
    let s = r.stats();
    assert_eq!(s.seeks, 0, "requests ahead in the same GOP must decode forward");
    assert!(
        s.decoded <= 13,
        "frames 0..=12 decoded at most once each (non-reference ones before a target are skipped): {s:?}"
    );
    r.read_frames(&[40]).unwrap(); // past the next keyframe (30): seek there
    assert_eq!(r.stats().seeks, 1);
    assert!(r.stats().decoded <= 13 + 11 + 4, "seek did not skip ahead: {:?}", r.stats());
}

#[test]
fn odd_sizes_and_imagenet_crop() {
    let dir = tmp();
    // VP9 4:2:0 at an odd size, and H.264 4:4:4 at an odd size (testsrc: testsrc2 rounds sizes to even)
    let vp9 = dir.path().join("odd.webm");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=225x131:rate=10",
        "-frames:v",
        "6",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        vp9.to_str().unwrap(),
    ]);
    let h264 = dir.path().join("odd444.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=225x131:rate=10",
        "-frames:v",
        "6",
        "-pix_fmt",
        "yuv444p",
        "-c:v",
        "libx264",
        h264.to_str().unwrap(),
    ]);
    for path in [&vp9, &h264] {
        let info = probe(path).unwrap();
        assert_eq!((info.width, info.height), (225, 131));
        // native size
        let mut r = VideoReader::open(path, DecodeOptions::default()).unwrap();
        let f = r.read_frames(&[3]).unwrap().pop().unwrap();
        assert_eq!((f.width, f.height), (225, 131));
        assert_same(&f.data, &cli_frame(path, 3, ""), &format!("{} native", path.display()));
        // torchvision Resize(256)+CenterCrop(224): 131 -> 256, 225 -> int(256*225/131) = 439
        let mut r = VideoReader::open(path, DecodeOptions::with_resize(Resize::IMAGENET)).unwrap();
        let f = r.read_frames(&[3]).unwrap().pop().unwrap();
        assert_eq!((f.width, f.height), (224, 224));
        // centre crop: left = round((439-224)/2) = round(107.5) = 108 (half to even), top = 16
        let theirs = cli_frame(path, 3, "scale=439:256:flags=bilinear,crop=224:224:108:16");
        assert_same(&f.data, &theirs, &format!("{} imagenet", path.display()));
    }
}

#[test]
fn rotation_metadata_is_applied() {
    let dir = tmp();
    let src = dir.path().join("src.mp4");
    make_video(&src, "96x64", 10, 5, &["-c:v", "libx264"]);
    for (deg, cw) in [("90", 270u32), ("-90", 90), ("180", 180)] {
        let path = dir.path().join(format!("rot{cw}.mp4"));
        // the mp4 muxer writes `rotate` metadata as a display matrix (counter-clockwise degrees)
        ffmpeg(&[
            "-i",
            src.to_str().unwrap(),
            "-c",
            "copy",
            "-metadata:s:v:0",
            &format!("rotate={deg}"),
            path.to_str().unwrap(),
        ]);
        let info = probe(&path).unwrap();
        assert_eq!(info.rotation, cw, "rotate={deg}");
        let mut r = VideoReader::open(&path, DecodeOptions::default()).unwrap();
        let f = r.read_frames(&[2]).unwrap().pop().unwrap();
        let (w, h) = if cw == 180 { (96, 64) } else { (64, 96) };
        assert_eq!((f.width, f.height), (w, h), "rotation {cw}");
        // the CLI autorotates before converting colour; we convert then rotate. Chroma
        // upsampling then runs along the other axis, so allow a small mean difference.
        let theirs = cli_frame(&path, 2, "");
        assert_eq!(theirs.len(), f.data.len());
        let mad: f64 = f.data.iter().zip(&theirs).map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs()).sum::<f64>()
            / theirs.len() as f64;
        assert!(mad < 3.0, "rotation {cw}: mean abs difference {mad} from the CLI");
        // and the unrotated reading is clearly different (the test would catch a missing rotation)
        if cw == 180 {
            let unrotated = cli_frame(&src, 2, "");
            let mad0: f64 =
                f.data.iter().zip(&unrotated).map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs()).sum::<f64>()
                    / theirs.len() as f64;
            assert!(mad0 > 10.0, "rotated and unrotated frames look alike ({mad0})");
        }
    }
}

#[test]
fn variable_frame_rate_is_frame_accurate() {
    let dir = tmp();
    let path = dir.path().join("vfr.mkv");
    // frame n at t = (n + n^2/20) / 25 s: gaps grow along the clip
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=80x60:rate=25",
        "-frames:v",
        "40",
        "-vf",
        "settb=1/1000,setpts=(N+N*N/20)/(25*TB)",
        "-enc_time_base",
        "1/1000",
        "-fps_mode",
        "passthrough",
        "-c:v",
        "libx264",
        "-g",
        "10",
        path.to_str().unwrap(),
    ]);
    let info = probe(&path).unwrap();
    assert_eq!(info.frame_count(), 40);
    let gaps: Vec<i64> = info.pts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.first() < gaps.last(), "not VFR: {gaps:?}");
    let mut r = VideoReader::open(&path, DecodeOptions::default()).unwrap();
    let want = [3usize, 19, 20, 33, 39];
    let frames = r.read_frames(&want).unwrap();
    for (f, &i) in frames.iter().zip(&want) {
        let expect_t = (i as f64 + (i * i) as f64 / 20.0) / 25.0;
        assert!((f.timestamp - expect_t).abs() < 0.0015, "frame {i}: t={} want {expect_t}", f.timestamp);
        assert_same(&f.data, &cli_frame(&path, i, ""), &format!("vfr frame {i}"));
    }
    // by timestamp: the frame nearest to each time
    let t = [(19.0 + 361.0 / 20.0) / 25.0 + 0.004];
    let by_time = r.read_times(&t, 0.02).unwrap();
    assert_eq!(by_time[0].index, 19);
    assert!(matches!(r.read_times(&[100.0], 0.05), Err(Error::NoFrameAtTime { .. })));
}

#[test]
fn bad_input_gives_typed_errors_naming_the_file() {
    let dir = tmp();
    let d = dir.path();
    let empty = d.join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(probe(&empty), Err(Error::Empty { .. })));

    let text = d.join("notes.mp4");
    std::fs::write(&text, "this is not a video, just text pretending to be one\n".repeat(50)).unwrap();
    let e = probe(&text).unwrap_err();
    assert!(matches!(e, Error::Open { .. }), "{e}");
    assert!(e.to_string().contains("notes.mp4"), "{e}");

    let missing = d.join("nope.mkv");
    assert!(matches!(probe(&missing), Err(Error::Io { .. })));

    let audio = d.join("audio.mkv");
    ffmpeg(&["-f", "lavfi", "-i", "sine=duration=0.5", audio.to_str().unwrap()]);
    let e = probe(&audio).unwrap_err();
    assert!(matches!(e, Error::NoVideoStream { .. }), "{e}");

    let one = d.join("one.mp4");
    make_video(&one, "64x48", 10, 1, &["-c:v", "libx264"]);
    let mut r = VideoReader::open(&one, DecodeOptions::default()).unwrap();
    assert_eq!(r.info().frame_count(), 1);
    assert_eq!(r.read_all().unwrap().len(), 1);
    assert!(matches!(r.read_frames(&[1]), Err(Error::OutOfRange { index: 1, count: 1, .. })));
    assert!(matches!(r.read_frames(&[0, 0]), Ok(v) if v.len() == 2));

    let huge = d.join("huge.mkv");
    ffmpeg(&["-f", "lavfi", "-i", "color=c=red:s=16400x8:d=0.1:r=10", "-c:v", "ffv1", huge.to_str().unwrap()]);
    let e = probe(&huge).unwrap_err();
    assert!(matches!(e, Error::TooLarge { width: 16400, .. }), "{e}");

    let unsorted = d.join("u.mp4");
    make_video(&unsorted, "32x32", 10, 5, &["-c:v", "libx264"]);
    let mut r = VideoReader::open(&unsorted, DecodeOptions::default()).unwrap();
    assert!(matches!(r.read_frames(&[3, 1]), Err(Error::Unsorted { .. })));
}

fn truncate(src: &Path, dst: &Path, keep: f64) {
    let bytes = std::fs::read(src).unwrap();
    std::fs::write(dst, &bytes[..(bytes.len() as f64 * keep) as usize]).unwrap();
}

#[test]
fn truncated_files_never_panic_or_hang() {
    let dir = tmp();
    let d = dir.path();
    // mp4 with the index at the end: cut off, the container is unreadable
    let mp4 = d.join("full.mp4");
    make_video(&mp4, "96x64", 25, 50, &["-c:v", "libx264", "-g", "10"]);
    let cut = d.join("cut.mp4");
    truncate(&mp4, &cut, 0.6);
    let e = probe(&cut).unwrap_err();
    assert!(e.to_string().contains("cut.mp4"), "{e}");
    // faststart mp4 cut mid-data: the header promises 50 frames, fewer are there
    let fs = d.join("fast.mp4");
    make_video(&fs, "96x64", 25, 50, &["-c:v", "libx264", "-g", "10", "-movflags", "+faststart"]);
    let fs_cut = d.join("fast_cut.mp4");
    truncate(&fs, &fs_cut, 0.5);
    if let Ok(mut r) = VideoReader::open(&fs_cut, DecodeOptions::default()) {
        let frames = r.read_all().unwrap();
        assert!(frames.len() < 50, "a half file decoded to {} frames", frames.len());
        // asking for the last frame fails with an error, not a panic or a hang
        assert!(r.read_frames(&[49]).is_err());
    }
    // mkv is streamable: a cut file keeps its first frames
    let mkv = d.join("full.mkv");
    make_video(&mkv, "96x64", 25, 50, &["-c:v", "libx264", "-g", "10"]);
    let mkv_cut = d.join("cut.mkv");
    truncate(&mkv, &mkv_cut, 0.5);
    let info = probe(&mkv_cut).unwrap();
    assert!(info.frame_count() > 5 && info.frame_count() < 50, "{} frames", info.frame_count());
    let frames = VideoReader::open(&mkv_cut, DecodeOptions::default()).unwrap().read_all().unwrap();
    assert!(frames.len() + 1 >= info.frame_count(), "{} of {} frames decoded", frames.len(), info.frame_count());
}

#[test]
fn a_corrupt_frame_mid_file_is_skipped_and_counted() {
    let dir = tmp();
    let src = dir.path().join("mjpeg.avi");
    // MJPEG: every frame stands alone, so one damaged frame cannot take the others with it
    make_video(&src, "64x48", 10, 20, &["-c:v", "mjpeg", "-q:v", "3"]);
    let mut bytes = std::fs::read(&src).unwrap();
    // wipe the 11th JPEG (index 10) from its start-of-image marker to the next frame's AVI chunk
    // header: the packet stays, its contents are gone
    let soi: Vec<usize> =
        bytes.windows(3).enumerate().filter(|(_, w)| w == &[0xFF, 0xD8, 0xFF]).map(|(i, _)| i).collect();
    assert_eq!(soi.len(), 20, "JPEG frames found");
    for b in &mut bytes[soi[10]..soi[11] - 8] {
        *b = 0;
    }
    let bad = dir.path().join("bad.avi");
    std::fs::write(&bad, &bytes).unwrap();
    let mut r = VideoReader::open(&bad, DecodeOptions::default()).unwrap();
    let frames = r.read_all().unwrap();
    assert_eq!(frames.len(), 19, "the damaged frame must be skipped, the other 19 kept");
    assert!(r.stats().corrupt >= 1, "{:?}", r.stats());
    assert!(frames.iter().all(|f| f.index != 10));
    assert!(matches!(r.read_frames(&[10]), Err(Error::FrameUndecodable { index: 10, .. })));
    // the frames after it are intact
    let f11 = r.read_frames(&[11]).unwrap().pop().unwrap();
    assert_same(&f11.data, &frames[10].data, "frame 11");
}

#[test]
fn pool_streams_results_in_request_order() {
    let dir = tmp();
    let mut infos = Vec::new();
    for k in 0..3 {
        let p: PathBuf = dir.path().join(format!("c{k}.mp4"));
        make_video(&p, "64x48", 25, 30 + 10 * k, &["-c:v", "libx264", "-g", "8"]);
        infos.push(Arc::new(probe(&p).unwrap()));
    }
    // a file that was fine when probed and is garbage when decoded fails its own request only
    let bad = dir.path().join("bad.mp4");
    std::fs::copy(&infos[0].path, &bad).unwrap();
    let bad_info = Arc::new(probe(&bad).unwrap());
    std::fs::write(&bad, b"garbage").unwrap();
    let opts = DecodeOptions {
        resize: Resize::square(32),
        scaler: Scaler::Bilinear,
        threads: 0,
        seek_threshold: 4,
        skip_ref_loop_filter: false,
    };
    let pool = DecodePool::new(3, opts, 4);
    let mut reqs = Vec::new();
    for round in 0..3 {
        for info in &infos {
            let base = round * 4;
            reqs.push(Request::frames(info.clone(), vec![base, base + 1, base + 3, base + 10, base + 20]));
        }
    }
    reqs.push(Request::all(infos[2].clone()));
    reqs.insert(5, Request::frames(bad_info, vec![0, 1]));
    let expected: Vec<(PathBuf, Option<Vec<usize>>)> =
        reqs.iter().map(|r| (r.video.path.clone(), r.indices.clone())).collect();
    let results: Vec<_> = pool.run(reqs).collect();
    assert_eq!(results.len(), expected.len());
    for (res, (path, ix)) in results.iter().zip(&expected) {
        if *path == bad {
            let e = res.as_ref().unwrap_err();
            assert!(e.to_string().contains("bad.mp4"), "{e}");
            continue;
        }
        let frames = res.as_ref().unwrap();
        let want: Vec<usize> = ix.clone().unwrap_or_else(|| (0..50).collect());
        let got: Vec<usize> = frames.iter().map(|f| f.index).collect();
        assert_eq!(got, want, "{}", path.display());
    }
    // the same frame decoded through the pool and directly is identical
    let direct = VideoReader::open(&infos[1].path, opts).unwrap().read_frames(&[20]).unwrap();
    assert_eq!(results[1].as_ref().unwrap()[4].data, direct[0].data);
    // an early drop of the results does not hang the workers
    let looped = infos.clone();
    let mut it = pool.run((0..1000).map(move |i| Request::frames(looped[i % 3].clone(), vec![0, 5])));
    assert!(it.next().unwrap().is_ok());
    drop(it);
}

#[test]
fn lerobot_style_concatenated_episodes_by_timestamp() {
    // LeRobot v3.0 stores many episodes back to back in one AV1 file with a keyframe every 2
    // frames, and locates an episode's frames by from_timestamp + k / fps.
    let dir = tmp();
    let path = dir.path().join("file-000.mp4");
    make_video(
        &path,
        "96x64",
        10,
        60,
        &["-c:v", "libsvtav1", "-g", "2", "-crf", "30", "-preset", "12", "-svtav1-params", "lp=1"],
    );
    let info = probe(&path).unwrap();
    assert_eq!(info.frame_count(), 60);
    assert!(info.keyframe_interval.unwrap() <= 2.01, "keyframe interval {:?}", info.keyframe_interval);
    // episode 1 spans [2.0 s, 4.0 s): ask for its frames 0, 7 and 19 by time
    let from = 2.0;
    let times: Vec<f64> = [0usize, 7, 19].iter().map(|k| from + *k as f64 / 10.0).collect();
    let mut r = VideoReader::open(&path, DecodeOptions::with_resize(Resize::square(32))).unwrap();
    let frames = r.read_times(&times, 0.5 / 10.0).unwrap();
    let idx: Vec<usize> = frames.iter().map(|f| f.index).collect();
    assert_eq!(idx, vec![20, 27, 39]);
    for f in &frames {
        assert_same(&f.data, &cli_frame(&path, f.index, "scale=32:32:flags=bilinear"), &format!("frame {}", f.index));
    }
}

#[test]
fn a_folder_of_videos_skips_and_counts_bad_files() {
    use r3m_data::{scan_videos, ProbeCache};
    let dir = tmp();
    let root = dir.path().join("videos");
    std::fs::create_dir_all(root.join("robot/cam0")).unwrap();
    make_video(&root.join("a.mp4"), "64x48", 10, 12, &["-c:v", "libx264"]);
    make_video(&root.join("robot/cam0/b.MKV"), "64x48", 10, 20, &["-c:v", "libx264"]);
    make_video(&root.join("robot/short.mp4"), "64x48", 10, 2, &["-c:v", "libx264"]);
    std::fs::write(root.join("robot/broken.webm"), b"not a video at all").unwrap();
    std::fs::write(root.join("robot/notes.txt"), b"ignored: not a video extension").unwrap();
    let cache_path = dir.path().join("cache/probe.json");
    let mut cache = ProbeCache::open(Some(cache_path.clone()));
    let all = scan_videos(&root, &mut cache).unwrap();
    cache.save();
    // the source keeps every video with a frame; training's length rule is applied by for_tuples
    assert_eq!(all.clips.len(), 3, "{all:?}");
    let ds = all.for_tuples().unwrap();
    assert_eq!(ds.clips.len(), 2, "{ds:?}");
    assert_eq!(ds.clips.iter().map(|c| c.len()).sum::<usize>(), 32);
    assert_eq!(ds.skipped.len(), 2);
    let reasons: Vec<String> = ds.skipped.iter().map(|s| format!("{}: {}", s.path.display(), s.reason)).collect();
    assert!(reasons.iter().any(|r| r.contains("broken.webm") && r.contains("not a readable video")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("short.mp4") && r.contains("too short")), "{reasons:?}");
    assert_eq!(ds.cache_hits, 0);
    // a second scan answers from the cache
    let mut cache = ProbeCache::open(Some(cache_path));
    let again = scan_videos(&root, &mut cache).unwrap().for_tuples().unwrap();
    assert_eq!(again.cache_hits, 3, "the three readable videos come from the cache");
    assert_eq!(again.clips.len(), 2);
    assert_eq!(again.clips[0].video.pts, ds.clips[0].video.pts);
    // a folder with nothing usable is an error that says what was found
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("x.mp4"), b"").unwrap();
    let e = scan_videos(&empty, &mut ProbeCache::default()).unwrap_err();
    assert!(e.to_string().contains("no usable videos") && e.to_string().contains("empty (0 bytes)"), "{e}");
}

#[test]
fn edit_list_preroll_frames_are_not_counted() {
    // stream copy from a non-keyframe: mp4 keeps the frames from the previous keyframe but marks
    // them for discard through an edit list; players (and the CLI) never show them
    let dir = tmp();
    let src = dir.path().join("src.mp4");
    make_video(&src, "64x48", 25, 75, &["-c:v", "libx264", "-g", "25", "-bf", "2"]);
    let cut = dir.path().join("cut.mp4");
    ffmpeg(&["-ss", "1.3", "-i", src.to_str().unwrap(), "-c", "copy", cut.to_str().unwrap()]);
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&cut)
        .output()
        .unwrap();
    let cli_count: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let info = probe(&cut).unwrap();
    assert_eq!(info.frame_count(), cli_count, "frames the CLI decodes");
    let mut r = VideoReader::open(&cut, DecodeOptions::default()).unwrap();
    let all = r.read_all().unwrap();
    assert_eq!(all.len(), cli_count);
    for i in [0, 1, cli_count / 2, cli_count - 1] {
        let f = r.read_frames(&[i]).unwrap().pop().unwrap();
        assert_same(&f.data, &cli_frame(&cut, i, ""), &format!("edit-listed frame {i}"));
    }
}

/// Resident memory of this process, bytes (Linux `/proc/self/statm`).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Decoding releases every demuxed packet. FFmpeg < 7's `av_read_frame` overwrites the packet it
/// is given without releasing its buffer, and the reader used to read into one packet again and
/// again: each pass over a clip leaked about the file's size (`r3m train` grew by ~1 MB a step).
/// Runs in a child process of its own so that no other test's allocations move the measurement.
#[test]
fn decoding_a_clip_again_and_again_keeps_memory_flat() {
    const NAME: &str = "decoding_a_clip_again_and_again_keeps_memory_flat";
    if std::env::var_os("R3M_RSS_CHILD").is_none() {
        let o = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads", "1"])
            .env("R3M_RSS_CHILD", "1")
            .output()
            .unwrap();
        let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success() && out.contains("1 passed"), "{out}");
        return;
    }
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/synthetic/clip7.mp4");
    let bytes = std::fs::metadata(&clip).unwrap().len();
    let mut r = VideoReader::open(&clip, DecodeOptions::default()).unwrap();
    let frames = r.read_all().unwrap().len();
    assert!(frames > 10);
    let passes = 400u64;
    for _ in 0..20 {
        r.read_all().unwrap(); // allocator and decoder warm
    }
    let before = rss_bytes();
    for _ in 0..passes {
        assert_eq!(r.read_all().unwrap().len(), frames);
    }
    let grown = rss_bytes().saturating_sub(before);
    // a leak of every packet would be ~passes × the file's size (here ~40 MB)
    println!("{passes} passes over {} ({bytes} B, {frames} frames): RSS grew {grown} B", clip.display());
    assert!(grown < passes * bytes / 8, "RSS grew {grown} B over {passes} passes of a {bytes}-B clip: a packet leak");
}
