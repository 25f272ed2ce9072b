"""The small POS taggers of ``pretrained/`` that the Streaming page runs: delays 0..4 and a bidirectional one.

Each tagger is the paper's word + character tagger (:class:`~drnn_demo.models.pos_tagger.POSTagger`) split in two:

.. math::
    e_t = [\\,E_w[w_t]\\,;\\ \\mathrm{BiLSTM}_c(c_{t,1..m})\\,] \\in \\mathbb{R}^{128},\\qquad
    \\hat y = W\\,\\mathrm{RNN}(e_1 .. e_L) + b

- one **word encoder** ``e`` (``pretrained/pos_encoder.*``), shared by all six: the word embedding (64) and the
  character BiLSTM (2 x 32) of a bidirectional tagger trained end to end (:func:`drnn_demo.recipes.pos.train_pos`,
  stage 1), then frozen. It reads each word on its own, so it looks at no other word;
- one **sentence model** per delay (``pretrained/pos_delayed_d{d}.*``) and a bidirectional one
  (``pretrained/pos_bidirectional.*``): a :class:`~drnn_demo.models.SequenceModel` (a ``DelayedRNN`` LSTM or a
  bidirectional LSTM, hidden 64, and a linear head) trained from scratch on the frozen word vectors (stage 2),
  all six the same way, so the comparison between them is fair. These are ordinary checkpoints
  (:func:`~drnn_demo.checkpoints.save_checkpoint`), loaded with :func:`~drnn_demo.checkpoints.load_checkpoint`.

Sharing the encoder keeps the six files small (the word embedding is most of the weights); every weight is stored
in float16 and every accuracy on a card is measured with those rounded weights. Stage 2 batches sentences of
equal length only, so no padding ever reaches the bidirectional network's backward direction.

Data: UD English EWT as shipped (train split to train, dev to select, test to report; :mod:`drnn_demo.tasks.pos`).
The vocabulary is rebuilt from the shipped train file (words seen at least :data:`MIN_COUNT` times), never read
from a card: the card only carries its sizes and a hash, checked on loading.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from .checkpoints import (
    PRETRAINED_DIR,
    CheckpointError,
    _atomic_write,
    library_versions,
    load_checkpoint,
    safetensors_header,
    save_checkpoint,
)
from .fileio import JSONFileError, jsonable, read_json
from .loop import fit
from .models import SequenceModel
from .models.pos_tagger import POSTagger
from .tasks.pos import Vocabulary, sentences

ENCODER_NAME = "pos_encoder"
DELAYS = (0, 1, 2, 3, 4)
SOURCE = "ewt"
MIN_COUNT = 5
ENCODER = dict(word_dim=64, char_dim=16, char_hidden=32)
HIDDEN = 64
# Stage 1 (the encoder's end-to-end bidirectional tagger) and stage 2 (each sentence model) budgets.
STAGE1 = dict(epochs=8, batch_size=32, lr=3e-3, patience=2)
STAGE2 = dict(epochs=20, batch_size=32, lr=3e-3, patience=3)
MAX_ENCODER_CARD_BYTES = 2**20


def tagger_names() -> list[str]:
    """The sentence models' checkpoint names: ``pos_delayed_d0 .. pos_delayed_d4``, ``pos_bidirectional``."""
    return [f"pos_delayed_d{d}" for d in DELAYS] + ["pos_bidirectional"]


def sentence_model_config(name: str, features: int, tags: int) -> dict:
    """``SequenceModel`` keywords of the sentence model ``name`` on ``features``-wide word vectors."""
    if name == "pos_bidirectional":
        core, args = "bidirectional", {"hidden_sizes": [HIDDEN], "cell": "lstm"}
    elif name.startswith("pos_delayed_d") and name[len("pos_delayed_d"):].isdigit():
        core, args = "delayed", {"hidden_size": HIDDEN, "delay": int(name[len("pos_delayed_d"):]), "cell": "lstm"}
    else:
        raise ValueError(f"name must be one of {tagger_names()}, got {name!r}")
    return dict(core=core, core_args=args, input_size=features, output_size=tags)


