"""Plotly figure builders: pure functions, numbers in -> ``go.Figure`` out.

Every figure the app shows comes from here, so a test can build and inspect it without a browser. Colour scales
are explicit, hover text carries the real numbers, and long histories are downsampled before plotting.
``style`` holds the shared look; each other module holds one page's figures. Pages use ``viz.<figure>``.
"""

from .attributions import ATTRIBUTION_WEIGHT_COLOR, agreement_chart, attribution_bars
from .connectivity import CONNECTIVITY_DECADES, CONNECTIVITY_SCALE, CONNECTIVITY_ZERO, connectivity_map
from .delayed import metric_vs_delay, position_heatmap, sequence_panels
from .equivalence import block_matrix, eps_curve, influence_map, layer_errors, layer_overlay
from .lrn import (
    LRN_MARK_COLOR,
    LRN_OTHER_COLOR,
    LRN_SIDE_COLORS,
    LRN_TICK_LIMIT,
    LRN_UNKNOWN_COLOR,
    LRN_WEIGHT_SCALE,
    lrn_activation_comparison,
    lrn_decay_curves,
    lrn_gate_heatmaps,
    lrn_token_shares,
    lrn_weight_heatmap,
)
from .memory import (
    BASELINE_COLOR,
    MEMORY_CELL_COLORS,
    MEMORY_CELL_NAMES,
    PHASE_COLORS,
    gradient_norms_over_time,
    memory_loss_curves,
    orthogonality_errors,
    saturation_histogram,
    saturation_trajectory,
)
from .runs import runs_overlay, training_curves
from .streaming import (
    accuracy_vs_latency,
    compute_per_token,
    incremental_chart,
    now_table_html,
    stream_values,
    token_connectivity_map,
)
from .style import DIVERGING, LAYOUT, PALETTE, SEQUENTIAL, downsample

__all__ = [
    "ATTRIBUTION_WEIGHT_COLOR", "agreement_chart", "attribution_bars",
    "BASELINE_COLOR", "CONNECTIVITY_DECADES", "CONNECTIVITY_SCALE", "CONNECTIVITY_ZERO", "DIVERGING", "LAYOUT",
    "LRN_MARK_COLOR", "LRN_OTHER_COLOR", "LRN_SIDE_COLORS", "LRN_TICK_LIMIT", "LRN_UNKNOWN_COLOR",
    "LRN_WEIGHT_SCALE", "MEMORY_CELL_COLORS", "MEMORY_CELL_NAMES", "PALETTE", "PHASE_COLORS", "SEQUENTIAL",
    "block_matrix", "connectivity_map", "downsample", "eps_curve", "gradient_norms_over_time", "influence_map",
    "layer_errors", "layer_overlay", "lrn_activation_comparison", "lrn_decay_curves", "lrn_gate_heatmaps",
    "lrn_token_shares", "lrn_weight_heatmap", "memory_loss_curves", "metric_vs_delay", "orthogonality_errors",
    "position_heatmap", "runs_overlay", "saturation_histogram", "saturation_trajectory", "sequence_panels",
    "training_curves",
    "accuracy_vs_latency", "compute_per_token", "incremental_chart", "now_table_html", "stream_values",
    "token_connectivity_map",
]
