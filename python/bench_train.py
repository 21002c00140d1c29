"""The PyTorch + torchvision reference for `cargo xtask bench train` (issue #3).

One epoch of SimCLR on Fashion-MNIST with the same model, loss, optimiser, augmentations,
batch size and thread count as mpcl's default experiment (configs/default.toml), written the
way a PyTorch user would: torchvision transforms on PIL images in a DataLoader with worker
processes. Prints one JSON line with the views per second over the epoch.

Run with the reference environment (python/requirements.txt), e.g.
    python bench_train.py --data-dir ~/.local/share/mpcl/datasets/fashion-mnist
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T


def read_idx_images(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    magic, n, h, w = np.frombuffer(raw[:16], dtype=">u4")
    if magic != 2051:
        raise ValueError(f"{path}: not an IDX image file (magic {magic})")
    return np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, h, w)


class TwoViews(Dataset):
    """Each item is `views` independently augmented copies of one image."""

    def __init__(self, images: np.ndarray, transform, views: int):
        self.images, self.transform, self.views = images, transform, views

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i], mode="L")
        return torch.stack([self.transform(img) for _ in range(self.views)])


class SmallCnn(nn.Module):
    """3×3 conv (no bias) + BN + ReLU blocks, 2×2 max-pool after each but the last, then
    average pooling to a `pool` × `pool` grid, flattened channel-major (global pooling as a
    mean when pool = 1): mpcl's `SmallCnn`, with widths[-1]·pool² features."""

    def __init__(self, widths, in_channels=1, pool=1):
        super().__init__()
        layers, c_in = [], in_channels
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(c_in, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                       nn.ReLU(inplace=True)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = w
        self.body = nn.Sequential(*layers)
        self.pool = pool

    def forward(self, x):
        x = self.body(x)
        if self.pool == 1:
            return x.mean(dim=(2, 3))
        return F.adaptive_avg_pool2d(x, self.pool).flatten(1)


def projector(d_in, hidden, d_out):
    return nn.Sequential(nn.Linear(d_in, hidden, bias=False), nn.BatchNorm1d(hidden),
                         nn.ReLU(inplace=True), nn.Linear(hidden, d_out))


def info_nce(z, views, tau):
    """NT-Xent over the m·N views, the rows of `z` ordered view-major as mpcl orders them."""
    u = F.normalize(z, dim=1)
    n = u.shape[0] // views
    sim = u @ u.T / tau
    sim.fill_diagonal_(float("-inf"))
    log_prob = F.log_softmax(sim, dim=1)
    sample = torch.arange(u.shape[0]) % n
    positive = (sample[:, None] == sample[None, :]) & ~torch.eye(u.shape[0], dtype=torch.bool)
    return -(log_prob.masked_fill(~positive, 0.0).sum(1) / (views - 1)).mean()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--images", type=int, default=0, help="first n training images (0: all)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--views", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--pool", type=int, default=2, help="side of the pooled grid (≥ 1)")
    p.add_argument("--projector", type=int, nargs=2, default=[256, 128],
                   metavar=("HIDDEN", "OUT"))
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=1e-6)
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--crop-scale", type=float, nargs=2, default=[0.4, 1.0])
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.pool < 1 or a.threads < 1 or a.workers < 0 or a.batch_size < 1 or a.views < 2:
        p.error("need --pool ≥ 1, --threads ≥ 1, --workers ≥ 0, --batch-size ≥ 1, --views ≥ 2")

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    images = read_idx_images(a.data_dir / "train-images-idx3-ubyte")
    if a.images:
        images = images[: a.images]
    transform = T.Compose([
        T.RandomResizedCrop(28, scale=tuple(a.crop_scale), ratio=(0.75, 4 / 3), antialias=True),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(brightness=0.4, contrast=0.4)], p=0.8),
        T.ToTensor(),
        T.Normalize((0.2860,), (0.3530,)),
    ])
    loader = DataLoader(TwoViews(images, transform, a.views), batch_size=a.batch_size,
                        shuffle=True, drop_last=True, num_workers=a.workers,
                        persistent_workers=a.workers > 0)
    backbone = SmallCnn(a.widths, pool=a.pool)
    head = projector(a.widths[-1] * a.pool**2, *a.projector)
    params = list(backbone.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=a.weight_decay)
    steps = len(loader)
    warmup = round(0.1 * steps)
    lr_at = lambda s: (s + 1) / warmup if s < warmup else \
        0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - 1 - warmup)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)

    start, views, losses = time.perf_counter(), 0, []
    for batch in loader:
        # [N, m, 1, 28, 28] → view-major [m·N, 1, 28, 28]
        x = batch.transpose(0, 1).reshape(-1, *batch.shape[2:])
        loss = info_nce(head(backbone(x)), a.views, a.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        views += x.shape[0]
        losses.append(loss.item())
    seconds = time.perf_counter() - start
    print(json.dumps({
        "implementation": f"PyTorch {torch.__version__} + torchvision DataLoader",
        "views_per_s": views / seconds, "seconds": seconds, "views": views,
        "steps": len(losses), "mean_loss": float(np.mean(losses)),
        "threads": a.threads, "workers": a.workers,
    }))


if __name__ == "__main__":
    main()