class WordEncoder(nn.Module):
    """A :class:`POSTagger`'s word encoder on its own: ``(B, L)`` word ids and ``(B, L, M)`` character ids ->
    ``(B, L, word_dim + 2 char_hidden)`` word vectors (0 at padding), computed exactly as
    :meth:`POSTagger.word_vectors` (the same submodules under the same names, the same method)."""

    def __init__(self, words: int, chars: int, word_dim: int, char_dim: int, char_hidden: int):
        super().__init__()
        self.config = dict(words=words, chars=chars, word_dim=word_dim, char_dim=char_dim, char_hidden=char_hidden)
        self.word_embedding = nn.Embedding(words, word_dim, padding_idx=0)
        self.char_embedding = nn.Embedding(chars, char_dim, padding_idx=0)
        self.char_rnn = nn.LSTM(char_dim, char_hidden, batch_first=True, bidirectional=True)
        self.output_size = word_dim + 2 * char_hidden

    def forward(self, word_ids: torch.Tensor, char_ids: torch.Tensor) -> torch.Tensor:
        return POSTagger.word_vectors(self, word_ids, char_ids)

    @classmethod
    def from_tagger(cls, tagger: POSTagger) -> WordEncoder:
        c = tagger.config
        encoder = cls(c["words"], c["chars"], c["word_dim"], c["char_dim"], c["char_hidden"])
        encoder.load_state_dict({k: v for k, v in tagger.state_dict().items()
                                 if k.split(".")[0] in ("word_embedding", "char_embedding", "char_rnn")})
        return encoder.eval()


def vocab_hash(vocab: Vocabulary) -> str:
    return hashlib.sha256("\n".join(("\t".join(vocab.words), "\t".join(vocab.chars), "\t".join(vocab.tags)))
                          .encode()).hexdigest()


