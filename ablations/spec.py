"""Ablation specs: a YAML file that says which parts of a method to switch off, and with which seeds.

A spec holds only deltas from a named preset (or from the best configuration of a finished sweep):

    name: hscl-modalities              # study name (default: the file's stem)
    method: hscl
    data: synthetic-mosi               # as the sweep's --data
    preset: mosi                       # authors' hyper-parameters for MOSI or MOSEI (default mosi)
    base: {text_encoder: minilm}       # overrides for every variant, or {sweep: NAME_OR_PARENT_RUN_ID}
    seeds: [1111, 1112, 1113, 1114, 1115]
    reference: full                    # the variant every other one is compared with
    variants:
      - name: full
      - name: text_only
        modalities: t                  # subset of t, a, v (text is always used)
      - name: no_fusion
        disable: [supcr_fusion]        # loss terms switched off, by mmsa_core's names
      - name: no_label_info
        replace: {supcr: infonce}      # "without label information"
      - name: small_tau
        overrides: {tau: 0.1}          # any RunConfig field
    robustness:                        # test-time corruption of the trained reference models
      kinds: [frames, stream]
      modalities: [a, v, av]
      rates: [0.0, 0.25, 0.5]

`load_spec(path)` parses and validates a file (`ablations.parsing`, `ablations.checks`; the data
types are in `ablations.schema`); every problem is collected into one
`AblationSpecError` whose lines each name the file and the variant, and list the valid names.
Validation builds every variant's full `RunConfig`, so an impossible combination (a fusion loss with
no stream to fuse, InfoNCE with no contrastive term left) fails here, not mid-run. This module
imports neither torch, Ray nor MLflow.
"""

from __future__ import annotations

from ablations.parsing import (load_spec, parse_spec, resolve_spec_path, shipped_specs, spec_on_base,
                               spec_with_changes)
from ablations.schema import (DEFAULT_REFERENCE, DEFAULT_SEEDS, SPECS_DIR, AblationSpec,
                              AblationSpecError, Robustness, Trial, Variant, variant_config)
from mmsa_core.data.corruption import CORRUPTION_KINDS

__all__ = [
    "AblationSpec", "AblationSpecError", "Robustness", "Trial", "Variant", "DEFAULT_SEEDS",
    "DEFAULT_REFERENCE", "SPECS_DIR", "CORRUPTION_KINDS", "load_spec", "parse_spec",
    "resolve_spec_path", "shipped_specs", "spec_on_base", "spec_with_changes", "variant_config",
]
