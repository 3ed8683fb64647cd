"""`grutool shapes`: every tensor shape of a recurrent layer, or of a configured model, proven by running it.

Two reports, both plain dicts (what `grutool shapes --json` prints; the CLI only renders them):

- `layer_report(LayerSpec(...))` (`layer.py`, the layer explainer): the layer module `train` builds for
  the user's settings (`spec.py`; grutool's class for the cell, on the kernel the spec names), which
  kernel ran, its tensors, packed layout, parameters and identities.
- `config_report(path)` (`model.py`, the model tracer): the model `train` builds for a config, traced
  module by module, plus the layer report of its encoder's recurrent layer.

`reference.py` holds the from-scratch cell steps (`gru_step`, ...) the `--explain` check and tests
compare modules against; `checks.py` what every report shares (`compare`, tolerances, the verdict).
"""

from grutool.shapes.checks import MODEL_TOL, TOL, all_passed, compare
from grutool.shapes.layer import (analyze_layer, build_layer, eval_symbol, explain, first_backward_identity,
                                  last_forward_identity, layer_identities, layer_report, layout_identity,
                                  padding_identity, parameter_table, run_module)
from grutool.shapes.model import config_report, trace_model
from grutool.shapes.reference import EQUATIONS, GATES, gru_step, lstm_step, rnn_step
from grutool.shapes.spec import DEFAULTS, LayerSpec, check_spec, parse_lengths, resolve_batch

__all__ = [
    "DEFAULTS", "EQUATIONS", "GATES", "MODEL_TOL", "TOL", "LayerSpec", "all_passed", "analyze_layer", "build_layer",
    "check_spec", "compare", "config_report", "eval_symbol", "explain", "first_backward_identity", "gru_step",
    "last_forward_identity", "layer_identities", "layer_report", "layout_identity", "lstm_step",
    "padding_identity", "parameter_table", "parse_lengths", "resolve_batch", "rnn_step", "run_module",
    "trace_model",
]
