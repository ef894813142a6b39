"""The book's softmax regression and MLP "from scratch" (d2l, MXNet edition), one epoch of
Fashion-MNIST each, through the gradserve Python client against a running server, and the same
recipe in PyTorch in-process, alternating in one run. PyTorch runs with one thread and with one per
core, and the faster counts: on a small VM its threads can spin against each other (2 threads on
2 vCPUs took 0.6-1.9 s for an epoch that 1 thread runs in 0.14 s). Prints one JSON line per model:
{"model", "ours_s", "torch_s", "torch_threads", "torch_other_s", "requests_per_step", "ours_acc", "torch_acc"}.

Usage: /usr/bin/python3 bench/d2l_epoch.py URL [rounds]   (Debian's numpy and torch)
"""
import gzip
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'clients', 'python'))
import gradserve as mx  # noqa: E402
from gradserve import autograd, nd  # noqa: E402

DATA = '/usr/share/datasets/fashion-mnist'
BATCH = 256


def load(kind):
    with gzip.open(os.path.join(DATA, '%s-images-idx3-ubyte.gz' % kind)) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784).astype(np.float32) / 255
    with gzip.open(os.path.join(DATA, '%s-labels-idx1-ubyte.gz' % kind)) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.float32)
    return x, y


def batches(x, y, rng):
    idx = rng.permutation(len(x))
    for i in range(0, len(x), BATCH):
        j = idx[i:i + BATCH]
        yield x[j], y[j]


# -- the book's code, as written for MXNet (nd and autograd) ------------------------------------
def softmax(X):
    X_exp = X.exp()
    partition = X_exp.sum(axis=1, keepdims=True)
    return X_exp / partition


def cross_entropy(y_hat, y):
    return -nd.pick(y_hat, y).log()


def sgd(params, lr, batch_size):
    for param in params:
        param[:] = param - lr * param.grad / batch_size


def ours_epoch(model, x, y, rng):
    if model == 'softmax':
        W = nd.random.normal(scale=0.01, shape=(784, 10))
        b = nd.zeros(10)
        params = [W, b]

        def net(X):
            return softmax(nd.dot(X.reshape((-1, 784)), W) + b)
        lr = 0.1
    else:
        W1 = nd.random.normal(scale=0.01, shape=(784, 256))
        b1 = nd.zeros(256)
        W2 = nd.random.normal(scale=0.01, shape=(256, 10))
        b2 = nd.zeros(10)
        params = [W1, b1, W2, b2]

        def net(X):
            H = nd.relu(nd.dot(X.reshape((-1, 784)), W1) + b1)
            return softmax(nd.dot(H, W2) + b2)
        lr = 0.5
    for p in params:
        p.attach_grad()
    client = mx.get_client()
    nd.waitall()
    r0, steps = client.requests, 0
    t0 = time.perf_counter()
    train_l_sum, train_acc_sum, n = 0.0, 0.0, 0
    for Xb, yb in batches(x, y, rng):
        X, yy = nd.array(Xb), nd.array(yb)
        with autograd.record():
            y_hat = net(X)
            l = cross_entropy(y_hat, yy).sum()
        l.backward()
        sgd(params, lr, BATCH)
        train_l_sum += l.asscalar()
        train_acc_sum += (y_hat.argmax(axis=1) == yy).sum().asscalar()
        n += yy.size
        steps += 1
    return time.perf_counter() - t0, (client.requests - r0) / steps, train_acc_sum / n


# -- the same recipe in PyTorch, in-process --------------------------------------------------
def torch_epoch(model, x, y, rng, threads):
    import torch
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    if model == 'softmax':
        params = [(torch.randn(784, 10, generator=g) * 0.01).requires_grad_(), torch.zeros(10, requires_grad=True)]

        def net(X):
            e = (X.reshape(-1, 784) @ params[0] + params[1]).exp()
            return e / e.sum(dim=1, keepdim=True)
        lr = 0.1
    else:
        params = [(torch.randn(784, 256, generator=g) * 0.01).requires_grad_(), torch.zeros(256, requires_grad=True),
                  (torch.randn(256, 10, generator=g) * 0.01).requires_grad_(), torch.zeros(10, requires_grad=True)]

        def net(X):
            H = torch.relu(X.reshape(-1, 784) @ params[0] + params[1])
            e = (H @ params[2] + params[3]).exp()
            return e / e.sum(dim=1, keepdim=True)
        lr = 0.5
    t0 = time.perf_counter()
    acc, n = 0.0, 0
    for Xb, yb in batches(x, y, rng):
        X, yy = torch.from_numpy(Xb), torch.from_numpy(yb).long()
        y_hat = net(X)
        l = -y_hat.gather(1, yy.view(-1, 1)).log().sum()
        l.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad / BATCH
                p.grad.zero_()
        l.item()
        acc += (y_hat.argmax(dim=1) == yy).sum().item()
        n += len(yy)
    return time.perf_counter() - t0, acc / n


def main():
    mx.connect(sys.argv[1], seed=0)
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    x, y = load('train')
    cores = max(1, os.cpu_count() or 1)
    for model in ('softmax', 'mlp'):
        ours, theirs = [], {1: [], cores: []}
        for r in range(rounds):
            # PyTorch's OpenMP threads spin for a while after its last op: a pause before each
            # epoch keeps them from taking the CPU the next one (ours or theirs) needs.
            time.sleep(0.5)
            t, rps, acc = ours_epoch(model, x, y, np.random.RandomState(r))
            ours.append((t, rps, acc))
            for threads in theirs:
                time.sleep(0.5)
                theirs[threads].append(torch_epoch(model, x, y, np.random.RandomState(r), threads))
        best = min(ours)
        fastest = min(theirs, key=lambda th: min(theirs[th])[0])
        other = [th for th in theirs if th != fastest]
        print(json.dumps({'model': model, 'ours_s': best[0], 'requests_per_step': best[1], 'ours_acc': best[2],
                          'torch_s': min(theirs[fastest])[0], 'torch_acc': min(theirs[fastest])[1],
                          'torch_threads': fastest,
                          'torch_other_s': min(theirs[other[0]])[0] if other else None,
                          'torch_other_threads': other[0] if other else None}), flush=True)


if __name__ == '__main__':
    main()