def _round_half(module: nn.Module) -> nn.Module:
    """Round every float weight to float16 (and back), as it will be stored."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.half().float())
    return module


@torch.no_grad()
def encode_sentences(encoder: WordEncoder, vocab: Vocabulary, data, batch_size: int = 256) -> list[torch.Tensor]:
    """The word vectors ``(T_i, F)`` of every (words, tags) pair in ``data`` (any tags: only the words are read)."""
    encoder.eval()
    out = []
    for start in range(0, len(data), batch_size):
        chunk = data[start:start + batch_size]
        word_ids, char_ids, lengths, _ = vocab.batch(list(chunk))
        vectors = encoder(word_ids, char_ids)
        out.extend(vectors[i, :n].clone() for i, n in enumerate(lengths.tolist()))
    return out


def tag_ids(vocab: Vocabulary, data) -> list[torch.Tensor]:
    index = {t: i for i, t in enumerate(vocab.tags)}
    return [torch.tensor([index[t] for t in tags]) for _, tags in data]


def equal_length_batches(lengths: list[int], batch_size: int, generator: torch.Generator | None = None) -> list:
    """Index lists of sentences that all have the same length (at most ``batch_size`` each), shuffled with
    ``generator`` (None: in order). No batch needs padding."""
    by_length = defaultdict(list)
    for i, n in enumerate(lengths):
        by_length[n].append(i)
    batches = []
    for n in sorted(by_length):
        idx = by_length[n]
        if generator is not None:
            idx = [idx[j] for j in torch.randperm(len(idx), generator=generator).tolist()]
        batches.extend(idx[s:s + batch_size] for s in range(0, len(idx), batch_size))
    if generator is not None:
        batches = [batches[j] for j in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


@torch.no_grad()
def predict_tags(model: SequenceModel, vectors: list[torch.Tensor], batch_size: int = 256) -> list[torch.Tensor]:
    """Argmax tags ``(T_i,)`` of every sentence, the model run on the whole sentence (equal-length batches)."""
    was_training = model.training
    model.eval()
    out: list[torch.Tensor | None] = [None] * len(vectors)
    for batch in equal_length_batches([len(v) for v in vectors], batch_size):
        pred = model(torch.stack([vectors[i] for i in batch])).argmax(-1)
        for j, i in enumerate(batch):
            out[i] = pred[j]
    model.train(was_training)
    return out


def accuracy(predicted: list[torch.Tensor], gold: list[torch.Tensor]) -> dict:
    correct = sum(int((p == g).sum()) for p, g in zip(predicted, gold, strict=True))
    total = sum(len(g) for g in gold)
    return {"accuracy": correct / total, "tokens": total}


def train_sentence_model(name: str, train: tuple, val: tuple, tags: int, seed: int = 0,
                         log: Callable[[str], None] | None = print, **overrides) -> tuple[SequenceModel, dict]:
    """Stage 2: the sentence model ``name`` trained with Adam on ``train = (vectors, tag ids)``, the best
    validation accuracy kept (early stop after ``patience`` epochs without improvement). Returns the model
    (rounded to float16 values) and its training facts."""
    budget = {**STAGE2, **overrides}
    start = time.perf_counter()
    torch.manual_seed(seed)
    (x_train, y_train), (x_val, y_val) = train, val
    model = SequenceModel(**sentence_model_config(name, x_train[0].shape[1], tags))
    generator = torch.Generator().manual_seed(seed)
    lengths = [len(v) for v in x_train]
    per_epoch = len(equal_length_batches(lengths, budget["batch_size"]))

    def batches():
        for _ in range(budget["epochs"]):
            for b in equal_length_batches(lengths, budget["batch_size"], generator):
                yield torch.stack([x_train[i] for i in b]), torch.stack([y_train[i] for i in b])

    def loss(m, batch):
        x, y = batch
        logits = m(x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    done = fit(model, torch.optim.Adam(model.parameters(), lr=budget["lr"]), batches(), loss,
               budget["epochs"] * per_epoch, evaluate=lambda m: accuracy(predict_tags(m, x_val), y_val),
               eval_every=per_epoch, score=lambda m: m["accuracy"], patience=budget["patience"], clip=5.0,
               log_every=100, start=start)
    model.eval()
    _round_half(model)
    facts = {"status": done.status, "epochs": math.ceil(done.steps / per_epoch), "best_epoch":
             (done.best_step or 0) // per_epoch, "seconds": time.perf_counter() - start, "budget": budget,
             "seed": seed}
    if log is not None:
        log(f"    {name}: {done.status} after {facts['epochs']} epochs ({facts['seconds']:.0f} s)")
    return model, facts


def save_encoder(path: Path, encoder: WordEncoder, vocab: Vocabulary, stage1: dict) -> Path:
    """``<path>.safetensors`` (float16) and ``<path>.json``: the encoder's sizes, the vocabulary's recipe and hash."""
    path = Path(path).with_suffix("")
    tensors = {k: v.detach().half().contiguous().clone() for k, v in encoder.state_dict().items()}
    blob = save_safetensors_bytes(tensors, metadata={"format": "pt"})
    weights = path.with_suffix(".safetensors")
    card = {"name": path.name, "task": "pos_encoder", "kind": "word encoder of the Streaming page's POS taggers",
            "encoder": encoder.config, "vocab": {"min_count": MIN_COUNT, "source": SOURCE, "sha256": vocab_hash(vocab),
                                                 "words": len(vocab.words), "chars": len(vocab.chars),
                                                 "tags": list(vocab.tags)},
            "stage1": stage1, "stored_dtype": "float16", "versions": library_versions(), "weights": weights.name,
            "sha256": hashlib.sha256(blob).hexdigest()}
    _atomic_write(weights, blob)
    _atomic_write(path.with_suffix(".json"), json.dumps(jsonable(card, strict=True), indent=2).encode())
    return weights


def load_encoder(path: Path) -> tuple[WordEncoder, Vocabulary, dict]:
    """The shipped word encoder and its vocabulary (rebuilt from the shipped data; its sizes and hash checked
    against the card, the file's header against the encoder before a tensor is read). Raises
    :class:`~drnn_demo.checkpoints.CheckpointError` naming the file."""
    path = Path(path).with_suffix("")
    card_path, weights_path = path.with_suffix(".json"), path.with_suffix(".safetensors")
    try:
        card = read_json(card_path, max_bytes=MAX_ENCODER_CARD_BYTES)
        blob = weights_path.read_bytes()
    except FileNotFoundError as err:
        raise CheckpointError(f"{err.filename}: not found; run `python -m drnn_demo pretrain --group streaming`") \
            from err
    except JSONFileError as err:
        raise CheckpointError(f"the encoder card {err}") from None
    recipe, sizes = card.get("vocab"), card.get("encoder")
    if not isinstance(recipe, dict) or not isinstance(sizes, dict):
        raise CheckpointError(f"{card_path.name}: no 'vocab' and 'encoder' objects")
    vocab = Vocabulary.from_training(MIN_COUNT, SOURCE)
    if recipe.get("sha256") != vocab_hash(vocab):
        raise CheckpointError(f"{card_path.name}: the vocabulary rebuilt from the shipped data differs from the one "
                              "the encoder was trained with")
    encoder = WordEncoder(len(vocab.words), len(vocab.chars), **ENCODER)
    header = safetensors_header(blob, weights_path.name)
    own = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    if {k: v[1] for k, v in header.items()} != own:
        raise CheckpointError(f"{weights_path.name}: tensors do not match the encoder ({len(own)} expected)")
    if hashlib.sha256(blob).hexdigest() != card.get("sha256"):
        raise CheckpointError(f"{weights_path.name}: sha256 mismatch with {card_path.name}")
    tensors = load_safetensors_bytes(blob)
    if not all(bool(torch.isfinite(v).all()) for v in tensors.values()):
        raise CheckpointError(f"{weights_path.name}: non-finite weights")
    encoder.load_state_dict({k: v.float() for k, v in tensors.items()})
    return encoder.eval(), vocab, card


def pretrain_pos_taggers(out: Path = PRETRAINED_DIR, force: bool = False, log: Callable[[str], None] = print,
                         seed: int = 0, stage1: dict | None = None, stage2: dict | None = None,
                         limit: int | None = None) -> list[Path]:
    """Train (if missing, or with ``force``) the encoder and the six sentence models into ``out``; return the
    paths written. ``stage1``/``stage2`` override the budgets, ``limit`` cuts the training sentences (tests)."""
    from .recipes.pos import train_pos

    out = Path(out)
    names = tagger_names()
    if not force and all((out / f"{n}.safetensors").exists() for n in [ENCODER_NAME, *names]):
        log("the POS taggers exist (use force to retrain)")
        return []
    written = []
    if force or not (out / f"{ENCODER_NAME}.safetensors").exists():
        log("[stage 1] word encoder: an end-to-end bidirectional tagger")
        s1 = {**STAGE1, **(stage1 or {})}
        result = train_pos("bidirectional", 0, HIDDEN, seed=seed, min_count=MIN_COUNT, source=SOURCE, limit=limit,
                           **s1)
        facts = {"test_accuracy": result.test["accuracy"], "val_accuracy": result.val["accuracy"],
                 "epochs": result.epochs, "seconds": result.seconds, "status": result.status, "budget": s1,
                 "train_sentences": result.train_sentences}
        log(f"    end-to-end tagger: test {facts['test_accuracy']:.4f} ({facts['seconds']:.0f} s)")
        written.append(save_encoder(out / ENCODER_NAME, _round_half(WordEncoder.from_tagger(result.model)),
                                    result.vocab, facts))
    encoder, vocab, _ = load_encoder(out / ENCODER_NAME)
    data = {split: sentences(split, SOURCE) for split in ("train", "val", "test")}
    data["train"] = data["train"][:limit]
    encoded = {split: (encode_sentences(encoder, vocab, d), tag_ids(vocab, d)) for split, d in data.items()}
    for name in names:
        if not force and (out / f"{name}.safetensors").exists() and not written:
            continue
        log(f"[stage 2] {name}")
        model, facts = train_sentence_model(name, encoded["train"], encoded["val"], len(vocab.tags), seed=seed,
                                            log=log, **(stage2 or {}))
        metrics = {split: accuracy(predict_tags(model, encoded[split][0]), encoded[split][1])
                   for split in ("val", "test")}
        log(f"    {name}: test accuracy {metrics['test']['accuracy']:.4f}")
        config = sentence_model_config(name, encoder.output_size, len(vocab.tags))
        card = {"name": name, "task": "pos", "task_args": {"source": SOURCE}, "seed": seed, "metrics": metrics,
                "train": {"task": "pos", "model": {"core": config["core"], "core_args": config["core_args"]},
                          **facts},
                "encoder": ENCODER_NAME, "stored_dtype": "float16", "train_sentences": len(data["train"])}
        written.append(save_checkpoint(out / name, model.half(), card))
    return written


@dataclass
class POSTaggers:
    """The shipped taggers: the shared encoder, its vocabulary, and ``models[name]`` with ``cards[name]``."""

    encoder: WordEncoder
    vocab: Vocabulary
    models: dict[str, SequenceModel]
    cards: dict[str, dict]

    def vectors(self, words: list[str]) -> torch.Tensor:
        """``(T, F)`` word vectors of one sentence."""
        return encode_sentences(self.encoder, self.vocab, [(tuple(words), (self.vocab.tags[0],) * len(words))])[0]


def load_pos_taggers(directory: Path = PRETRAINED_DIR) -> POSTaggers:
    """Every shipped POS tagger (see the module docstring); raises ``CheckpointError`` if one is missing or bad."""
    directory = Path(directory)
    encoder, vocab, _ = load_encoder(directory / ENCODER_NAME)
    models, cards = {}, {}
    for name in tagger_names():
        models[name], cards[name] = load_checkpoint(directory / f"{name}.safetensors")
        if models[name].config["input_size"] != encoder.output_size:
            raise CheckpointError(f"{name}: reads {models[name].config['input_size']} features, the encoder gives "
                                  f"{encoder.output_size}")
    return POSTaggers(encoder, vocab, models, cards)


MAX_TYPED_WORDS = 60


def tokenize(text: str) -> list[str]:
    """Words and punctuation of a typed sentence, split roughly as UD English EWT does ("don't" -> "do", "n't");
    at most :data:`MAX_TYPED_WORDS` (a longer text raises ``ValueError``)."""
    import re

    words = re.findall(r"\w+(?=n't)|n't|'\w+|\w+(?:[.-]\w+)*|[^\w\s]", text)
    if len(words) > MAX_TYPED_WORDS:
        raise ValueError(f"the sentence has {len(words)} words; at most {MAX_TYPED_WORDS} are streamed")
    return words
