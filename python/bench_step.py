"""One SimCLR training step in PyTorch: the reference of `cargo xtask bench step`.

The workload of crates/mpcl-trainer/benches/step.rs: 2×256 views of 32×32 RGB (standard
normal), forward, InfoNCE at τ = 0.2, backward, AdamW at 3e-3 (weight decay 1e-6); the small
CNN of the default experiment with global pooling (widths 32-64-128, projector 128→256→128;
the default experiment pools to a 2 × 2 grid) and torchvision's
ResNet-18 with the CIFAR stem (3×3 stride-1 convolution, no max-pool) and SimCLR's projector
512→512→128, each with the backbone in channels-last memory order ("small-cnn") or in the
default NCHW order ("small-cnn-nchw"). Prints one JSON line per model with the median seconds
of the timed steps.

`--retain-freed-memory` gives glibc's malloc the settings the `mpcl` binary gives it
(crates/mpcl-trainer/src/allocator.rs): no block on a mapping of its own, no trimming below
2 GiB free, so freed activations are reused instead of mapped anew every step.
"""

import argparse
import ctypes
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, str(Path(__file__).parent))
from bench_train import SmallCnn, info_nce, projector  # noqa: E402


def resnet18_cifar():
    net = torchvision.models.resnet18()
    net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net


def build(name):
    """The backbone and projector of `name`; a name ending in "-nchw" keeps PyTorch's default
    memory order, any other moves the backbone to channels-last (mpcl's default)."""
    base = name.removesuffix("-nchw")
    if base == "small-cnn":
        backbone, head = SmallCnn([32, 64, 128], in_channels=3), projector(128, 256, 128)
    elif base == "resnet18":
        backbone, head = resnet18_cifar(), projector(512, 512, 128)
    else:
        raise SystemExit(f"unknown model {name!r}")
    if base == name:
        backbone = backbone.to(memory_format=torch.channels_last)
    return backbone, head


def retain_freed_memory():
    """glibc's mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, 2³¹ − 1), as mpcl sets
    them; exits when the C library is not glibc or refuses either."""
    m_trim_threshold, m_mmap_max = -1, -4
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError as e:
        raise SystemExit(f"--retain-freed-memory needs glibc: {e}")
    if libc.mallopt(m_mmap_max, 0) != 1 or libc.mallopt(m_trim_threshold, 2**31 - 1) != 1:
        raise SystemExit("--retain-freed-memory: glibc's mallopt refused the settings")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--model", action="append", required=True)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--retain-freed-memory", action="store_true")
    a = p.parse_args()
    if a.threads < 1 or a.repeats < 1:
        p.error("need --threads ≥ 1 and --repeats ≥ 1")
    if a.retain_freed_memory:
        retain_freed_memory()
    torch.set_num_threads(a.threads)
    for name in a.model:
        torch.manual_seed(0)
        backbone, head = build(name)
        params = list(backbone.parameters()) + list(head.parameters())
        opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=1e-6)
        x = torch.randn(512, 3, 32, 32)

        def step():
            loss = info_nce(head(backbone(x)), 2, 0.2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        step()  # warm-up
        times = []
        for _ in range(a.repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        print(json.dumps({"model": name, "seconds": statistics.median(times)}), flush=True)


if __name__ == "__main__":
    main()
