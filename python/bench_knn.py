"""kNN classification with PyTorch mm + topk: the reference of `cargo xtask bench knn`.

The same workload as crates/mpcl-eval/benches/knn.rs: unit-norm Gaussian features drawn from
libtorch's generator seeded with 0 (train, test, then labels), k = 200, votes weighted by
exp(s / 0.1), test rows in blocks of 512, top-1 and top-5 accuracy. Prints one JSON object
per case with the median seconds of the timed repetitions.
"""

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def knn(train, train_y, test, test_y, classes, k=200, t=0.1, block=512):
    """Top-1 and top-5 accuracy of the similarity-weighted kNN vote."""
    train = F.normalize(train, dim=1)
    test = F.normalize(test, dim=1)
    scores = []
    for start in range(0, test.shape[0], block):
        sim = test[start : start + block] @ train.T
        top, idx = sim.topk(k, dim=1)
        votes = train_y[idx]
        s = torch.zeros(sim.shape[0], classes).scatter_add_(1, votes, (top / t).exp())
        scores.append(s)
    best = torch.cat(scores).topk(5, dim=1).indices
    hit = best == test_y[:, None]
    return hit[:, 0].float().mean().item(), hit.any(1).float().mean().item()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--case", action="append", required=True, help="NxMxD")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for case in args.case:
        n, m, d = (int(v) for v in case.split("x"))
        torch.manual_seed(0)
        train = F.normalize(torch.randn(n, d), dim=1)
        test = F.normalize(torch.randn(m, d), dim=1)
        train_y = torch.randint(10, (n,))
        test_y = torch.randint(10, (m,))
        print(
            f"knn {case}, {args.threads} threads: train[0, 0] = {train[0, 0].item():.6f}, "
            f"Σ labels = {train_y.sum().item()}",
            file=sys.stderr,
        )
        with torch.no_grad():
            knn(train, train_y, test, test_y, 10)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                knn(train, train_y, test, test_y, 10)
                times.append(time.perf_counter() - start)
        print(json.dumps({"case": case, "seconds": statistics.median(times)}), flush=True)


if __name__ == "__main__":
    main()
