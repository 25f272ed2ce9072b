"""Streaming: models that answer while the input is still arriving, and the POS taggers they are shown with.

Three ways to label a sequence whose tokens arrive one per time step ``now = 0, 1, ..., T-1``:

- a **delayed RNN** (delay ``d``) is stepped once per arriving token: after token ``now`` it emits the output of
  token ``now - d`` and never changes it (:func:`stream_delayed`; after the last token it flushes the remaining
  ``d`` outputs by reading the ``d`` zero steps it appends anyway). ``d = 0`` is the causal network;
- a **bidirectional** network cannot step: in *restart mode* it is re-run on the whole prefix ``x[0..now]`` at
  every step (:func:`restart_outputs`), so its outputs for earlier tokens may change as the right context grows;
- the same bidirectional network on the finished sequence is its ordinary, final output.

The models come as a :class:`~drnn_demo.streaming_sets.ModelSet` (:mod:`drnn_demo.streaming_sets`: the shipped
POS taggers, the reversal and sine ladders; :mod:`drnn_demo.streaming_user`: a tagger trained on your data). The
incremental metrics of these outputs are in :mod:`drnn_demo.analysis.incremental`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence

from .analysis import incremental
from .checkpoints import PRETRAINED_DIR, library_versions
from .fileio import write_json_atomic
from .models import DelayedRNN, SequenceModel, StackedRNN
from .streaming_pos import encode_sentences, tag_ids
from .streaming_sets import (  # noqa: F401 (re-exported: the page and the tests read them here)
    TASK_DELAYS,
    TASKS,
    ModelSet,
    model_set,
    pos_model_set,
    task_model_set,
    task_test_sequences,
)
from .tasks.pos import sentences
from .timing import time_interleaved


def _check_delayed(model: SequenceModel) -> DelayedRNN:
    core = getattr(model, "core", None)
    if not isinstance(core, DelayedRNN) or core.block_sizes is not None or model.readout != "steps":
        raise ValueError("streaming needs a SequenceModel with a DelayedRNN core (no block_sizes, readout='steps')")
    return core


def _check_bidirectional(model: SequenceModel) -> StackedRNN:
    core = getattr(model, "core", None)
    if not isinstance(core, StackedRNN) or not core.bidirectional or model.readout != "steps":
        raise ValueError("restart mode needs a SequenceModel with a bidirectional StackedRNN core")
    return core


def _inputs(model: SequenceModel, x) -> torch.Tensor:
    """One sequence as the core's input vectors ``(T, D)``: token ids ``(T,)`` are embedded."""
    x = torch.as_tensor(x)
    if x.dim() == 2 and x.is_floating_point():
        return x.to(next(model.parameters()).dtype)
    if x.dim() == 1 and not x.is_floating_point() and model.embedding is not None:
        return model.embedding(x.long())
    raise ValueError(f"x must be one sequence: vectors (T, D) or, for a model with an embedding, ids (T,); "
                     f"got shape {tuple(x.shape)}")


class DelayedStream:
    r"""A delayed RNN stepped one arriving token at a time.

    ``push(x_now)`` runs one recurrent step, :math:`s_{now} = \mathrm{cell}(x_{now}, s_{now-1})`, and returns the
    output of token ``now - d`` (:math:`y_{now-d} = W s_{now} + b`), or None for the first ``d`` steps;
    ``finish()`` runs the ``d`` zero steps the delayed RNN appends and returns the outputs still due,
    ``(min(d, T), O)``.
    Together they give exactly ``model(x)`` (the fused kernel over the padded sequence), one step per token.
    """

    def __init__(self, model: SequenceModel):
        self.model, self.core = model, _check_delayed(model)
        self.state = None
        self.steps = 0

    @torch.no_grad()
    def _step(self, x_now: torch.Tensor) -> torch.Tensor:
        h, self.state = self.core.rnn(x_now.reshape(1, 1, -1), self.state)
        self.steps += 1
        return self.model.head(h[0, 0])

    def push(self, x_now) -> torch.Tensor | None:
        x_now = torch.as_tensor(x_now)
        if x_now.dim() == 0 and self.model.embedding is not None:
            x_now = self.model.embedding(x_now.long())
        y = self._step(x_now.to(self.model.head.weight.dtype))
        return y if self.steps > self.core.delay else None

    def finish(self) -> torch.Tensor:
        zero = self.model.head.weight.new_zeros(self.core.input_size)
        outs = [y for y in (self._step(zero) for _ in range(self.core.delay)) if self.steps > self.core.delay]
        return torch.stack(outs) if outs else self.model.head.weight.new_zeros(0, self.model.head.out_features)


