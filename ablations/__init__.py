"""ablations — declarative ablation studies on top of the sweep layer.

A spec (YAML, `ablations/specs/`) names a method, data, a base configuration (overrides of a preset,
or the best configuration of a finished sweep), seeds and variants that switch modalities and loss
terms; `load_spec` validates it without importing torch, Ray or MLflow. `ablations.runner.run_ablation`
runs every (variant, seed) as one Ray Tune grid through `sweeps`' grid API and logs to MLflow under the
contract of docs/ARCHITECTURE.md; `python ablations/run.py SPEC` is its command line.
"""

from ablations.spec import (AblationSpec, AblationSpecError, Robustness, Trial, Variant, load_spec,
                            parse_spec, shipped_specs)

__all__ = ["AblationSpec", "AblationSpecError", "Robustness", "Trial", "Variant", "load_spec",
           "parse_spec", "shipped_specs"]
