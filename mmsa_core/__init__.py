"""mmsa_core — the MSA model core: data, shared encoders, methods, metrics and a single-run trainer.

It imports neither Ray, MLflow nor Optuna, and importing the package does not import torch:
submodules load their heavy dependencies when used. Methods live in `mmsa_core.methods`, one
package each, found through its registry.
"""

from mmsa_core.config import RunConfig
from mmsa_core.methods import get_method, method_names
from mmsa_core.methods.base import MODALITY_SUBSETS

__all__ = ["RunConfig", "MODALITY_SUBSETS", "get_method", "method_names"]
__version__ = "0.2.0"
