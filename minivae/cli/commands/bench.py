"""Time one gradient evaluation of the IWAE bound (ms and examples/s), optionally beside PyTorch.

The default is Burda et al.'s one-stochastic-layer MNIST model: 784-200-200-50, tanh,
Bernoulli observations, batch 20, K = 50, float32. With ``--torch`` the same model, with the
same parameters and the same noise ε, is built in PyTorch and differentiated by its eager
autograd in the same process; rounds alternate between the two so that both see the same
machine load. PyTorch is a benchmark-only dependency (``pip install torch``), never needed at
run time or in the tests.
"""
import math
import statistics
import time

import numpy

from ... import backend
from ..options import parse_hidden
from ...model import IWAE


def add_arguments(p):
    from ...model import DTYPES
    p.add_argument("--x-dim", type=int, default=784)
    p.add_argument("--z-dim", type=int, default=50)
    p.add_argument("--hidden", default="200,200", help="hidden widths, comma separated")
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--k", type=int, default=50, help="importance samples K")
    p.add_argument("--dtype", default="float32", choices=DTYPES)
    p.add_argument("--repeats", type=int, default=50, help="gradient evaluations per round")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (the median is shown)")
    p.add_argument("--torch", action="store_true", help="also time PyTorch eager autograd")


def _timed(fn, repeats):
    backend.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    backend.synchronize()
    return (time.perf_counter() - start) / repeats


def torch_bound_and_backward(model, x, eps):
    """The same bound in PyTorch, differentiated by autograd: returns (step function, value)."""
    import torch

    dtype = getattr(torch, model.dtype)
    params = {n: torch.tensor(backend.to_numpy(p), dtype=dtype, requires_grad=True)
              for n, p in model.params.items()}
    xt = torch.tensor(backend.to_numpy(x), dtype=dtype)
    et = torch.tensor(backend.to_numpy(eps), dtype=dtype)
    n_hidden = len(model.hidden)
    log2pi = math.log(2 * math.pi)

    def bound():
        h = xt
        for i in range(n_hidden):
            h = torch.tanh(h @ params[f"encoder.{i}.W"] + params[f"encoder.{i}.b"])
        mean = h @ params["encoder.mean.W"] + params["encoder.mean.b"]
        logvar = h @ params["encoder.logvar.W"] + params["encoder.logvar.b"]
        z = mean + torch.exp(0.5 * logvar) * et                       # (K, B, d)
        h = z
        for i in range(n_hidden):
            h = torch.tanh(h @ params[f"decoder.{i}.W"] + params[f"decoder.{i}.b"])
        logits = h @ params["decoder.logits.W"] + params["decoder.logits.b"]
        log_px = (xt * logits - torch.nn.functional.softplus(logits)).sum(-1)
        log_pz = -0.5 * (z * z).sum(-1) - 0.5 * z.shape[-1] * log2pi
        log_qz = -0.5 * (et * et).sum(-1) - 0.5 * logvar.sum(-1) - 0.5 * z.shape[-1] * log2pi
        log_w = log_px + log_pz - log_qz
        return (torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])).mean()

    def step():
        for p in params.values():
            p.grad = None
        value = bound()
        value.backward()
        return value

    return step, float(step().detach())


def run(args):
    hidden = parse_hidden(args.hidden)
    if args.k < 1 or args.batch_size < 1 or args.repeats < 1 or args.rounds < 1:
        raise ValueError("--k, --batch-size, --repeats and --rounds must be >= 1")
    model = IWAE(args.x_dim, args.z_dim, hidden=hidden, likelihood="bernoulli",
                 dtype=args.dtype, seed=0)
    rng = numpy.random.default_rng(0)
    x = backend.asarray((rng.random((args.batch_size, args.x_dim)) < 0.3), dtype=args.dtype)
    eps = backend.asarray(rng.standard_normal((args.k, args.batch_size, args.z_dim)),
                          dtype=args.dtype)
    ours = lambda: model.bound_and_grads(x, args.k, eps=eps, check=False)   # noqa: E731
    ours_value = float(ours()[0])
    arch = "-".join(str(w) for w in (args.x_dim,) + hidden + (args.z_dim,))
    print(f"minivae bench: {arch} tanh Bernoulli, batch {args.batch_size}, K = {args.k}, "
          f"{args.dtype}, backend {backend.name}")
    contenders = {"minivae": ours}
    if args.torch:
        try:
            import torch
        except ImportError:
            raise ValueError("--torch needs PyTorch: pip install torch (CPU build)") from None
        torch_step, torch_value = torch_bound_and_backward(model, x, eps)
        contenders[f"pytorch {torch.__version__} eager"] = torch_step
        print(f"  same bound from both: minivae {ours_value:.6f}, pytorch {torch_value:.6f}")
        print(f"  threads: pytorch {torch.get_num_threads()}")
    times = {name: [] for name in contenders}
    for name, fn in contenders.items():       # warm-up
        _timed(fn, 3)
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            times[name].append(_timed(fn, args.repeats))
    print(f"  {'implementation':<28} {'ms / gradient':>14} {'examples / s':>14}")
    medians = {}
    for name, ts in times.items():
        medians[name] = statistics.median(ts)
        print(f"  {name:<28} {medians[name] * 1e3:14.2f} {args.batch_size / medians[name]:14.0f}")
    if args.torch:
        names = list(medians)
        print(f"  ratio pytorch / minivae time: {medians[names[1]] / medians[names[0]]:.2f} "
              f"(> 1 means minivae is faster)")
    return 0
