"""Checks a LeRobot dataset written by `r3m embed --into-dataset` with LeRobot's own classes.

* LeRobotDataset(ROOT) loads it; every row's FEATURE equals the row of `r3m embed`'s Parquet
  export REF with the same (episode_index, frame_index), to the bit;
* meta.stats[FEATURE] and each episode's statistics (v3.0: meta.episodes' stats/FEATURE/*) are the
  statistics of those values;
* --videos: the frames still decode (the video feature is there); otherwise no video key is left;
* --train N: LeRobot's ACT policy, built from the dataset's features with FEATURE as its
  environment state (no image input) and normalised by the dataset's statistics through LeRobot's
  processors, trains N steps on CPU; the losses are printed as JSON and must be finite and fall.
* --convert: the dataset is v2.1; LeRobot's own converter turns a copy of it into v3.0 first.
usage: lerobot_check.py ROOT REF FEATURE [--videos] [--train N] [--convert]
"""
import argparse
import json
import math
import pathlib
import shutil
import tempfile

import numpy as np
import pyarrow.parquet as pq
import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("ref")
    p.add_argument("feature")
    p.add_argument("--videos", action="store_true")
    p.add_argument("--train", type=int, default=0)
    p.add_argument("--convert", action="store_true")
    a = p.parse_args()
    root = pathlib.Path(a.root)
    if a.convert:
        from lerobot.datasets.v30.convert_dataset_v21_to_v30 import convert_dataset

        tmp = pathlib.Path(tempfile.mkdtemp())
        shutil.copytree(root, tmp / "ds", symlinks=True)
        convert_dataset("ds", root=tmp, push_to_hub=False)
        root = tmp / "ds"

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("r3m/featured", root=root)
    assert len(ds) == ds.meta.total_frames, (len(ds), ds.meta.total_frames)
    assert ds.meta.features[a.feature]["dtype"] == "float32", ds.meta.features[a.feature]

    # every row against the Parquet export
    ref = pq.read_table(a.ref).to_pydict()
    want = {(e, f): v for e, f, v in zip(ref["episode_index"], ref["frame_index"], ref["embedding"])}
    hf = ds.hf_dataset.with_format(None)
    got = np.asarray(hf[a.feature], dtype=np.float32)
    eps, frames = hf["episode_index"], hf["frame_index"]
    expect = np.asarray([want[(int(e), int(f))] for e, f in zip(eps, frames)], dtype=np.float32)
    assert got.shape == expect.shape, (got.shape, expect.shape)
    assert np.array_equal(got, expect), "feature values differ from the Parquet export"
    item = ds[len(ds) // 2]
    key = (int(item["episode_index"]), int(item["frame_index"]))
    assert np.array_equal(item[a.feature].numpy(), np.asarray(want[key], np.float32)), key

    # statistics: the dataset's and each episode's
    st = ds.meta.stats[a.feature]
    assert np.allclose(st["mean"], got.mean(0), atol=1e-5), "stats mean"
    assert np.allclose(st["std"], got.std(0), atol=1e-4), "stats std"
    assert np.allclose(st["min"], got.min(0)) and np.allclose(st["max"], got.max(0)), "stats min/max"
    assert int(np.asarray(st["count"]).reshape(-1)[0]) == len(got), st["count"]
    eps = np.asarray(eps)
    # LeRobotDataset keeps the episodes' table without its stats/ columns: read it whole the way it
    # reads it (v2.1 keeps these statistics in episodes_stats.jsonl, which --convert moved here)
    from lerobot.datasets.utils import load_nested_dataset

    meta_eps = load_nested_dataset(root / "meta/episodes")
    for row in range(len(meta_eps)):
        e = meta_eps[row]["episode_index"]
        sel = got[eps == e]
        assert np.allclose(meta_eps[row][f"stats/{a.feature}/mean"], sel.mean(0), atol=1e-5), e
        if f"stats/{a.feature}/q50" in meta_eps.column_names:  # where the dataset keeps quantiles
            assert np.allclose(meta_eps[row][f"stats/{a.feature}/q50"], np.quantile(sel, 0.5, axis=0), atol=1e-5), e

    if a.videos:
        assert ds.meta.video_keys, "video features were expected"
        img = ds[0][ds.meta.video_keys[0]]
        assert img.ndim == 3 and img.shape[0] == 3, img.shape
    else:
        assert not ds.meta.video_keys, ds.meta.video_keys

    losses = train_act(root, a.feature, a.train) if a.train else []
    print(json.dumps({"rows": len(ds), "episodes": ds.meta.total_episodes, "losses": losses}))


def train_act(root, feature, steps):
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
    from lerobot.datasets.utils import dataset_to_policy_features
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    torch.manual_seed(0)
    meta = LeRobotDatasetMetadata("r3m/featured", root=root)
    features = dataset_to_policy_features(meta.features)
    inputs = {k: f for k, f in features.items() if k in (feature, "observation.state")}
    outputs = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
    chunk = 10
    cfg = ACTConfig(
        input_features=inputs,
        output_features=outputs,
        chunk_size=chunk,
        n_action_steps=chunk,
        dim_model=64,
        n_heads=2,
        dim_feedforward=128,
        n_encoder_layers=1,
        n_decoder_layers=1,
        use_vae=False,
        device="cpu",
    )
    policy = ACTPolicy(cfg)
    pre, _post = make_pre_post_processors(cfg, dataset_stats=meta.stats)
    data = LeRobotDataset(
        "r3m/featured", root=root, delta_timestamps={"action": [i / meta.fps for i in range(chunk)]}
    )
    loader = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    policy.train()
    losses = []
    while len(losses) < steps:
        for batch in loader:
            loss, _ = policy.forward(pre(batch))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if len(losses) >= steps:
                break
    assert all(math.isfinite(x) for x in losses), losses
    k = max(1, steps // 4)
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    assert last < first, f"ACT's loss did not fall: first {k} steps {first:.3f}, last {k} {last:.3f}"
    return losses


if __name__ == "__main__":
    main()
