"""The one typed configuration of a single training run.

Every default is the HSCL authors' value for CMU-MOSI (Chen, Wang, Hao, MMM 2024, Table/§6 of
`shared/spec/hscl.md`); `RunConfig.paper_mosi()` / `RunConfig.paper_mosei()` are the two presets.
The config is frozen and flat on purpose: a flat dict of scalars is what Ray Tune samples, what
MLflow stores as params and what an ablation spec overrides, so one object serves all three.
Derived values (feature widths, the text width) are read from data and the encoder at build
time and never written back here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from typing import Any, Literal, Mapping

# Loss terms HSCL defines (spec §2-4). Ablations switch them off by these names.
HSCL_LOSS_TERMS: tuple[str, ...] = ("task", "supcr_ta", "supcr_tv", "sim_ta", "sim_tv", "supcr_fusion")
MODALITY_SUBSETS: tuple[str, ...] = ("t", "ta", "tv", "tav")
SYNTHETIC_SOURCES: tuple[str, ...] = ("synthetic-mosi", "synthetic-mosei")


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs; defaults = HSCL paper, MOSI column (spec §6)."""

    # --- what to train ------------------------------------------------------------------
    method: str = "hscl"  # loss family; see mmsa_core.objectives.METHODS
    data: str = "synthetic-mosi"  # MMSA pickle / converted dir, or a synthetic name
    text_encoder: str = "minilm"  # "minilm" (packaged, pretrained), "tiny" (random), or a HF dir
    modalities: str = "tav"  # subset of t/a/v; text is always present (spec §2: text anchors pairs)
    faithful: bool = False  # reproduce the six quirks of the authors' code (spec §7)

    # --- encoders (spec §1) -------------------------------------------------------------
    max_text_len: int = 50  # tokens; the MMSA files are padded to 50
    av_layers: int = 3  # Transformer layers per acoustic/visual encoder
    audio_heads: int = 1  # MOSI acoustic width 5 -> 1 head
    audio_ffn: int = 32
    vision_heads: int = 5  # MOSI visual width 20 -> 5 heads
    vision_ffn: int = 64
    fusion_heads: int = 12  # text-as-query fusion blocks (paper: 12 heads at 768)
    proj_dim: int = 128  # projection heads FC_m (spec §2)
    dropout: float = 0.1

    # --- loss weights (spec §4, §6) -----------------------------------------------------
    omega1: float = 0.01  # unimodal level weight
    omega2: float = 0.1  # fusion level weight
    alpha: float = 0.1  # similarity term inside each unimodal pair
    tau: float = 0.5  # SupCR temperature
    sim_norm: Literal["l2", "squared_l2"] = "l2"  # code uses plain L2; paper writes the square
    label_info: Literal["supcr", "infonce"] = "supcr"  # "infonce" = "without label information"
    disabled_losses: tuple[str, ...] = ()  # loss terms switched off (ablations)

    # --- optimisation (spec §6) ---------------------------------------------------------
    lr_text: float = 5e-5
    lr_other: float = 1e-3
    weight_decay: float = 1e-4
    lr_step_epoch: int = 11  # StepLR step size (x0.1 after this many epochs)
    lr_gamma: float = 0.1
    batch_size: int = 128
    max_epochs: int = 20
    patience: int = 10  # early stopping on validation MAE
    grad_clip: float = 1.0
    select_metric: Literal["mae", "corr", "acc2_non0"] = "mae"  # validation metric for selection

    # --- reproducibility / hardware -----------------------------------------------------
    seed: int = 1111
    deterministic: bool = True
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    amp: bool = True  # mixed precision, used on CUDA only
    num_threads: int = 0  # torch intra-op threads; 0 = leave torch's default

    # --- synthetic data size (only read when `data` is a synthetic name) ----------------
    synthetic_train: int = 0  # 0 = the dataset's real split sizes
    synthetic_valid: int = 0
    synthetic_test: int = 0

    # ------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError("invalid RunConfig: " + "; ".join(problems))

    # presets ------------------------------------------------------------------------------
    @classmethod
    def paper_mosi(cls, **overrides: Any) -> "RunConfig":
        """HSCL authors' CMU-MOSI configuration (spec §6)."""
        return cls(**overrides)

    @classmethod
    def paper_mosei(cls, **overrides: Any) -> "RunConfig":
        """HSCL authors' CMU-MOSEI configuration (spec §1, §6)."""
        base = dict(
            data="synthetic-mosei", audio_heads=2, audio_ffn=32, vision_heads=5, vision_ffn=32,
            lr_text=1e-5, lr_other=1e-4, lr_step_epoch=5, omega2=0.05,
        )
        base.update(overrides)
        return cls(**base)

    # conversions ---------------------------------------------------------------------------
    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-able dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["disabled_losses"] = list(self.disabled_losses)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, base: "RunConfig | None" = None,
                  source: str = "config") -> "RunConfig":
        """Build from a mapping, casting strings (MLflow params, CLI) to the field's type.

        Unknown keys raise one error that lists the valid names; `source` names where the
        mapping came from (a file, a variant) so the message points at it.
        """
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(k for k in values if k not in known)
        if unknown:
            raise ValueError(
                f"{source}: unknown configuration field(s) {unknown}; valid fields: {sorted(known)}"
            )
        changes = {k: _cast(k, v, source) for k, v in values.items()}
        start = base if base is not None else cls()
        try:
            return dataclasses.replace(start, **changes)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @property
    def active_losses(self) -> tuple[str, ...]:
        """HSCL loss terms that are computed for this config (modalities and switches applied)."""
        from mmsa_core.objectives import active_terms  # local: objectives imports torch

        return active_terms(self)


