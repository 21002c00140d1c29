"""Views per second of torchvision 0.28's PIL path for SimCLR's CIFAR recipe, on one core.

The workload of mpcl-data's criterion bench `cifar_simclr/one_view`: 256 synthetic 32x32 RGB
images (byte i of image k, planar, is (37*i + 101*k + i*i % 251) % 256), augmented one view
at a time with RandomResizedCrop(32, scale=(0.08, 1), bicubic), RandomHorizontalFlip,
RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), RandomGrayscale(0.2), ToTensor and
Normalize. The images are PIL images before timing starts, as a Dataset would hand them over.

Prints one JSON line: {"views_per_s": ..., "views": ..., "rounds": ...}, the best of the
rounds. `cargo xtask bench augment` runs it next to the criterion bench.
"""

import json
import os
import time

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

ROUNDS = 5
VIEWS = 4000


def images(n=256, c=3, side=32):
    i = np.arange(c * side * side, dtype=np.int64)
    out = []
    for k in range(n):
        planes = ((37 * i + 101 * k + i * i % 251) % 256).astype(np.uint8).reshape(c, side, side)
        out.append(Image.fromarray(np.ascontiguousarray(planes.transpose(1, 2, 0)), "RGB"))
    return out


def main():
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    torch.set_num_threads(1)
    torch.manual_seed(0)
    pipeline = T.Compose([
        T.RandomResizedCrop(32, scale=(0.08, 1.0), interpolation=T.InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.ToTensor(),
        T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    ])
    data = images()
    for img in data[:64]:  # warm-up
        pipeline(img)
    best = 0.0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for v in range(VIEWS):
            pipeline(data[v % len(data)])
        best = max(best, VIEWS / (time.perf_counter() - start))
    print(json.dumps({"views_per_s": best, "views": VIEWS, "rounds": ROUNDS}))


if __name__ == "__main__":
    main()
