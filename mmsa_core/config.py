"""The one typed configuration of a single training run: shared fields + the method's own.

`RunConfig` holds what every method shares (data, encoders, optimisation, hardware) as flat fields,
and the method's hyper-parameters as `method_params`, an instance of that method's own frozen
dataclass (`mmsa_core.methods.<name>.Params`), so HSCL's ``tau`` never collides with CLFA's.

Flattened (`to_dict`), the method's fields are namespaced ``<method>.<field>`` (``hscl.omega1``):
a flat dict of scalars is what Ray Tune samples, what MLflow stores as params and what an ablation
spec or ``--set`` overrides, and it carries only the shared fields plus those of its own method.
`from_dict` reads that form back (types come from the annotations) and refuses unknown keys and
another method's keys, naming the valid ones and the closest match. (Records written before the
keys were namespaced are upgraded where the sweep layer reads them: `sweeps.compat`.)

Shared defaults are the HSCL authors' CMU-MOSI values; `DATASET_SETTINGS` holds what every method
shares on a dataset (the data, and encoder shapes that must fit its feature widths), applied before a
method's own paper preset (`RunConfig.paper(method, dataset)`), which changes what its paper does. Derived values
(feature widths, the text width) are read from data and the encoder at build time, never stored.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import typing
from dataclasses import dataclass, fields
from typing import Any, Literal, Mapping

from mmsa_core.methods import get_method, method_names
from mmsa_core.methods.base import MODALITY_SUBSETS, MethodParams  # noqa: F401  (re-exported)

SYNTHETIC_SOURCES: tuple[str, ...] = ("synthetic-mosi", "synthetic-mosei")
DATASET_PRESETS: tuple[str, ...] = ("mosi", "mosei")
PRESET_CHOICES: tuple[str, ...] = ("auto", *DATASET_PRESETS)  # what every entry point's --preset takes
# What every method shares on a dataset, applied before a method's own paper preset: the data, and
# the acoustic / visual encoders' shapes, which must fit the dataset's feature widths (heads divide
# the width: MOSI 5 / 20 -> 1 / 5 heads, MOSEI 74 / 35 -> 2 / 5). The shared defaults are MOSI's.
DATASET_SETTINGS: Mapping[str, Mapping[str, Any]] = {
    "mosi": {},
    "mosei": dict(data="synthetic-mosei", audio_heads=2, audio_ffn=32, vision_heads=5, vision_ffn=32),
}


# Fields that decide the dataset arrays (`mmsa_core.trainer.load_run_data`): configurations that agree
# on them train on one loaded dataset (a study loads it once for every run).
DATA_FIELDS: tuple[str, ...] = ("data", "text_encoder", "max_text_len", "synthetic_train", "synthetic_valid",
                                "synthetic_test")
# Fields that say where a run ran, not what it trained: a resumed run or study may change them.
PLACEMENT_FIELDS: tuple[str, ...] = ("device", "num_threads")


def resolve_preset(preset: str, data: str) -> str:
    """``mosi`` | ``mosei``: `preset` as given, or for ``auto`` the one `data`'s name implies."""
    if preset not in PRESET_CHOICES:
        raise ValueError(f"--preset {preset!r}: expected one of {list(PRESET_CHOICES)}")
    return dataset_preset_for(data) if preset == "auto" else preset


