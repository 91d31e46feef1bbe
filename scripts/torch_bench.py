#!/usr/bin/env python3
"""PyTorch CPU peer for `hdfa train-bench --torch`: the same network as an hdfa
config, trained for a number of steps; prints one JSON line with the training
throughput in samples/s.

- CNN configs: conv/relu/maxpool/shuffle/dense layers, batch size, SGD with
  momentum, on the config's IDX images.
- Recurrent configs (network = "rnn"): embedding, one RNN/LSTM/GRU layer, decoder
  and cross-entropy over `--vocab` tokens, truncated BPTT over windows of `bptt`
  steps of `batch` streams (the state carried, detached), Adam. A sample is one
  predicted token (batch x bptt per step). The tokens are random: the speed of a
  dense model does not depend on them.

Run: python3 scripts/torch_bench.py --config configs/reference-cnn.toml --threads 2
     python3 scripts/torch_bench.py --config configs/austen-char-lstm.toml --threads 1 --vocab 82
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


def report(step, steps, per_step, sample):
    """Time `steps` calls of step(i) after one warm-up call; print the JSON line."""
    step(0)
    t0 = time.perf_counter()
    for i in range(1, steps + 1):
        step(i)
    dt = time.perf_counter() - t0
    print(json.dumps({
        "samples_per_s": steps * per_step / dt,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "steps": steps,
        "sample": sample,
    }))


def rnn_bench(cfg, a):
    if not a.vocab:
        sys.exit("a recurrent config needs --vocab (the corpus vocabulary size)")
    v, e, h = a.vocab, cfg["embed"], cfg["hidden"]
    batch, t = cfg["batch"], cfg["bptt"]
    cell = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cfg["cell"]]

    class Lm(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(v, e)
            self.cell = cell(e, h)
            self.dec = nn.Linear(h, v)

        def forward(self, x, state):
            out, state = self.cell(self.emb(x), state)
            return self.dec(out), state

    net = Lm()
    opt = torch.optim.Adam(net.parameters(), lr=cfg["eta"])
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(cfg["seed"])
    data = torch.randint(0, v, (t * (a.steps + 1) + 1, batch), generator=g)
    state = None

    def detach(s):
        if s is None:
            return None
        return tuple(x.detach() for x in s) if isinstance(s, tuple) else s.detach()

    def step(i):
        nonlocal state
        x, y = data[i * t:(i + 1) * t], data[i * t + 1:(i + 1) * t + 1]
        state = detach(state)
        opt.zero_grad()
        z, state = net(x, state)
        loss = loss_fn(z.reshape(-1, v), y.reshape(-1))
        loss.backward()
        opt.step()

    report(step, a.steps, batch * t, "token")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--vocab", type=int, default=0,
                    help="vocabulary size (recurrent configs only)")
    a = ap.parse_args()
    with open(a.config, "rb") as f:
        cfg = tomllib.load(f)
    torch.manual_seed(cfg["seed"])
    torch.set_num_threads(a.threads)
    if cfg.get("network") == "rnn":
        return rnn_bench(cfg, a)
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

    report(step, a.steps, batch, "image")


if __name__ == "__main__":
    main()
