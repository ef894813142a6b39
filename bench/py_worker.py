"""The Python side of `npm run bench`: numpy and PyTorch timings, one JSON request per line on
stdin, one JSON answer per line on stdout, so the TypeScript driver can alternate our runs and
theirs in the same time window. Run by Debian's /usr/bin/python3 (python3-numpy, python3-torch).

Every timing answer is {"s": seconds per call} measured over `reps` calls after one warm-up.
"""
import json
import sys
import time

try:
    import numpy as np
except ImportError:  # the driver reports which package is missing
    np = None
try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None

state = {}


def blas():
    """The BLAS library this process loaded (numpy and torch both go through libblas.so.3, which
    Debian points at the netlib reference BLAS unless libopenblas0-pthread is installed)."""
    if np is not None:
        np.dot(np.ones((2, 2)), np.ones((2, 2)))
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if ".so" in line}
    except OSError:
        return None
    for lib in sorted(libs):
        if "openblas" in lib or "libmkl" in lib or "blis" in lib:
            return lib
    for lib in sorted(libs):
        if "libblas.so" in lib:
            return lib
    return None


def timed(fn, reps):
    fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def gemm(dtype, n, reps):
    key = ("gemm", dtype, n)
    if key not in state:
        rng = np.random.default_rng(1)
        a = rng.uniform(-1, 1, (n, n)).astype(dtype)
        b = rng.uniform(-1, 1, (n, n)).astype(dtype)
        state[key] = (a, b, np.empty((n, n), dtype))
    a, b, c = state[key]
    return timed(lambda: np.matmul(a, b, out=c), reps)


def elementwise(op, dtype, n, reps):
    key = ("elem", dtype, n)
    if key not in state:
        rng = np.random.default_rng(2)
        state[key] = (rng.uniform(-1, 1, n).astype(dtype), rng.uniform(-1, 1, n).astype(dtype), np.empty(n, dtype))
    a, b, c = state[key]
    if op == "add":
        return timed(lambda: np.add(a, b, out=c), reps)
    if op == "exp":
        return timed(lambda: np.exp(a, out=c), reps)
    if op == "sum":
        return timed(lambda: a.sum(), reps)
    raise ValueError(op)


def mlp(reps):
    """784-256-10 MLP, ReLU, softmax cross-entropy, batch 256: forward + backward."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 784, generator=g)
    y = torch.randint(0, 10, (256,), generator=g)
    w1 = (torch.randn(256, 784, generator=g) * 0.05).requires_grad_()
    b1 = torch.zeros(256, requires_grad=True)
    w2 = (torch.randn(10, 256, generator=g) * 0.05).requires_grad_()
    b2 = torch.zeros(10, requires_grad=True)

    def step():
        for p in (w1, b1, w2, b2):
            p.grad = None
        h = F.relu(F.linear(x, w1, b1))
        loss = F.cross_entropy(F.linear(h, w2, b2), y, reduction="sum")
        loss.backward()

    return timed(step, reps)


def lenet(reps):
    """The book's LeNet (MXNet edition: sigmoid, max pooling) on 1x28x28, batch 256, softmax
    cross-entropy: forward + backward, as one training step less the update."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (256,), generator=g)
    shapes = [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 256), (120,), (84, 120), (84,), (10, 84), (10,)]
    params = [(torch.randn(*s, generator=g) * 0.1).requires_grad_() for s in shapes]

    def step():
        for p in params:
            p.grad = None
        c1, b1, c2, b2, w3, b3, w4, b4, w5, b5 = params
        h = F.max_pool2d(torch.sigmoid(F.conv2d(x, c1, b1)), 2, 2)
        h = F.max_pool2d(torch.sigmoid(F.conv2d(h, c2, b2)), 2, 2)
        h = torch.sigmoid(F.linear(h.reshape(256, -1), w3, b3))
        h = torch.sigmoid(F.linear(h, w4, b4))
        loss = F.cross_entropy(F.linear(h, w5, b5), y, reduction="sum")
        loss.backward()

    return timed(step, reps)


def chain(n_ops, reps):
    """y = x * 1.0001 repeated n_ops times on a one-element tensor, then backward."""
    x = torch.ones(1, requires_grad=True)

    def step():
        x.grad = None
        y = x
        for _ in range(n_ops):
            y = y * 1.0001
        y.backward()

    return timed(step, reps)


def best_threads(run):
    """PyTorch's time with one thread and with two, the faster counting: on a 2-vCPU VM its two
    threads can spin against each other and run several times slower than one."""
    times = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        times[threads] = run()
    torch.set_num_threads(2)
    best = min(times, key=times.get)
    return {"s": times[best], "threads": best, "other_s": times[3 - best]}


def main():
    if torch is not None:
        torch.set_num_threads(2)
    for line in sys.stdin:
        req = json.loads(line)
        kind = req["kind"]
        try:
            if kind == "hello":
                ans = {
                    "numpy": np.__version__ if np is not None else None,
                    "torch": torch.__version__ if torch is not None else None,
                    "blas": blas(),
                }
            elif kind == "gemm":
                ans = {"s": gemm(req["dtype"], req["n"], req["reps"])}
            elif kind == "elementwise":
                ans = {"s": elementwise(req["op"], req["dtype"], req["n"], req["reps"])}
            elif kind == "mlp":
                ans = best_threads(lambda: mlp(req["reps"]))
            elif kind == "lenet":
                ans = best_threads(lambda: lenet(req["reps"]))
            elif kind == "chain":
                ans = best_threads(lambda: chain(req["ops"], req["reps"]))
            else:
                ans = {"error": "unknown request " + kind}
        except Exception as e:  # report, keep serving
            ans = {"error": repr(e)}
        sys.stdout.write(json.dumps(ans) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
