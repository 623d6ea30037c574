"""The ``minicon`` command line (also ``python -m minicon``).

Each subcommand is one function taking the parsed arguments; user mistakes
end as one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import platform
import sys

from . import __version__, backend


class UserError(Exception):
    """A mistake the user can fix; printed as one line."""


def _cmd_info(args) -> int:
    import numpy

    print(f"minicon {__version__}")
    print(f"python  {platform.python_version()} ({platform.machine()})")
    print(f"numpy   {numpy.__version__}")
    ok, why = backend.cupy_available()
    if ok:
        import cupy

        print(f"cupy    {cupy.__version__} (GPU available)")
    else:
        print(f"cupy    unavailable: {why}")
    print(f"backend {backend.get_backend()} (MINICON_BACKEND or --backend)")
    return 0


def _selftest_cases():
    """(name, fn, input shapes) for every primitive op, inputs kept away from kinks."""
    import minicon as mc

    return [
        ("add (broadcast)", lambda a, b: a + b, [(3, 4), (4,)]),
        ("sub", lambda a, b: a - b, [(3, 1), (1, 4)]),
        ("mul", lambda a, b: a * b, [(2, 3), (2, 3)]),
        ("div", lambda a, b: a / (b * b + 1.0), [(2, 3), (3,)]),
        ("neg", lambda a: -a, [(5,)]),
        ("pow", lambda a: (a * a + 1.0) ** 1.5, [(4,)]),
        ("matmul (batched)", lambda a, b: a @ b, [(2, 3, 4), (4, 2)]),
        ("exp", mc.exp, [(3, 3)]),
        ("log", lambda a: (a * a + 1.0).log(), [(3, 3)]),
        ("sqrt", lambda a: (a * a + 1.0).sqrt(), [(3, 3)]),
        ("abs", lambda a: (a + 10.0).abs(), [(3, 3)]),
        ("clip", lambda a: (a * 0.1).clip(-10.0, 10.0), [(3, 3)]),
        ("relu", lambda a: (a + 10.0).relu(), [(3, 3)]),
        ("sigmoid", mc.sigmoid, [(3, 3)]),
        ("tanh", mc.tanh, [(3, 3)]),
        ("sum", lambda a: a.sum(axis=1), [(3, 4)]),
        ("mean", lambda a: a.mean(axis=(0, 2), keepdims=True), [(2, 3, 2)]),
        ("max", lambda a: a.max(axis=0), [(3, 4)]),
        ("reshape", lambda a: a.reshape(4, 3), [(2, 6)]),
        ("permute", lambda a: a.permute(2, 0, 1), [(2, 3, 2)]),
        ("getitem", lambda a: a[[0, 2, 0], 1:], [(3, 4)]),
        ("concatenate", lambda a, b: mc.concatenate([a, b], axis=1), [(2, 3), (2, 2)]),
        ("stack", lambda a, b: mc.stack([a, b], axis=1), [(2, 3), (2, 3)]),
        ("softmax", lambda a: a.softmax(axis=1), [(3, 4)]),
        ("log_softmax", lambda a: a.log_softmax(axis=0), [(3, 4)]),
    ]


def _cmd_selftest(args) -> int:
    """Gradient-check every primitive op in float64 and print a table."""
    import minicon as mc
    from tqdm import tqdm

    mc.manual_seed(args.seed)
    rows, failed = [], 0
    for name, fn, shapes in tqdm(_selftest_cases(), desc="gradcheck", unit="op", leave=False):
        inputs = [mc.Tensor(mc.backend.host_rng().standard_normal(s), requires_grad=True) for s in shapes]
        try:
            mc.gradcheck(fn, *inputs)
            rows.append((name, "ok"))
        except mc.GradcheckError as exc:
            rows.append((name, f"FAILED: {exc}"))
            failed += 1
    width = max(len(n) for n, _ in rows)
    print(f"{'op'.ljust(width)}  float64 gradcheck vs central differences")
    for name, result in rows:
        print(f"{name.ljust(width)}  {result}")
    print(f"{len(rows) - failed} passed, {failed} failed on backend {mc.get_backend()}")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minicon",
        description="Contrastive learning from scratch in NumPy (and CuPy).",
    )
    parser.add_argument("--version", action="version", version=f"minicon {__version__}")
    parser.add_argument(
        "--backend", choices=backend.BACKENDS, default=None,
        help="array backend (default: MINICON_BACKEND or numpy)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("info", help="show versions and which backends work here")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("selftest", help="gradient-check every op against finite differences")
    p.add_argument("--seed", type=int, default=0, help="seed for the random inputs")
    p.set_defaults(func=_cmd_selftest)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.backend:
            backend.set_backend(args.backend)
        return args.func(args)
    except (UserError, RuntimeError, ValueError, FileNotFoundError) as exc:
        print(f"minicon: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minicon: interrupted", file=sys.stderr)
        return 130
