"""Time one gradient of the IWAE bound beside its matrix-product floor (and PyTorch and JAX).

The default is Burda et al.'s one-stochastic-layer MNIST model: 784-200-200-50, tanh,
Bernoulli observations, batch 20, K = 50, float32. ``--peers`` adds PyTorch eager,
torch.compile and jax.jit(value_and_grad) (each if installed: pip install torch jax), all on
the same parameters, data and noise ε, in one process with interleaved rounds; every bound is
printed so you can see they agree. ``--against DIR`` also times the minivae of another checkout
(e.g. before a change). The thread count (BLAS, PyTorch and XLA alike) is --threads, else
$MINIVAE_THREADS, else minivae's default of one. See docs/speed.md.

Examples:
  minivae bench --peers                       # one thread, wall clock
  taskset -c 1 minivae bench --peers          # pinned to one core: the stable figures
  minivae bench --peers --threads 2 --k 5     # two threads, the default training's K
  minivae bench --against ../old-checkout --clock cpu
"""
from ..options import hidden_widths, positive_int


def add_arguments(p):
    p.add_argument("--x-dim", type=positive_int, default=784,
                   help="data dimension D (default: 784)")
    p.add_argument("--z-dim", type=positive_int, default=50,
                   help="latent dimension d (default: 50)")
    p.add_argument("--hidden", type=hidden_widths, default=(200, 200), metavar="W1,W2,...",
                   help="hidden widths (default: 200,200)")
    p.add_argument("--batch-size", type=positive_int, default=20, help="examples B (default: 20)")
    p.add_argument("--k", type=positive_int, default=50, help="importance samples K (default: 50)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads of BLAS, PyTorch and XLA (default: $MINIVAE_THREADS, else 1)")
    p.add_argument("--peers", action="store_true",
                   help="also time PyTorch eager, torch.compile and jax.jit, if installed")
    p.add_argument("--against", action="append", default=[], metavar="DIR",
                   help="also time the minivae package found in DIR (repeatable)")
    p.add_argument("--repeats", type=positive_int, default=50, help="gradients per timed round")
    p.add_argument("--rounds", type=positive_int, default=5,
                   help="interleaved rounds (median shown)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: elapsed time; cpu: CPU time of the process, which leaves out "
                   "waiting for a core on a busy machine (default: wall)")


def run(args):
    from ... import benchmarks, threads
    n = threads.choose(args.threads)
    if args.peers:
        benchmarks.set_peer_threads(n)
    problem = benchmarks.make_problem(args.x_dim, args.z_dim, args.hidden, args.batch_size,
                                      args.k, args.dtype)
    against = [(d, benchmarks.load_checkout(d, f"minivae_against_{i}"))
               for i, d in enumerate(args.against)]
    with threads.limit(n):
        print(f"minivae bench: {problem.describe()}")
        print(f"  threads: {n} ({threads.source(args.threads)}); minivae's step: "
              f"{threads.describe(n)}; {threads.blas_info()}; {args.clock} clock")
        contenders = benchmarks.peer_contenders(problem, args.peers, against)
        medians = benchmarks.time_interleaved({k: v[0] for k, v in contenders.items()},
                                              args.repeats, args.rounds, clock=args.clock,
                                              settle=benchmarks.settle_seconds(n))
        benchmarks.report(problem, contenders, medians)
    return 0
