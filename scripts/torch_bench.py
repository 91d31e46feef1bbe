#!/usr/bin/env python3
"""PyTorch CPU peer for `hdfa train-bench --torch`: the same network as an hdfa
config (conv/relu/maxpool/shuffle/dense layers, batch size, SGD with momentum),
trained for a number of steps on the config's IDX images; prints one JSON line with
the training throughput in samples/s.

Run: python3 scripts/torch_bench.py --config configs/reference-cnn.toml --threads 2
"""
import argparse
import gzip
import json
import struct
import sys
import time
import tomllib

import numpy as np
import torch
import torch.nn as nn


def read_idx(path, limit):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    return arr[:limit] if limit else arr


class Shuffle(nn.Module):
    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def build(cfg):
    c, h, w = cfg["input"]
    layers = []
    flat = False
    for l in cfg["layers"]:
        t = l["type"]
        if t == "conv":
            k = l.get("k", 3)
            d = l.get("dilation", 1)
            pad = l.get("pad", d * (k // 2))
            s = l.get("stride", 1)
            layers.append(nn.Conv2d(c, l["out"], k, stride=s, padding=pad, dilation=d,
                                    groups=l.get("groups", 1)))
            h = (h + 2 * pad - d * (k - 1) - 1) // s + 1
            w = (w + 2 * pad - d * (k - 1) - 1) // s + 1
            c = l["out"]
        elif t == "relu":
            layers.append(nn.ReLU())
        elif t == "maxpool":
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        elif t == "shuffle":
            layers.append(Shuffle(l["groups"]))
        elif t in ("flatten", "dense"):
            if not flat:
                layers.append(nn.Flatten())
                flat = True
                c, h, w = c * h * w, 1, 1
            if t == "dense":
                layers.append(nn.Linear(c, l["out"]))
                c = l["out"]
        else:
            sys.exit(f"unsupported layer type {t!r}")
    return nn.Sequential(*layers)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    with open(a.config, "rb") as f:
        cfg = tomllib.load(f)
    torch.manual_seed(cfg["seed"])
    torch.set_num_threads(a.threads)
    batch = cfg["batch"]
    data = cfg["data"]
    if data["kind"] != "idx":
        sys.exit("torch_bench.py needs an IDX config")
    n = batch * (a.steps + 1)
    x = read_idx(data["train_images"], n).astype(np.float32) / 255.0
    y = read_idx(data["train_labels"], n).astype(np.int64)
    cin, hh, ww = cfg["input"]
    x = torch.from_numpy(x.reshape(-1, cin, hh, ww).copy())
    y = torch.from_numpy(y.copy())
    net = build(cfg)
    opt = torch.optim.SGD(net.parameters(), lr=cfg["eta"], momentum=cfg["alpha"])
    loss_fn = nn.CrossEntropyLoss()

    def step(i):
        xb, yb = x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]
        opt.zero_grad()
        loss = loss_fn(net(xb), yb)
        loss.backward()
        opt.step()

    step(0)  # warm-up
    t0 = time.perf_counter()
    for i in range(1, a.steps + 1):
        step(i)
    dt = time.perf_counter() - t0
    print(json.dumps({
        "samples_per_s": a.steps * batch / dt,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "steps": a.steps,
    }))


if __name__ == "__main__":
    main()