def dataset_preset_for(data: str) -> str:
    """``mosei`` when the data's file name, or the folder of a generic file name, says MOSEI, else
    ``mosi`` (``--preset auto`` before the data is loaded; drivers that load it check the feature
    widths with `mmsa_core.data.naming.preset_from_widths`)."""
    from mmsa_core.data.naming import preset_from_name

    return preset_from_name(data)


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs; shared defaults = HSCL paper, MOSI column (docs/METHODS.md, HSCL §6)."""

    # --- what to train ------------------------------------------------------------------
    method: str = "hscl"  # a method of the registry (mmsa_core.methods.method_names())
    data: str = "synthetic-mosi"  # MMSA pickle / converted dir, or a synthetic name
    text_encoder: str = "minilm"  # "minilm" (packaged, pretrained), "tiny" (random), or a HF dir
    modalities: str = "tav"  # subset of t/a/v; text is always present
    disabled_losses: tuple[str, ...] = ()  # loss terms switched off by name (ablations)

    # --- shared encoders (docs/METHODS.md, HSCL §1, §3) ----------------------------------
    max_text_len: int = 50  # tokens; the MMSA files are padded to 50
    av_layers: int = 3  # Transformer layers per acoustic/visual encoder
    audio_heads: int = 1  # MOSI acoustic width 5 -> 1 head
    audio_ffn: int = 32
    vision_heads: int = 5  # MOSI visual width 20 -> 5 heads
    vision_ffn: int = 64
    fusion_heads: int = 12  # text-as-query fusion blocks (paper: 12 heads at 768)
    # fusion feed-forward width as a multiple of d_t: 1 = the authors' d_t -> d_t (HSCL §3);
    # 4 = a standard Transformer layer's 4 x d_t, this project's width before 2026-12 (+7 M params at 768)
    fusion_ffn_mult: int = 1
    proj_dim: int = 128  # projection heads FC_m
    dropout: float = 0.1

    # --- optimisation (docs/METHODS.md, HSCL §6) -----------------------------------------
    lr_text: float = 5e-5
    lr_other: float = 1e-3
    weight_decay: float = 1e-4
    lr_step_epoch: int = 11  # StepLR step size (x0.1 after this many epochs)
    lr_gamma: float = 0.1
    batch_size: int = 128
    max_epochs: int = 20
    patience: int = 10  # early stopping on the validation selection metric
    grad_clip: float = 1.0
    select_metric: Literal["mae", "corr", "acc2_non0"] = "mae"  # validation metric for selection

    # --- reproducibility / hardware -------------------------------------------------------
    seed: int = 1111
    deterministic: bool = True
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    amp: bool = True  # mixed precision, used on CUDA only
    num_threads: int = 0  # torch intra-op threads; 0 = leave torch's default

    # --- synthetic data size (only read when `data` is a synthetic name) ------------------
    synthetic_train: int = 0  # 0 = the dataset's real split sizes
    synthetic_valid: int = 0
    synthetic_test: int = 0

    # --- the method's own hyper-parameters ------------------------------------------------
    method_params: MethodParams | None = None  # None -> the method's defaults

    # ------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        if self.method not in method_names():
            raise ValueError(f"invalid RunConfig: method={self.method!r} is not one of "
                             f"{list(method_names())}")
        method = get_method(self.method)
        if self.method_params is None:
            object.__setattr__(self, "method_params", method.defaults())
        elif type(self.method_params) is not method.params:
            raise ValueError(f"invalid RunConfig: method_params is a {type(self.method_params).__qualname__}"
                             f" from {type(self.method_params).__module__}, but method {self.method!r}"
                             f" takes {method.params.__module__}.{method.params.__qualname__}")
        object.__setattr__(self, "disabled_losses", tuple(self.disabled_losses))
        problems = _problems(self)
        if problems:
            raise ValueError("invalid RunConfig: " + "; ".join(problems))

    # presets ------------------------------------------------------------------------------
    @classmethod
    def paper(cls, method: str = "hscl", dataset: str = "mosi", **values: Any) -> "RunConfig":
        """`method`'s paper configuration for `dataset` (mosi | mosei): the dataset's shared settings
        (`DATASET_SETTINGS`), then the method's own preset, then `values` (keys as in `from_dict`)."""
        if dataset not in DATASET_PRESETS:
            raise ValueError(f"unknown dataset preset {dataset!r}; valid: {list(DATASET_PRESETS)}")
        m = get_method(method)
        preset = {**DATASET_SETTINGS[dataset], **m.preset(dataset)}
        own = {k: preset.pop(k) for k in list(preset) if k in m.field_names()}
        start = cls(method=method, method_params=dataclasses.replace(m.defaults(), **own), **preset)
        return cls.from_dict(values, base=start, source=f"{method} {dataset} preset") if values else start

    @classmethod
    def paper_mosi(cls, **values: Any) -> "RunConfig":
        """The CMU-MOSI preset of ``values['method']`` (default hscl)."""
        return cls.paper(values.pop("method", "hscl"), "mosi", **values)

    @classmethod
    def paper_mosei(cls, **values: Any) -> "RunConfig":
        """The CMU-MOSEI preset of ``values['method']`` (default hscl)."""
        return cls.paper(values.pop("method", "hscl"), "mosei", **values)

    # access ---------------------------------------------------------------------------------
    @property
    def params(self) -> Any:
        """The method's own hyper-parameters (typed by the method's Params dataclass)."""
        return self.method_params

    def get(self, key: str) -> Any:
        """Value of a flat key: a shared field, or ``<method>.<field>``."""
        flat = self.to_dict()
        if key not in flat:
            raise KeyError(f"{key!r} is not a key of this {self.method} configuration; keys: {sorted(flat)}")
        return flat[key]

    # conversions ---------------------------------------------------------------------------
    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with shared fields changed; a new `method` starts from its own defaults."""
        if "method" in changes and changes["method"] != self.method and "method_params" not in changes:
            changes["method_params"] = None
        return dataclasses.replace(self, **changes)

    def with_params(self, **changes: Any) -> "RunConfig":
        """A copy with the method's own fields changed (bare names)."""
        return dataclasses.replace(self, method_params=dataclasses.replace(self.method_params, **changes))

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-able dict: shared fields, then ``<method>.<field>`` (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in shared_fields():
            value = getattr(self, f)
            out[f] = list(value) if isinstance(value, tuple) else value
        for f in fields(self.method_params):
            value = getattr(self.method_params, f.name)
            out[f"{self.method}.{f.name}"] = list(value) if isinstance(value, tuple) else value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, base: "RunConfig | None" = None,
                  source: str = "config") -> "RunConfig":
        """Build from flat keys, casting strings (MLflow params, CLI) to the annotated types.

        `values` may change the method; its own keys then start from that method's defaults.
        Unknown keys, or keys of another method, raise one error naming the valid keys; `source`
        names where the mapping came from (a file, a variant) so the message points at it.
        """
        start = base if base is not None else cls()
        method = str(values.get("method", start.method))
        if method not in method_names():
            raise ValueError(f"{source}: unknown method {method!r}; registered methods: {list(method_names())}")
        m = get_method(method)
        shared_types = _shared_types()
        own_types = _field_types(m.params)
        shared: dict[str, Any] = {}
        own: dict[str, Any] = {}
        unknown: list[str] = []
        foreign: list[str] = []
        for key, value in values.items():
            key = str(key)
            if key in shared_types:
                shared[key] = _cast(key, shared_types[key], value, source)
            elif key.startswith(f"{method}.") and key[len(method) + 1:] in own_types:
                name = key[len(method) + 1:]
                own[name] = _cast(key, own_types[name], value, source)
            elif "." in key and key.split(".", 1)[0] in method_names() and key.split(".", 1)[0] != method:
                foreign.append(key)
            else:
                unknown.append(key)
        problems = []
        if foreign:
            problems.append(f"key(s) {sorted(foreign)} belong to another method, but this configuration's "
                            f"method is {method!r}; its own keys: {list(m.keys())}")
        if unknown:
            valid = sorted(shared_fields()) + list(m.keys())
            hints = [h for h in (_suggestion(k, method, valid) for k in sorted(unknown)) if h]
            problems.append(f"unknown configuration field(s) {sorted(unknown)}"
                            + (f" ({'; '.join(hints)})" if hints else "") + f"; valid fields: {valid}")
        if problems:
            raise ValueError(f"{source}: " + "; ".join(problems))
        params = start.method_params if method == start.method else m.defaults()
        try:
            params = dataclasses.replace(params, **own)
            shared["method"] = method
            return dataclasses.replace(start, method_params=params, **shared)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{source}: {exc}") from None

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The shared field names (every method has them)."""
        return shared_fields()

    def keys(self) -> tuple[str, ...]:
        """Every flat key of this configuration (shared + this method's)."""
        return tuple(self.to_dict())

    @property
    def method_spec(self):
        """The registry entry of this configuration's method."""
        return get_method(self.method)

    @property
    def active_losses(self) -> tuple[str, ...]:
        """Loss terms that are computed for this config (modalities and switches applied)."""
        return self.method_spec.active_terms(self)


def parse_assignments(items: "list[str] | tuple[str, ...]", *, flag: str = "--set") -> dict[str, str]:
    """``["hscl.tau=0.3", "modalities=ta"]`` -> ``{"hscl.tau": "0.3", "modalities": "ta"}`` (values stay
    strings; `RunConfig.from_dict` casts them). Every CLI's ``--set KEY=VALUE`` goes through here."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"{flag} {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def method_keys(method: str) -> tuple[str, ...]:
    """Every flat key a configuration of `method` has (shared + its own)."""
    return shared_fields() + get_method(method).keys()


# ---------------------------------------------------------------------------------------------
# types from annotations


@functools.cache
def shared_fields() -> tuple[str, ...]:
    return tuple(f.name for f in fields(RunConfig) if f.name != "method_params")


@functools.cache
def _shared_types() -> dict[str, Any]:
    hints = typing.get_type_hints(RunConfig)
    return {f: hints[f] for f in shared_fields()}


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def _suggestion(key: str, method: str, valid: list[str]) -> str:
    """"did you mean ...?" for an unknown key: a method field given without its namespace
    (``tau`` -> ``hscl.tau``), else the closest valid key (``hscl.omgea1`` -> ``hscl.omega1``)."""
    if f"{method}.{key}" in valid:
        return f"{key!r} is {method + '.' + key!r}: a method's fields are namespaced by the method"
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.75)
    return f"did you mean {close[0]!r} for {key!r}?" if close else ""


_BOOL_STRINGS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def _cast(name: str, hint: Any, value: Any, source: str) -> Any:
    """`value` as the annotated type `hint` (bool, int, float, str, Literal, tuple[...])."""
    origin = typing.get_origin(hint)
    try:
        if origin is Literal:
            choices = typing.get_args(hint)
            cast = _cast(name, type(choices[0]), value, source)
            if cast not in choices:
                raise ValueError(f"must be one of {list(choices)}")
            return cast
        if origin is tuple or hint is tuple:
            args = typing.get_args(hint)
            item = args[0] if args else str
            if isinstance(value, str):
                text = value.strip()
                if text.startswith("["):  # JSON list, as MLflow gives params back
                    items = json.loads(text)
                else:
                    items = [p.strip().strip("'\"") for p in text.strip("()").split(",") if p.strip()]
            else:
                items = list(value)
            return tuple(_cast(name, item, v, source) for v in items)
        if hint is bool:
            if isinstance(value, str):
                return _BOOL_STRINGS[value.strip().lower()]
            if isinstance(value, (int, float)) and value not in (0, 1):
                raise ValueError(f"{value} is not a bool")
            return bool(value)
        if hint is int:
            if isinstance(value, bool):
                raise ValueError("a bool is not an integer")
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError(f"{value} is not an integer")
            return int(number)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError("a bool is not a number")
            return float(value)
        if hint is str:
            return str(value)
        raise TypeError(f"unsupported annotation {hint!r}")
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        kind = getattr(hint, "__name__", str(hint))
        raise ValueError(f"{source}: field {name!r} expects {kind}, got {value!r} ({exc})") from None


def _literal_problems(obj: Any, prefix: str) -> list[str]:
    out = []
    for name, hint in _field_types(type(obj)).items():
        if typing.get_origin(hint) is Literal and getattr(obj, name) not in typing.get_args(hint):
            out.append(f"{prefix}{name}={getattr(obj, name)!r} must be one of {list(typing.get_args(hint))}")
    return out


def _problems(cfg: RunConfig) -> list[str]:
    """Every invalid value of `cfg`, as readable sentences (empty = valid)."""
    method = get_method(cfg.method)
    p: list[str] = _literal_problems(cfg, "")
    if cfg.modalities not in method.modality_subsets:
        p.append(f"modalities={cfg.modalities!r} must be one of {list(method.modality_subsets)} "
                 f"for method {cfg.method!r} (text is always used)")
    bad_terms = [t for t in cfg.disabled_losses if t not in method.terms]
    if bad_terms:
        p.append(f"disabled_losses has unknown term(s) {bad_terms}; method {cfg.method!r} has terms "
                 f"{list(method.terms)}")
    if "task" in cfg.disabled_losses:
        p.append("disabled_losses may not contain 'task' (nothing would train the regressor)")
    if cfg.weight_decay < 0:
        p.append(f"weight_decay={cfg.weight_decay} must be >= 0")
    for name in ("lr_text", "lr_other", "lr_gamma", "grad_clip"):
        if not getattr(cfg, name) > 0:
            p.append(f"{name}={getattr(cfg, name)} must be > 0")
    if not 0.0 <= cfg.dropout < 1.0:
        p.append(f"dropout={cfg.dropout} must be in [0, 1)")
    for name in ("max_text_len", "av_layers", "audio_heads", "audio_ffn", "vision_heads",
                 "vision_ffn", "fusion_heads", "fusion_ffn_mult", "proj_dim", "batch_size", "max_epochs",
                 "patience", "lr_step_epoch"):
        if getattr(cfg, name) < 1:
            p.append(f"{name}={getattr(cfg, name)} must be >= 1")
    for name in ("synthetic_train", "synthetic_valid", "synthetic_test", "num_threads"):
        if getattr(cfg, name) < 0:
            p.append(f"{name}={getattr(cfg, name)} must be >= 0")
    prefix = f"{cfg.method}."
    p += _literal_problems(cfg.method_params, prefix)
    p += [prefix + q for q in cfg.method_params.problems()]
    if method.check is not None:
        p += method.check(cfg)
    return p
