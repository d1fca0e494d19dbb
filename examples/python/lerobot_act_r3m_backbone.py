"""LeRobot's ACT policy with a frozen r3m encoder as its image backbone.

ACT and Diffusion Policy build their image backbone from torchvision (`vision_backbone`, weights by
torchvision's enum name). An r3m ResNet checkpoint uses torchvision's parameter names, so its
weights load straight into that backbone: build the policy without pretrained weights, load the
checkpoint's `model.safetensors` into `policy.model.backbone`, freeze it, and train the rest on
your LeRobot dataset. Camera frames are normalised with ImageNet's statistics, as r3m's ResNets
expect (lerobot-train does the same by default: --dataset.use_imagenet_stats=true).

usage: python lerobot_act_r3m_backbone.py CHECKPOINT|RUN_DIR DATASET_ROOT [STEPS]
Run it with LeRobot's venv ($R3M_LEROBOT_PYTHON after `. ~/.cache/r3m/env.sh`).
"""
import json
import math
import pathlib
import sys

import torch
from lerobot.configs.types import FeatureType
from lerobot.datasets.factory import IMAGENET_STATS
from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
from lerobot.datasets.utils import dataset_to_policy_features
from lerobot.policies.act.configuration_act import ACTConfig
from lerobot.policies.act.modeling_act import ACTPolicy
from lerobot.policies.factory import make_pre_post_processors
from safetensors.torch import load_file


def act_with_r3m_backbone(checkpoint_dir, meta, chunk=10):
    """An ACT policy for `meta`'s features whose ResNet backbone holds the r3m checkpoint, frozen."""
    cfg_r3m = json.load(open(f"{checkpoint_dir}/config.json"))
    if not cfg_r3m["arch"].startswith("resnet") or cfg_r3m.get("proj_dim"):
        sys.exit(f"{checkpoint_dir}: ACT's backbone is a torchvision ResNet trunk; this checkpoint is {cfg_r3m['arch']}")
    features = dataset_to_policy_features(meta.features)
    inputs = {k: f for k, f in features.items() if f.type in (FeatureType.VISUAL, FeatureType.STATE)}
    outputs = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
    cfg = ACTConfig(
        input_features=inputs,
        output_features=outputs,
        vision_backbone=cfg_r3m["arch"],
        pretrained_backbone_weights=None,  # the r3m weights go in below
        chunk_size=chunk,
        n_action_steps=chunk,
        device="cpu",
    )
    policy = ACTPolicy(cfg)
    weights = load_file(f"{checkpoint_dir}/model.safetensors")
    missing, unexpected = policy.model.backbone.load_state_dict(weights, strict=False)
    # FrozenBatchNorm2d has no batch counter; everything else must match
    unexpected = [k for k in unexpected if not k.endswith("num_batches_tracked")]
    assert not missing and not unexpected, (missing, unexpected)
    for p in policy.model.backbone.parameters():
        p.requires_grad = False
    return policy, cfg


def checkpoint_of(path):
    """A checkpoint folder, or a run folder's latest checkpoint (its `latest` file names it)."""
    latest = pathlib.Path(path) / "latest"
    return str(latest.parent / "checkpoints" / latest.read_text().strip()) if latest.is_file() else path


def main():
    checkpoint_dir, root = checkpoint_of(sys.argv[1]), sys.argv[2]
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    torch.manual_seed(0)
    meta = LeRobotDatasetMetadata("local/dataset", root=root)
    policy, cfg = act_with_r3m_backbone(checkpoint_dir, meta)
    stats = dict(meta.stats)
    for key in meta.camera_keys:  # ImageNet statistics for the cameras, as r3m's ResNets expect
        stats[key] = {k: torch.tensor(v, dtype=torch.float32) for k, v in IMAGENET_STATS.items()}
    pre, _post = make_pre_post_processors(cfg, dataset_stats=stats)
    data = LeRobotDataset("local/dataset", root=root, delta_timestamps={"action": [i / meta.fps for i in range(cfg.chunk_size)]})
    loader = torch.utils.data.DataLoader(data, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    trainable = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    frozen_before = policy.model.backbone.conv1.weight.clone()
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
    assert torch.equal(policy.model.backbone.conv1.weight, frozen_before), "the r3m backbone moved"
    assert all(math.isfinite(x) for x in losses), losses
    print(json.dumps({"steps": steps, "first": losses[0], "last": losses[-1], "losses": losses}))


if __name__ == "__main__":
    main()