def stream_delayed(model: SequenceModel, x) -> tuple[torch.Tensor, np.ndarray]:
    """``(outputs (T, O), shown_at (T,))``: the delayed model streamed over one sequence (:class:`DelayedStream`),
    and the step at which each output appeared: ``t + d``, or ``T - 1`` for the ``d`` outputs flushed at the end."""
    model.eval()
    with torch.no_grad():
        vectors = _inputs(model, x)
        stream = DelayedStream(model)
        outs = [y for y in (stream.push(v) for v in vectors) if y is not None]
        flushed = stream.finish()
    T = len(vectors)
    outputs = torch.cat([torch.stack(outs) if outs else flushed[:0], flushed])
    return outputs, np.minimum(np.arange(T) + stream.core.delay, T - 1)


@torch.no_grad()
def restart_outputs(model: SequenceModel, x) -> torch.Tensor:
    """``(T, T, O)``: ``out[now, t]`` = the bidirectional model's output for token ``t`` when re-run on the prefix
    ``x[0..now]`` (NaN for ``t > now``); ``out[T-1]`` is its ordinary output. All ``T`` prefixes run as one packed
    batch (no padding reaches the backward direction); :func:`restart_outputs_loop` is the obvious reference."""
    core = _check_bidirectional(model)
    model.eval()
    vectors = _inputs(model, x)
    T = len(vectors)
    h = pack_sequence([vectors[: now + 1] for now in range(T)], enforce_sorted=False)
    for layer in core.layers:
        h, _ = layer(h)
    padded, _ = pad_packed_sequence(h, batch_first=True, total_length=T)  # (T prefixes, T, 2H), zeros beyond
    out = model.head(padded)
    return out.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1)[..., None], float("nan"))


@torch.no_grad()
def restart_outputs_loop(model: SequenceModel, x) -> torch.Tensor:
    """Restart mode, one prefix at a time: ``model(x[None, :now+1])`` for ``now = 0 .. T-1`` (token ids are embedded
    first, as ``model`` does: the core and the head then run on each prefix of the vectors)."""
    _check_bidirectional(model)
    model.eval()
    vectors = _inputs(model, x)
    T = len(vectors)
    out = torch.full((T, T, model.head.out_features), float("nan"), dtype=vectors.dtype)
    for now in range(T):
        out[now, : now + 1] = model.head(model.core(vectors[None, : now + 1])[0])[0]
    return out


def restart_chart(outputs: torch.Tensor) -> np.ndarray:
    """The restart outputs ``(T, T, O)`` as a chart of argmax labels (``-1`` where not yet shown)."""
    labels = outputs.nan_to_num(0.0).argmax(-1).numpy()
    return np.where(np.isnan(outputs[..., 0].numpy()), incremental.NO_LABEL, labels)


# ---------------------------------------------------------------- one sequence, streamed three ways


@dataclass
class StreamView:
    """One sequence of ``T`` steps streamed by the three models (labels for classification, values for regression).

    ``delayed``/``causal``: ``(T,)`` outputs, ``delayed_at``/``causal_at``: the step each appears at (then fixed);
    ``restart``: ``(T, T)`` row ``now`` = the bidirectional network re-run on ``x[0..now]`` (``-1`` / NaN beyond
    ``now``); its last row is the bidirectional network's ordinary output. A model the set lacks gives None.
    """

    delay: int | None
    delayed: np.ndarray | None
    delayed_at: np.ndarray | None
    causal: np.ndarray | None
    causal_at: np.ndarray | None
    restart: np.ndarray | None

    @property
    def length(self) -> int:
        return len(self.delayed if self.delayed is not None else self.restart)

    def shown(self, now: int, which: str = "delayed") -> np.ndarray:
        """Mask ``(T,)`` of the outputs of ``which`` (delayed | causal | restart) visible at step ``now``."""
        at = {"delayed": self.delayed_at, "causal": self.causal_at, "restart": np.arange(self.length)}[which]
        return at <= now

    def flips(self, now: int) -> list[list[tuple[int, object]]]:
        """Per token ``t``, the restart labels it has shown up to step ``now`` as ``(step, label)`` at each change."""
        out = []
        for t in range(self.length if self.restart is not None else 0):
            changes = []
            for step in range(t, now + 1):
                value = self.restart[step, t]
                if not changes or changes[-1][1] != value:
                    changes.append((step, value))
            out.append(changes)
        return out


