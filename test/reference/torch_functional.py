"""PyTorch's answers for test/http/functional.test.ts: the same def source, run with torch.autograd.functional.

Reads one JSON case from stdin: {source, inputs, v, tangents, hv}; writes the transforms' results as
JSON. The source uses the names programs use (nd.sin, nd.dot, x.sum()); a namespace maps them to
torch, so one text is the function for both.
"""
import json
import sys
import types

import torch
from torch.autograd import functional as AF

nd = types.SimpleNamespace(
    sin=torch.sin, cos=torch.cos, tanh=torch.tanh, exp=torch.exp, sigmoid=torch.sigmoid,
    log=torch.log, sqrt=torch.sqrt, dot=torch.matmul, square=torch.square, transpose=lambda a: a.T,
)


def tensor(data, shape):
    return torch.tensor(data, dtype=torch.float64).reshape(shape)


def flat(t):
    if isinstance(t, (tuple, list)):
        return [flat(x) for x in t]
    return {"shape": list(t.shape), "data": t.detach().reshape(-1).tolist()}


case = json.load(sys.stdin)
scope = {"nd": nd}
exec(case["source"], scope)
f, g = scope["f"], scope["g"]
xs = tuple(tensor(d, s) for d, s in case["inputs"])
out = f(*xs)
outs = out if isinstance(out, tuple) else (out,)
v = tuple(tensor(d, o.shape) for d, o in zip(case["v"], outs))
tangents = tuple(tensor(d, x.shape) for d, x in zip(case["tangents"], xs))
hv = tuple(tensor(d, x.shape) for d, x in zip(case["hv"], xs))
vj = AF.vjp(f, xs, v if isinstance(out, tuple) else v[0])[1]
jv = AF.jvp(f, xs, tangents)[1]
J = AF.jacobian(f, xs)
H = AF.hessian(g, xs)
hvp = AF.hvp(g, xs, hv)[1]
json.dump({"vjp": flat(vj), "jvp": flat(jv), "jacobian": flat(J), "hessian": flat(H), "hvp": flat(hvp), "g": g(*xs).item()}, sys.stdout)