def parse_assignments(items: "list[str] | tuple[str, ...]", *, flag: str = "--set") -> dict[str, str]:
    """``["tau=0.3", "modalities=ta"]`` -> ``{"tau": "0.3", "modalities": "ta"}`` (values stay strings;
    `RunConfig.from_dict` casts them). Every CLI's ``--set FIELD=VALUE`` goes through here."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"{flag} {item!r}: expected FIELD=VALUE")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


_BOOL_STRINGS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
_TYPES: dict[str, type] = {
    "method": str, "data": str, "text_encoder": str, "modalities": str, "faithful": bool,
    "max_text_len": int, "av_layers": int, "audio_heads": int, "audio_ffn": int,
    "vision_heads": int, "vision_ffn": int, "fusion_heads": int, "proj_dim": int,
    "dropout": float, "omega1": float, "omega2": float, "alpha": float, "tau": float,
    "sim_norm": str, "label_info": str, "disabled_losses": tuple, "lr_text": float,
    "lr_other": float, "weight_decay": float, "lr_step_epoch": int, "lr_gamma": float,
    "batch_size": int, "max_epochs": int, "patience": int, "grad_clip": float,
    "select_metric": str, "seed": int, "deterministic": bool, "device": str, "amp": bool,
    "num_threads": int, "synthetic_train": int, "synthetic_valid": int, "synthetic_test": int,
}


def _cast(name: str, value: Any, source: str) -> Any:
    kind = _TYPES[name]
    try:
        if kind is bool:
            if isinstance(value, str):
                return _BOOL_STRINGS[value.strip().lower()]
            return bool(value)
        if kind is tuple:
            if isinstance(value, str):
                text = value.strip()
                if text.startswith("["):  # JSON list, as MLflow gives params back
                    return tuple(json.loads(text))
                if text.startswith("("):  # repr of a tuple
                    text = text.strip("()")
                return tuple(p.strip().strip("'\"") for p in text.split(",") if p.strip())
            return tuple(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"{value} is not an integer")
            if isinstance(value, bool):
                raise ValueError("a bool is not an integer")
            return int(float(value)) if isinstance(value, str) else int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError("a bool is not a number")
            return float(value)
        return str(value)
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(
            f"{source}: field {name!r} expects {kind.__name__}, got {value!r} ({exc})"
        ) from None


def _problems(cfg: RunConfig) -> list[str]:
    """Every invalid value of `cfg`, as readable sentences (empty = valid)."""
    from mmsa_core.objectives import METHODS  # pure-Python registry, no torch at import

    p: list[str] = []
    if cfg.method not in METHODS:
        p.append(f"method={cfg.method!r} is not one of {sorted(METHODS)}")
    if cfg.modalities not in MODALITY_SUBSETS:
        p.append(f"modalities={cfg.modalities!r} must be one of {list(MODALITY_SUBSETS)} "
                 "(text is always used)")
    bad_terms = [t for t in cfg.disabled_losses if t not in HSCL_LOSS_TERMS]
    if bad_terms:
        p.append(f"disabled_losses has unknown term(s) {bad_terms}; valid: {list(HSCL_LOSS_TERMS)}")
    if "task" in cfg.disabled_losses:
        p.append("disabled_losses may not contain 'task' (nothing would train the regressor)")
    if cfg.sim_norm not in ("l2", "squared_l2"):
        p.append(f"sim_norm={cfg.sim_norm!r} must be 'l2' or 'squared_l2'")
    if cfg.label_info not in ("supcr", "infonce"):
        p.append(f"label_info={cfg.label_info!r} must be 'supcr' or 'infonce'")
    if cfg.select_metric not in ("mae", "corr", "acc2_non0"):
        p.append(f"select_metric={cfg.select_metric!r} must be 'mae', 'corr' or 'acc2_non0'")
    for name in ("omega1", "omega2", "alpha", "weight_decay"):
        if getattr(cfg, name) < 0:
            p.append(f"{name}={getattr(cfg, name)} must be >= 0")
    for name in ("tau", "lr_text", "lr_other", "lr_gamma", "grad_clip"):
        if not getattr(cfg, name) > 0:
            p.append(f"{name}={getattr(cfg, name)} must be > 0")
    if not 0.0 <= cfg.dropout < 1.0:
        p.append(f"dropout={cfg.dropout} must be in [0, 1)")
    for name in ("max_text_len", "av_layers", "audio_heads", "audio_ffn", "vision_heads",
                 "vision_ffn", "fusion_heads", "proj_dim", "batch_size", "max_epochs",
                 "patience", "lr_step_epoch"):
        if getattr(cfg, name) < 1:
            p.append(f"{name}={getattr(cfg, name)} must be >= 1")
    for name in ("synthetic_train", "synthetic_valid", "synthetic_test", "num_threads"):
        if getattr(cfg, name) < 0:
            p.append(f"{name}={getattr(cfg, name)} must be >= 0")
    return p