def _labels(outputs: torch.Tensor, regression: bool) -> np.ndarray:
    return outputs[..., 0].numpy() if regression else outputs.argmax(-1).numpy()


def stream_view(models: ModelSet, x, delay: int | None) -> StreamView:
    """The delayed model of ``delay``, the causal one and the bidirectional restart mode on one sequence; what the
    set lacks is None (the causal row too when the delayed model is the set's only one: it would repeat it)."""
    if models.delayed and delay not in models.delayed:
        raise ValueError(f"delay must be one of {sorted(models.delayed)}, got {delay!r}")
    regression = models.kind == "regression"

    def streamed(model):
        outputs, at = stream_delayed(model, x) if model is not None else (None, None)
        return (None if outputs is None else _labels(outputs, regression)), at

    delayed = streamed(models.delayed.get(delay))
    causal = streamed(models.delayed.get(0) if len(models.delayed) > 1 else None)
    chart = None
    if models.bidirectional is not None:
        restart = restart_outputs(models.bidirectional, x)
        chart = restart[..., 0].numpy() if regression else restart_chart(restart)
    return StreamView(delay, *delayed, *causal, chart)


# ---------------------------------------------------------------- over a test set


@torch.no_grad()
def full_outputs(model: SequenceModel, xs: list[torch.Tensor], batch_size: int = 256) -> list[torch.Tensor]:
    """``model`` on each whole sequence (equal-length batches, no padding): ``[(T_i, O)]``."""
    model.eval()
    out: list = [None] * len(xs)
    by_length: dict[int, list[int]] = {}
    for i, x in enumerate(xs):
        by_length.setdefault(len(x), []).append(i)
    for idx in by_length.values():
        for s in range(0, len(idx), batch_size):
            chunk = idx[s : s + batch_size]
            y = model(torch.stack([_inputs(model, xs[i]) for i in chunk]))
            for j, i in enumerate(chunk):
                out[i] = y[j]
    return out


def evaluate_streaming(models: ModelSet, xs: list[torch.Tensor], golds: list, lags=(0, 1, 2, 3, 4)) -> list[dict]:
    """One row per model over the test sequences ``xs`` with targets ``golds``:

    - classification: :func:`drnn_demo.analysis.incremental.summarize` (EO, CT, RC, the final accuracy, the
      accuracy at each lag) of each delayed model's streamed history (output ``t`` shown at ``t + d``, never
      changed: the full-sequence output, which :func:`stream_delayed` equals) and of the bidirectional restart mode;
    - regression: the MSE of the final outputs and of the restart outputs read at each lag.

    ``latency`` is the steps between a token's arrival and its first output (``d``; 0 for restart mode).
    """
    regression = models.kind == "regression"
    golds = [np.asarray(g, dtype=float if regression else np.int64).reshape(len(g)) for g in golds]
    rows = []
    for d, model in sorted(models.delayed.items()):
        outputs = full_outputs(model, xs)
        if regression:
            err = np.concatenate([(o[:, 0].numpy() - g) ** 2 for o, g in zip(outputs, golds, strict=True)])
            rows.append({"model": f"delayed d={d}", "delay": d, "latency": d, "mse": float(err.mean())})
        else:
            charts = [incremental.delayed_history(o.argmax(-1).numpy(), d) for o in outputs]
            rows.append({"model": f"delayed d={d}", "delay": d, "latency": d,
                         **incremental.summarize(charts, golds, lags)})
    restarts = [restart_outputs(models.bidirectional, x) for x in xs]
    if regression:
        row = {"model": "bidirectional, restart", "delay": None, "latency": 0}
        for lag in (*lags, None):
            err = []
            for r, g in zip(restarts, golds, strict=True):
                t = np.arange(len(g))
                step = t if lag is None else np.minimum(t + lag, len(g) - 1)
                err.append((r[len(g) - 1 if lag is None else step, t, 0].numpy() - g) ** 2)
            row["mse" if lag is None else f"mse_lag{lag}"] = float(np.concatenate(err).mean())
        rows.append(row)
    else:
        rows.append({"model": "bidirectional, restart", "delay": None, "latency": 0,
                     **incremental.summarize([restart_chart(r) for r in restarts], golds, lags)})
    return rows


