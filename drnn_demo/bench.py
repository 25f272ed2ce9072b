"""Benchmarks as ratios measured side by side: ``python -m drnn_demo.bench [--json out.json]``.

This machine is shared and noisy, so absolute times mean little. Each comparison builds its
cases, warms every case up, then times them interleaved (A, B, C, A, B, C, ...) and reports the
median of each and its ratio to the comparison's baseline (the first case). Every comparison is
measured at each thread count of ``--threads`` (default: torch's default and 1), reported side
by side: torch's fused kernels parallelise over threads, so a ratio can hold on one thread and
not on two.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .equivalence import stacked_to_delayed
from .models import DelayedRNN, StackedRNN, kernels
from .timing import time_interleaved


@dataclass
class Comparison:
    """Cases timed together; ``build()`` returns ``{name: zero-argument callable}``, baseline first."""

    name: str
    build: Callable[[], dict[str, Callable[[], object]]]
    expectation: str


def _inference(module: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    module.eval()

    def run():
        with torch.inference_mode():
            return module(x)

    return run


def _training_step(module: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    """Forward + backward of ``output.sum()``, gradients cleared each time."""
    module.train()

    def run():
        module.zero_grad(set_to_none=True)
        output = module(x)[0]
        output.sum().backward()

    return run


def _torch_ops(run: Callable[[], object]) -> Callable[[], object]:
    """``run`` with the LRN/SRU recurrences on their torch-op fallback instead of the compiled kernels."""

    def fallback():
        with kernels.use_kernels(False):
            return run()

    return fallback


def delayed_vs_lstm() -> dict:
    torch.manual_seed(0)
    x = torch.randn(100, 64, 128)
    return {
        "nn.LSTM (H=256)": _training_step(nn.LSTM(128, 256), x),
        "DelayedRNN lstm (H=256, d=10)": _training_step(DelayedRNN(128, 256, delay=10, cell="lstm"), x),
    }


def converted_vs_stacked() -> dict:
    torch.manual_seed(0)
    stacked = StackedRNN(64, [128, 128, 128], cell="lstm")
    x = torch.randn(100, 64, 64)
    return {
        "StackedRNN lstm 3x128": _inference(stacked, x),
        "stacked_to_delayed (H=384, d=2)": _inference(stacked_to_delayed(stacked), x),
    }


def delayed_vs_bidirectional() -> dict:
    torch.manual_seed(0)
    x = torch.randn(180, 128, 64)
    return {
        "bidirectional LSTM (H=256 per direction)": _inference(nn.LSTM(64, 256, bidirectional=True), x),
        "DelayedRNN lstm (H=256, d=10)": _inference(DelayedRNN(64, 256, delay=10, cell="lstm"), x),
    }


def sru_training() -> dict:
    """SRU's training step against torch's fused LSTM and the ``sru`` package's own CPU training path."""
    import warnings

    from .models import SRU

    torch.manual_seed(0)
    x = torch.randn(256, 32, 256)
    model = SRU(256, 256, num_layers=1)
    cases = {
        "nn.LSTM (H=256)": _training_step(nn.LSTM(256, 256), x),
        "drnn_demo SRU (1 layer, H=256)": _training_step(model, x),
        "drnn_demo SRU, torch-op fallback": _torch_ops(_training_step(model, x)),
    }
    try:
        with warnings.catch_warnings():  # it warns about CUDA and about training on the CPU
            warnings.simplefilter("ignore")
            import sru

            reference = sru.SRU(256, 256, num_layers=1)
            step = _training_step(reference, x)

        def quiet_step():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                step()

        cases["sru 2.6 package (1 layer, H=256)"] = quiet_step
    except Exception as err:  # not installed, or no compiler for its C++ extension
        print(f"  note: the sru package is not importable ({type(err).__name__}: {err}); its case is skipped")
    return cases


def lrn_training() -> dict:
    """LRN's training step (projection + custom-Function recurrence) against torch's fused LSTM."""
    from .models import LRN

    torch.manual_seed(0)
    x = torch.randn(256, 32, 256)
    model = LRN(256, 256)
    return {
        "nn.LSTM (H=256)": _training_step(nn.LSTM(256, 256), x),
        "drnn_demo LRN (1 layer, H=256, tanh)": _training_step(model, x),
        "drnn_demo LRN, torch-op fallback": _torch_ops(_training_step(model, x)),
    }


def lrn_forward() -> dict:
    """LRN's inference forward against its own input projection ``W x + b`` alone."""
    from .models import LRN

    torch.manual_seed(0)
    x = torch.randn(256, 32, 256)
    lrn = LRN(256, 256).eval()

    def projection():
        with torch.inference_mode():
            return lrn.projection(x)

    return {
        "input projection W x + b (3H x D matmul)": projection,
        "LRN forward (tanh)": _inference(lrn, x),
        "LRN forward (identity)": _inference(LRN(256, 256, activation="identity"), x),
        "LRN forward (tanh), torch-op fallback": _torch_ops(_inference(lrn, x)),
    }


def paper_runtime() -> dict:
    """The runtime experiment's small grid (drnn_demo.experiments.runtime), bidirectional LSTM first."""
    from .experiments import runtime

    cells = sorted(runtime.cells("small"), key=lambda c: c["id"] != "bidirectional")
    torch.manual_seed(0)
    first = cells[0]
    x = torch.randn(first["batch"], first["length"], first["features"])
    cpu = torch.device("cpu")
    return {f"{c['id']} (H={c['hidden']})": _inference(runtime.build(c["family"], c["hidden"], c["delay"],
                                                                      c["features"], cpu), x) for c in cells}


