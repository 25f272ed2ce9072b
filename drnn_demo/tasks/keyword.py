"""Last keyword: a synthetic classification task whose evidence position is known exactly.

A sequence of ``length`` tokens is mostly distractors; between 1 and ``max_keywords`` positions
hold a keyword, each keyword belonging to one of ``classes`` classes. The label is the class of
the **last** keyword. So exactly one position decides the label, and a model that reads its
final state (an LRN with ``readout="last"``) should put its weight there: keywords of another
class must be forgotten when a later one arrives, distractors must be ignored. Earlier keywords of
the *same* class as the last one agree with it, so a model may keep them: :meth:`LastKeyword.decisive`
marks the whole agreeing run. :func:`pointing_accuracy` measures how often the unfolded LRN
weights (:mod:`drnn_demo.token_weights`) point into it.

Measured (LRN, identity, H=16, 1000 steps): accuracy 1.0; the token with the largest share of the
logit margin is decisive ~97 % of the time, the one with the largest ``||w r||`` ~95 %, but the
one with the largest *unit-averaged gate weight* only ~20 %: units the classifier ignores dominate
that average. The pages show all three.

Token ids: ``0 .. distractors-1`` are distractors; keyword ``j`` of class ``c`` has id
``distractors + c * keywords_per_class + j``.
"""

from __future__ import annotations

import torch

from ..models.common import check_positive_int
from .base import Task


class LastKeyword(Task):
    """Classify a sequence by the class of its last keyword.

    Args:
        length: ``T``, tokens per sequence (default 30).
        classes: number of labels (default 2).
        keywords_per_class: distinct keyword tokens per class (default 2).
        distractors: distinct distractor tokens (default 20).
        max_keywords: keyword occurrences per sequence are uniform in ``1..max_keywords`` (default 3),
            at distinct uniformly random positions, each with a uniformly random class.

    Metrics: ``cross_entropy`` (the main one: accuracy reaches 1.0 within a few hundred steps and
    then cannot tell models apart) and ``accuracy``.

    Shapes:
        - x: ``(n, T)`` long token ids (``vocab_size = distractors + classes * keywords_per_class``)
        - y: ``(n,)`` long, the class of the last keyword
    """

    name = "keyword"
    kind = "classification"
    metric = "cross_entropy"  # accuracy saturates at 1 early; the loss keeps ranking models after that
    higher_is_better = False
    readout = "last"

    def __init__(self, length: int = 30, classes: int = 2, keywords_per_class: int = 2, distractors: int = 20,
                 max_keywords: int = 3):
        super().__init__()
        for name, value in (("length", length), ("classes", classes), ("keywords_per_class", keywords_per_class),
                            ("distractors", distractors), ("max_keywords", max_keywords)):
            check_positive_int(name, value)
        if classes < 2:
            raise ValueError(f"classes must be at least 2, got {classes}")
        if max_keywords > length:
            raise ValueError(f"max_keywords must be at most length={length}, got {max_keywords}")
        self.args = {"length": length, "classes": classes, "keywords_per_class": keywords_per_class,
                     "distractors": distractors, "max_keywords": max_keywords}
        self.length, self.classes, self.keywords_per_class = length, classes, keywords_per_class
        self.distractors, self.max_keywords = distractors, max_keywords
        self.vocab_size = distractors + classes * keywords_per_class
        self.input_size = 16  # suggested embedding size
        self.output_size = classes

    def keyword_class(self, tokens: torch.Tensor) -> torch.Tensor:
        """The class of each token, ``-1`` for distractors; same shape as ``tokens``."""
        cls = torch.div(tokens - self.distractors, self.keywords_per_class, rounding_mode="floor")
        return torch.where(tokens >= self.distractors, cls, torch.full_like(tokens, -1))

    def evidence(self, x: torch.Tensor) -> torch.Tensor:
        """``(n,)``: the position of the last keyword, the one that decides the label."""
        is_keyword = (x >= self.distractors).long()
        positions = torch.arange(x.shape[1]).expand_as(x)
        return (positions * is_keyword - (1 - is_keyword)).amax(dim=1)

    def decisive(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(n, T)`` bool: the keywords of class ``y`` after the last keyword of another class.

        These, and only these, carry the label: earlier keywords of another class are overridden,
        and earlier ones of the same class agree with the last one (a model may keep them).
        """
        cls = self.keyword_class(x)
        positions = torch.arange(x.shape[1]).expand_as(x)
        other = (cls >= 0) & (cls != y.unsqueeze(1))
        last_other = torch.where(other, positions, torch.full_like(positions, -1)).amax(dim=1, keepdim=True)
        return (cls == y.unsqueeze(1)) & (positions > last_other)

    def token_names(self, tokens) -> list[str]:
        """Readable labels for one sequence: ``d7`` for distractors, ``K1.0`` for keyword 0 of class 1."""
        names = []
        for t in (int(v) for v in tokens):
            if t < self.distractors:
                names.append(f"d{t}")
            else:
                c, j = divmod(t - self.distractors, self.keywords_per_class)
                names.append(f"K{c}.{j}")
        return names

    def sample(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = self._generator(n, seed)
        x = torch.randint(self.distractors, (n, self.length), generator=g)
        count = torch.randint(1, self.max_keywords + 1, (n,), generator=g)
        order = torch.rand(n, self.length, generator=g).argsort(dim=1)  # a random permutation per row
        chosen = torch.arange(self.max_keywords).unsqueeze(0) < count.unsqueeze(1)  # (n, max_keywords)
        positions = order[:, : self.max_keywords]
        classes = torch.randint(self.classes, (n, self.max_keywords), generator=g)
        which = torch.randint(self.keywords_per_class, (n, self.max_keywords), generator=g)
        keyword = self.distractors + classes * self.keywords_per_class + which
        rows = torch.arange(n).unsqueeze(1).expand_as(positions)
        x[rows[chosen], positions[chosen]] = keyword[chosen]
        last = self.evidence(x)
        y = self.keyword_class(x.gather(1, last.unsqueeze(1))).squeeze(1)
        return x, y


@torch.no_grad()
def pointing_accuracy(model, task: LastKeyword, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """How often the token that contributes most to the final LRN state is decisive evidence.

    The decisive tokens (:meth:`LastKeyword.decisive`) are the keywords of the label's class after
    the last keyword of another class: the last keyword, and earlier ones that agree with it. Three
    views of "contributes most" (see :func:`drnn_demo.token_weights.final_token_attribution`):

    - ``"weight"``: the unit-averaged gate weight ``mean_u w[L-1, k, u]``;
    - ``"contribution"``: the size ``|| w[L-1, k] * r_k ||``;
    - ``"logit"``: the token's share of ``logit_y - mean_c logit_c`` (needs a linear head).
    """
    from ..token_weights import final_token_attribution

    attribution = final_token_attribution(model, x)
    decisive = task.decisive(x, y)
    rows = torch.arange(x.shape[0])
    views = {"weight": attribution.weight, "contribution": attribution.contribution}
    if attribution.logit is not None:
        logit = attribution.logit
        views["logit"] = logit[rows, :, y] - logit.mean(-1)
    return {name: float(decisive[rows, score.argmax(dim=1)].double().mean()) for name, score in views.items()}