def compute_per_token(models: ModelSet, xs: list[torch.Tensor], delay: int, repeats: int = 3) -> dict:
    """Wall-clock per arriving token, measured: the delayed model stepped once per token (:func:`stream_delayed`)
    against restart mode re-running the bidirectional model on every prefix (:func:`restart_outputs_loop`), the
    two timed interleaved on each sequence (:func:`drnn_demo.timing.time_interleaved`, medians of ``repeats``).

    Returns per sequence its length, the seconds per token of each and their ratio, the median ratio, and the
    recurrent cell steps each needs: ``T + d`` (delayed) against ``T (T + 1)`` (restart: both directions over
    every prefix).
    """
    delayed, bi = models.delayed[delay], models.bidirectional
    rows = []
    for x in xs:
        T = len(x)
        times = time_interleaved({"delayed": lambda x=x: stream_delayed(delayed, x),
                                  "restart": lambda x=x: restart_outputs_loop(bi, x)}, repeats=repeats, warmup=1)
        rows.append({"length": T, "delayed": times["delayed"] / T, "restart": times["restart"] / T,
                     "ratio": times["restart"] / times["delayed"], "delayed_cell_steps": T + delay,
                     "restart_cell_steps": T * (T + 1)})
    return {"delay": delay, "sequences": rows, "median_ratio": statistics.median(r["ratio"] for r in rows),
            "median_delayed_per_token": statistics.median(r["delayed"] for r in rows),
            "median_restart_per_token": statistics.median(r["restart"] for r in rows)}


# ---------------------------------------------------------------- the shipped measurements (results/streaming.json)

RESULTS_PATH = Path(__file__).resolve().parents[1] / "results" / "streaming.json"
COMMAND = "python -m drnn_demo.streaming"
TEST_SIZES = {"reversal": 500, "sine": 200}  # test sequences scored (POS: the whole EWT test file)
TIMED = 40  # sequences timed for the compute per token


def test_set(task: str, models: ModelSet) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    """The inputs and targets the metrics are measured on: the EWT test file (word vectors, tag ids) for POS, the
    first :data:`TEST_SIZES` test sequences of the shipped models otherwise."""
    if task == "pos":
        test = sentences("test")
        return (encode_sentences(models.taggers.encoder, models.taggers.vocab, test),
                [g.numpy() for g in tag_ids(models.taggers.vocab, test)])
    x, y = task_test_sequences(task, TEST_SIZES[task])
    return list(x), [g.reshape(len(g)).numpy() for g in y]


def measure(task: str, directory: Path = PRETRAINED_DIR, timed: int = TIMED, seed: int = 0) -> dict:
    """Everything the page shows below the stream for ``task``: :func:`evaluate_streaming` over the test set and
    :func:`compute_per_token` on ``timed`` of its sequences (chosen with ``seed``, at the largest delay)."""
    models = model_set(task, directory)
    xs, golds = test_set(task, models)
    start = time.perf_counter()
    rows = evaluate_streaming(models, xs, golds, lags=(0, 1, 2, 3, 4))
    seconds = time.perf_counter() - start
    pick = np.random.default_rng(seed).choice(len(xs), size=min(timed, len(xs)), replace=False)
    compute = compute_per_token(models, [xs[i] for i in sorted(pick)], max(models.delayed), repeats=5)
    return {"task": task, "rows": rows, "compute": compute, "models": models.names, "test": models.test,
            "kind": models.kind, "sequences": len(xs), "seconds": seconds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=COMMAND, description="Measure the Streaming page's incremental "
                                     "metrics, accuracy against latency and compute per token; write them as JSON.")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--out", default=str(RESULTS_PATH))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = {"command": " ".join([COMMAND, *(argv if argv is not None else [])]).strip(), "threads": args.threads,
           "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "versions": library_versions(),
           "tasks": {}}
    for task in args.tasks:
        print(f"== {task}", flush=True)
        out["tasks"][task] = measure(task)
        for row in out["tasks"][task]["rows"]:
            print("   ", {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
        print(f"    compute: median restart / delayed = {out['tasks'][task]['compute']['median_ratio']:.2f}x")
    write_json_atomic(Path(args.out), out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