COMPARISONS: list[Comparison] = [
    Comparison("delayed_vs_lstm", delayed_vs_lstm,
               "training step, B=64 T=100 D=128: a delayed LSTM costs about one nn.LSTM (ratio ~1.1 = (T+d)/T)"),
    Comparison("converted_vs_stacked", converted_vs_stacked,
               "inference, B=64 T=100: one wide delayed layer vs three stacked layers of the same total size"),
    Comparison("delayed_vs_bidirectional", delayed_vs_bidirectional,
               "inference, B=128 T=180 d=10: the delayed LSTM should cost around half a bidirectional one"),
    Comparison("sru_training", sru_training,
               "training step, B=32 T=256 D=H=256: SRU <= 0.5 x nn.LSTM (at every thread count), and <= 0.33 x "
               "the sru package's CPU path "
               "(divide the two ratios)"),
    Comparison("lrn_training", lrn_training,
               "training step, B=32 T=256 D=H=256: LRN <= 0.5 x nn.LSTM (at every thread count)"),
    Comparison("paper_runtime", paper_runtime,
               "inference, B=64 T=100 D=64: delayed LSTMs (H=128) against bidirectional and stacked LSTMs at equal "
               "hidden size and at equal parameter count (the paper: equal or faster than bidirectional)"),
    Comparison("lrn_forward", lrn_forward,
               "inference, B=32 T=256 D=H=256: LRN forward <= 1.5 x its own input-projection matmul"),
]


def measure(comparison: Comparison, repeats: int = 7, warmup: int = 2, threads: list[int] | None = None) -> list[dict]:
    """Rows ``{comparison, case, threads, median_ms, ratio}``: the cases built once, then timed
    (interleaved) at each thread count in turn; ``ratio`` is to the first case at the same count."""
    threads = threads or [torch.get_num_threads()]
    cases, previous, rows = comparison.build(), torch.get_num_threads(), []
    try:
        for n in threads:
            torch.set_num_threads(n)
            medians = time_interleaved(cases, repeats, warmup)
            baseline = next(iter(medians.values()))
            rows += [{"comparison": comparison.name, "case": name, "threads": n, "median_ms": 1e3 * m,
                      "ratio": m / baseline} for name, m in medians.items()]
    finally:
        torch.set_num_threads(previous)
    return rows


def format_table(rows: list[dict]) -> str:
    """One line per case, one ``ms  ratio`` column pair per thread count, side by side."""
    threads = list(dict.fromkeys(r.get("threads", 0) for r in rows))
    cells = {(r["comparison"], r["case"], r.get("threads", 0)): r for r in rows}
    keys = list(dict.fromkeys((r["comparison"], r["case"]) for r in rows))
    width = max(len(case) for _, case in keys)
    label = lambda n: (f"{n} thread{'s' if n != 1 else ''} ms" if n else "median ms")  # noqa: E731
    lines = [f"{'comparison':<26} {'case':<{width}}" + "".join(f" | {label(n):>13} {'ratio':>6}" for n in threads)]
    for comparison, case in keys:
        line = f"{comparison:<26} {case:<{width}}"
        for n in threads:
            r = cells.get((comparison, case, n))
            line += f" | {r['median_ms']:>13.2f} {r['ratio']:>6.2f}" if r else f" | {'-':>13} {'-':>6}"
        lines.append(line)
    return "\n".join(lines)


def thread_counts(values: list[int] | None) -> list[int]:
    """The thread counts to measure: ``values`` without repeats, or torch's default and 1."""
    counts = list(dict.fromkeys(values or [torch.get_num_threads(), 1]))
    if any(n < 1 for n in counts):
        raise ValueError(f"--threads: thread counts must be >= 1, got {counts}")
    return counts


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["ui"]:  # the UI benchmark: python -m drnn_demo.bench ui --help
        from .bench_ui import main as ui_main

        return ui_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m drnn_demo.bench", description=__doc__.splitlines()[0],
                                     epilog="python -m drnn_demo.bench ui [--help]: the UI latency benchmark")
    parser.add_argument("--only", nargs="*", help="run only comparisons whose name contains one of these")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per case (median reported)")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="torch thread counts, measured side by side (default: torch's default, then 1)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--list", action="store_true", help="list the comparisons and exit")
    args = parser.parse_args(argv)
    chosen = [c for c in COMPARISONS if not args.only or any(s in c.name for s in args.only)]
    if args.list:
        for c in chosen:
            print(f"{c.name}: {c.expectation}")
        return 0
    try:
        threads = thread_counts(args.threads)
    except ValueError as err:
        parser.error(str(err))
    status = kernels.status()
    how = "compiled kernels" if status["available"] else f"torch ops ({status['error']})"
    print(f"# LRN/SRU recurrences: {how}; threads: {', '.join(map(str, threads))}", flush=True)
    rows = []
    for comparison in chosen:
        print(f"# {comparison.name}: {comparison.expectation}", flush=True)
        rows += measure(comparison, repeats=args.repeats, threads=threads)
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": threads, "kernels": status["available"],
                       "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
