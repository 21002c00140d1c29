"""Golden fixtures for mpcl-data's augmentations, computed by torchvision's PIL path.

Writes crates/mpcl-data/tests/fixtures/augment.json: a few small images (32x32 RGB and a
28x28 gray one) and the outputs of torchvision.transforms.functional for fixed parameters (a
crop box resized with bilinear and bicubic filters, each jitter factor alone, hue shifts,
grayscale, blur with a given kernel and sigma, solarize, and whole pipelines with every
choice fixed). The Rust test tests/augment_fixtures.rs replays each case and compares.

Run with the reference environment (python/requirements.txt):
    ~/.cache/mpcl/pyenv-torch-<version>/bin/python python/augment_fixtures.py
Pixels are stored planar ([c, h, w]) as hex strings; the images are drawn from a fixed seed.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

OUT = Path(__file__).resolve().parent.parent / "crates/mpcl-data/tests/fixtures/augment.json"
MODES = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}


def make_images():
    """Smooth colour gradients with blobs and noise, so that every transform changes them."""
    rng = np.random.default_rng(20261204)
    images = []
    for name, (h, w, c) in [("rgb_a", (32, 32, 3)), ("rgb_b", (32, 32, 3)), ("gray", (28, 28, 1))]:
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        planes = []
        for ch in range(c):
            fx, fy, phase = rng.uniform(0.05, 0.4, 2).tolist() + [rng.uniform(0, 6.3)]
            base = 128 + 90 * np.sin(fx * x + fy * y + phase)
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            blob = 80 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * 4.0**2))
            noise = rng.normal(0, 18, (h, w))
            planes.append(np.clip(base + blob + noise, 0, 255).round().astype(np.uint8))
        images.append((name, np.stack(planes)))  # [c, h, w]
    # Saturated corners exercise clamping and the hue wrap-around.
    images[0][1][:, :4, :4] = np.array([255, 0, 0], dtype=np.uint8)[:, None, None]
    images[0][1][:, -4:, -4:] = np.array([0, 0, 255], dtype=np.uint8)[:, None, None]
    return images


def to_pil(planes):
    if planes.shape[0] == 1:
        return Image.fromarray(planes[0], "L")
    return Image.fromarray(np.ascontiguousarray(planes.transpose(1, 2, 0)), "RGB")


def from_pil(img):
    a = np.asarray(img)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def apply_op(img, op, p):
    if op == "resized_crop":
        size = [p["size"], p["size"]]
        return F.resized_crop(img, p["top"], p["left"], p["height"], p["width"], size,
                              MODES[p["interpolation"]], antialias=True)
    if op == "flip":
        return F.hflip(img)
    if op == "brightness":
        return F.adjust_brightness(img, p["factor"])
    if op == "contrast":
        return F.adjust_contrast(img, p["factor"])
    if op == "saturation":
        return F.adjust_saturation(img, p["factor"])
    if op == "hue":
        return F.adjust_hue(img, p["factor"])
    if op == "grayscale":
        return F.rgb_to_grayscale(img, num_output_channels=len(img.getbands()))
    if op == "blur":
        return F.gaussian_blur(img, [p["kernel"], p["kernel"]], [p["sigma"], p["sigma"]])
    if op == "solarize":
        return F.solarize(img, p["threshold"])
    if op == "pipeline":
        # ColorJitter.forward's loop with the permutation and factors fixed.
        img = apply_op(img, "resized_crop", p["crop"])
        if p["flip"]:
            img = F.hflip(img)
        names = ["brightness", "contrast", "saturation", "hue"]
        for i in p["order"]:
            img = apply_op(img, names[i], {"factor": p[names[i]]})
        if p["grayscale"]:
            img = apply_op(img, "grayscale", {})
        if p["blur_sigma"] is not None:
            img = apply_op(img, "blur", {"kernel": p["blur_kernel"], "sigma": p["blur_sigma"]})
        if p["solarize_threshold"] is not None:
            img = F.solarize(img, p["solarize_threshold"])
        return img
    raise ValueError(op)


def cases_for(index, channels, side):
    crop = lambda t, l, h, w, s, m: ("resized_crop", dict(top=t, left=l, height=h, width=w,
                                                          size=s, interpolation=m))
    out = [
        crop(3, 5, 20, 17, side, "bilinear"),
        crop(3, 5, 20, 17, side, "bicubic"),
        crop(0, 0, side, side, side, "bicubic"),
        crop(1, 2, side - 3, side - 2, 16, "bicubic"),
        crop(2, 0, side - 5, side, 13, "bilinear"),
        crop(6, 9, 7, 9, side, "bicubic"),
        ("flip", {}),
        ("brightness", dict(factor=0.6)),
        ("brightness", dict(factor=1.37)),
        ("contrast", dict(factor=0.55)),
        ("contrast", dict(factor=1.4)),
        ("saturation", dict(factor=0.3)),
        ("saturation", dict(factor=1.6)),
        ("hue", dict(factor=-0.33)),
        ("hue", dict(factor=0.07)),
        ("hue", dict(factor=0.5)),
        ("grayscale", {}),
        ("blur", dict(kernel=3, sigma=0.8)),
        ("blur", dict(kernel=5, sigma=1.7)),
        ("solarize", dict(threshold=128)),
        ("solarize", dict(threshold=77)),
        ("pipeline", dict(crop=crop(4, 2, 23, 26, side, "bicubic")[1], flip=True,
                          order=[3, 0, 2, 1], brightness=1.21, contrast=0.72, saturation=1.33,
                          hue=-0.08, grayscale=False, blur_kernel=3, blur_sigma=1.1,
                          solarize_threshold=None)),
        ("pipeline", dict(crop=crop(0, 3, 18, 24, side, "bilinear")[1], flip=False,
                          order=[1, 2, 0, 3], brightness=0.64, contrast=1.3, saturation=0.7,
                          hue=0.1, grayscale=True, blur_kernel=5, blur_sigma=None,
                          solarize_threshold=128)),
    ]
    return [dict(image=index, op=op, params=p) for op, p in out]


def main():
    torch.set_num_threads(1)
    images = make_images()
    doc = {
        "generator": "python/augment_fixtures.py",
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                     "pillow": PIL.__version__, "numpy": np.__version__},
        "images": [],
        "cases": [],
    }
    for index, (name, planes) in enumerate(images):
        c, h, w = planes.shape
        doc["images"].append(dict(name=name, dims=[c, h, w], hex=planes.tobytes().hex()))
        for case in cases_for(index, c, h):
            out = from_pil(apply_op(to_pil(planes), case["op"], case["params"]))
            case["dims"] = list(out.shape)
            case["hex"] = np.ascontiguousarray(out).tobytes().hex()
            doc["cases"].append(case)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, OUT)
    print(f"wrote {len(doc['cases'])} cases to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
