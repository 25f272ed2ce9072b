"""Analyses of trained (or random) networks that the pages plot: plain tensors in, plain tensors out.

- :func:`connectivity`: ``||dy_t / dx_s||`` for every output step ``t`` and input step ``s``.
- :mod:`~drnn_demo.analysis.attributions` (import it by name): captum's integrated gradients and
  gradient × input on an LRN classifier's embedded tokens, and their Spearman agreement with the gates.
- :mod:`~drnn_demo.analysis.incremental` (import it by name): edit overhead, correction time and relative
  correctness of a stream of partial outputs (Madureira & Schlangen, 2020).

(The function shadows its submodule as an attribute of this package: import the module itself with
``from drnn_demo.analysis import connectivity as ...`` only for the function, or reach the module's
other names with ``from drnn_demo.analysis.connectivity import MAX_STEPS``.)
"""

from .connectivity import MAX_STEPS, connectivity

__all__ = ["MAX_STEPS", "connectivity"]
