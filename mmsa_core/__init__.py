"""mmsa_core — the HSCL model core: data, model, losses, metrics and a single-run trainer.

It imports neither Ray, MLflow nor Optuna, and importing the package does not import torch:
submodules load their heavy dependencies when used.
"""

from mmsa_core.config import HSCL_LOSS_TERMS, MODALITY_SUBSETS, RunConfig

__all__ = ["RunConfig", "HSCL_LOSS_TERMS", "MODALITY_SUBSETS"]
__version__ = "0.1.0"
