"""Golden fixture for mpcl's ResNets (crates/mpcl-trainer/src/resnet.rs): the names and shapes
of torchvision's resnet18 and resnet50 state_dict entries, without the classifier (fc.*), for
3-channel input. Writes crates/mpcl-trainer/tests/fixtures/resnet_names.json.

Usage: python python/resnet_names.py [OUT]
"""

import json
import sys
from pathlib import Path

import torchvision


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        Path(__file__).resolve().parent.parent
        / "crates/mpcl-trainer/tests/fixtures/resnet_names.json")
    fixture = {"torchvision": torchvision.__version__}
    for arch in ["resnet18", "resnet50"]:
        model = getattr(torchvision.models, arch)(weights=None)
        fixture[arch] = {name: list(t.shape) for name, t in model.state_dict().items()
                         if not name.startswith("fc.")}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(fixture, indent=0) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
