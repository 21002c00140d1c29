"""Golden fixture for mpcl's optimizers (crates/mpcl-trainer/src/optim.rs).

Runs a few steps of torch.optim.SGD and torch.optim.AdamW, and of LARS written here after the
SimCLR reference (TensorFlow's `LARSOptimizer`, re-expressed in torch ops), on small float64
parameters in two groups: group 0 follows a changing learning rate, group 1 keeps a fixed
one. The gradient at step k is that of ½‖p − tₖ‖² + ⅓Σp³ at the current parameters, so
it depends on the trajectory. Writes crates/mpcl-trainer/tests/fixtures/optim_reference.json.

Usage: python python/optim_reference.py [OUT]
"""

import json
import sys
from pathlib import Path

import torch

STEPS = 5
GROUP0_LRS = [0.1, 0.2, 0.3, 0.2, 0.1]
GROUP1_LR = 0.05
SHAPES = {"w": [3, 4], "b": [4], "p": [2, 3]}
GROUPS = [["w", "b"], ["p"]]

CASES = [
    {"name": "sgd", "kind": "sgd", "momentum": 0.9, "dampening": 0.1, "nesterov": False,
     "weight_decay": 0.01},
    {"name": "sgd_nesterov", "kind": "sgd", "momentum": 0.9, "dampening": 0.0,
     "nesterov": True, "weight_decay": 0.05},
    {"name": "sgd_plain", "kind": "sgd", "momentum": 0.0, "dampening": 0.0, "nesterov": False,
     "weight_decay": 0.0},
    {"name": "adamw", "kind": "adamw", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
     "weight_decay": 0.1},
    {"name": "lars", "kind": "lars", "momentum": 0.9, "trust": 0.001, "weight_decay": 0.01,
     "nesterov": False},
]


def lars_step(params, velocities, lr, case, excluded):
    """One step of the SimCLR reference's LARS: weight decay and the trust ratio for all but
    the excluded (1-D: biases and BN) parameters, velocity v ← m·v + lr·trust·g."""
    with torch.no_grad():
        for name, p in params.items():
            g = p.grad.clone()
            scaled = lr
            if name not in excluded:
                g += case["weight_decay"] * p
                w_norm, g_norm = p.norm(), g.norm()
                trust = 1.0
                if w_norm > 0 and g_norm > 0:
                    trust = float(case["trust"] * w_norm / g_norm)
                scaled = lr * trust
            v = velocities[name]
            v.mul_(case["momentum"]).add_(scaled * g)
            if case["nesterov"]:
                p.sub_(case["momentum"] * v + scaled * g)
            else:
                p.sub_(v)


def run(case, init, targets):
    params = {n: torch.tensor(v, dtype=torch.float64).view(SHAPES[n]).requires_grad_()
              for n, v in init.items()}
    groups = [{"params": [params[n] for n in names]} for names in GROUPS]
    groups[1]["lr"] = GROUP1_LR
    if case["kind"] == "sgd":
        opt = torch.optim.SGD(groups, lr=GROUP0_LRS[0], momentum=case["momentum"],
                              dampening=case["dampening"], nesterov=case["nesterov"],
                              weight_decay=case["weight_decay"])
    elif case["kind"] == "adamw":
        opt = torch.optim.AdamW(groups, lr=GROUP0_LRS[0],
                                betas=(case["beta1"], case["beta2"]), eps=case["eps"],
                                weight_decay=case["weight_decay"])
    else:
        opt = None
        velocities = {n: torch.zeros_like(p) for n, p in params.items()}
    for k in range(STEPS):
        for p in params.values():
            p.grad = None
        loss = 0
        for n, p in params.items():
            t = torch.tensor(targets[k][n], dtype=torch.float64).view(p.shape)
            loss = loss + 0.5 * (p - t).pow(2).sum() + p.pow(3).sum() / 3
        loss.backward()
        if opt is None:
            for names, lr in [(GROUPS[0], GROUP0_LRS[k]), (GROUPS[1], GROUP1_LR)]:
                lars_step({n: params[n] for n in names}, velocities, lr, case, {"b"})
        else:
            opt.param_groups[0]["lr"] = GROUP0_LRS[k]
            opt.step()
    return {n: p.detach().flatten().tolist() for n, p in params.items()}


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        Path(__file__).resolve().parent.parent
        / "crates/mpcl-trainer/tests/fixtures/optim_reference.json")
    gen = torch.Generator().manual_seed(9)

    def draw(shape):
        return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1).flatten().tolist()

    init = {n: draw(s) for n, s in SHAPES.items()}
    targets = [{n: draw(s) for n, s in SHAPES.items()} for _ in range(STEPS)]
    fixture = {
        "torch": torch.__version__,
        "shapes": SHAPES,
        "groups": GROUPS,
        "group0_lrs": GROUP0_LRS,
        "group1_lr": GROUP1_LR,
        "init": init,
        "targets": targets,
        "cases": [dict(case, final=run(case, init, targets)) for case in CASES],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(fixture, indent=1) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
