"""What each section's runs were given, and when the report must say loudly that it is not a result.

A table of 1-epoch runs with a random text encoder, or of a real file cut to 128/64/64 samples,
looks like any other table. Every section therefore states its budget, read from MLflow only:

- data: the runs' dataset input (name, digest, source) and the split sizes they used. For a real
  file those come from the params ``synthetic_train/valid/test`` (> 0: the loader kept that many
  samples of each split; all 0: the whole file), because MLflow keeps one profile per (name,
  digest) — the first run's — so a cut and an uncut run of one file share a profile; the file's own
  sizes are taken from it only when `reports.runs.file_splits` can tell they are. Synthetic data
  has its sizes in its digest, and its profile is its own;
- text encoder (param ``text_encoder``), epochs (param ``max_epochs``; metric ``epochs_run`` as run),
  seeds; for sweeps the sampler (parent tag), trials and ASHA settings (``search_space.json``);
- a banner (`Budget.banner`) when the runs are a smoke run (sweep tag ``smoke=true``; a study's
  ``--smoke`` = the random ``tiny`` encoder on cut or generated-small splits), used a random text
  encoder, or cut a real file's splits (params ``synthetic_train/valid/test`` > 0 on non-synthetic
  data: the loader keeps that many samples of each split).

`BudgetKey` is what "like with like" means for the method table: same data digest, split sizes,
text encoder, ``max_epochs`` and seeds. Why one module: the banner, the budget table and the
comparability check must read the same facts the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping, Sequence

from reports.runs import SPLIT_NAMES, DataRecord
from reports.tables import TextTable

RANDOM_ENCODER = "tiny"  # the project's text encoder with random weights (README "Text encoder")
SIZE_PARAMS = tuple(f"synthetic_{s}" for s in SPLIT_NAMES)  # > 0: splits generated at / cut to that size
SMOKE_TAG = "smoke"  # a sweep parent's tag: "true" for a --smoke sweep
NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class SearchBudget:
    """A sweep's search stage: sampler, trials asked for and finished, ASHA."""

    sampler: str | None
    sampler_seed: str | None
    num_samples: int | None  # trials asked for (search_space.json)
    finished: int  # FINISHED search trials
    asha: Mapping[str, float]  # grace_period, reduction_factor, max_t
    epochs_run: tuple[float, float] | None  # min, max over the finished trials


@dataclass(frozen=True)
class BudgetKey:
    """Runs are comparable (one method table, Δ and paired tests) only when every field is equal."""

    digest: tuple[str, ...]
    splits: tuple[str, ...]
    text_encoder: tuple[str, ...]
    max_epochs: tuple[int, ...]
    seeds: tuple[int, ...]

    LABELS = {"digest": "data digest", "splits": "splits (train/valid/test)", "text_encoder": "text encoder",
              "max_epochs": "max_epochs", "seeds": "seeds"}

    def differences(self, other: "BudgetKey") -> list[str]:
        """The fields that differ, each as 'label: mine vs other'."""
        out = []
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if mine != theirs:
                out.append(f"{self.LABELS[f.name]} {_show(f.name, mine)} vs {_show(f.name, theirs)}")
        return out


@dataclass(frozen=True)
class Budget:
    """What one section's runs (or one method table's runs) were given."""

    scope: str  # how banners name it: 'sweep “hscl-mosi”'
    n_runs: int
    data_names: tuple[str, ...]
    digests: tuple[str, ...]
    sources: tuple[str, ...]
    synthetic: bool  # generated data (dataset input source_type "synthetic", or a synthetic name)
    splits: tuple[str, ...]  # the split sizes the runs used, as said: "128/64/64 (cut)", "1284/229/686 (whole file)"
    cut: tuple[tuple[int, int, int], ...]  # a real file's splits cut to these sizes (synthetic_* params)
    generated: tuple[tuple[int, int, int], ...]  # synthetic data generated at these sizes (synthetic_* params)
    file_splits: tuple[int, int, int] | None  # the real file's own sizes, when MLflow can tell them
    text_encoders: tuple[str, ...]
    max_epochs: tuple[int, ...]
    epochs_run: tuple[float, float] | None
    seeds: tuple[int, ...]
    smoke_tag: bool
    search: SearchBudget | None = None

    @property
    def random_encoder(self) -> bool:
        return RANDOM_ENCODER in self.text_encoders

    @property
    def sized(self) -> bool:
        """Some split size was set (cut from a file, or generated at that size)."""
        return bool(self.cut or self.generated)

    @property
    def truncated(self) -> bool:
        """A real file's splits were cut to fewer samples."""
        return bool(self.cut)

    @property
    def smoke(self) -> bool:
        """A --smoke run: the sweep says so, or a study's --smoke signature (tiny encoder, set sizes)."""
        return self.smoke_tag or (self.random_encoder and self.sized)

    def key(self) -> BudgetKey:
        return BudgetKey(self.digests or tuple(f"name {n}" for n in self.data_names), self.splits,
                         self.text_encoders, self.max_epochs, self.seeds)

    # --- what a reader sees ----------------------------------------------------------------------
    def banner(self) -> str | None:
        """'SMOKE RUN — sweep “x”: tiny random text encoder, 3 epochs, splits cut to …: not a result.'
        None for a budget with nothing to warn about."""
        if not (self.smoke or self.random_encoder or self.truncated):
            return None
        label = "SMOKE RUN" if self.smoke else ("RANDOM TEXT ENCODER" if self.random_encoder else "TRUNCATED SPLITS")
        parts = []
        if self.random_encoder:
            parts.append(f"{RANDOM_ENCODER} random text encoder")
        if self.max_epochs:
            parts.append(f"{_span(self.max_epochs)} epoch{'s' if max(self.max_epochs) != 1 else ''}")
        if self.truncated:
            parts.append(self.cut_text())
        elif self.generated:
            parts.append(f"generated splits {_sizes(self.generated)}")
        if self.search is not None and self.search.num_samples is not None:
            parts.append(f"{self.search.num_samples} search trial{'s' if self.search.num_samples != 1 else ''}")
        if self.seeds:
            parts.append(f"{len(self.seeds)} seed{'s' if len(self.seeds) != 1 else ''}")
        return f"{label} — {self.scope}: {', '.join(parts)}: not a result."

    def cut_text(self) -> str:
        """'splits cut to 128/64/64 (train/valid/test; test 64 of the file's 686)'."""
        used = _sizes(self.cut)
        if self.file_splits:
            tests = ", ".join(str(c[2]) for c in self.cut)
            whole = f"test {tests} of the file's {self.file_splits[2]}"
        else:
            whole = "the file's own sizes are not in this MLflow experiment"
        return f"splits cut to {used} (train/valid/test; {whole})"

    def table(self, id: str) -> TextTable:
        """The budget as a two-column table (first block of its section)."""
        rows = [("Data", self._data_text()), ("Data digest", ", ".join(self.digests) or
                                                 f"{NOT_RECORDED} (no dataset input)")]
        splits = "; ".join(self.splits) or NOT_RECORDED
        if self.truncated:
            splits += (f" — the file has {_sizes([self.file_splits])}" if self.file_splits
                       else " — the file's own sizes are not in this MLflow experiment")
        rows.append(("Splits used (train/valid/test)", splits))
        encoders = [f"{e} (random weights, not pre-trained)" if e == RANDOM_ENCODER else e for e in self.text_encoders]
        rows.append(("Text encoder", ", ".join(encoders) or NOT_RECORDED))
        epochs = f"max_epochs {_span(self.max_epochs)}" if self.max_epochs else f"max_epochs {NOT_RECORDED}"
        if self.epochs_run:
            epochs += f"; ran {_range(self.epochs_run)}"
        rows.append(("Epochs", epochs))
        rows.append(("Seeds", f"{', '.join(map(str, self.seeds))} ({len(self.seeds)})" if self.seeds else NOT_RECORDED))
        if self.search is not None:
            s = self.search
            text = f"Optuna {s.sampler.upper()}" if s.sampler else f"sampler {NOT_RECORDED}"
            text += f" (seed {s.sampler_seed})" if s.sampler_seed else ""
            planned = (f"{s.num_samples} trials asked for" if s.num_samples is not None
                       else f"trials asked for {NOT_RECORDED}")
            text += f"; {planned}, {s.finished} finished"
            if s.epochs_run:
                text += f" (ran {_range(s.epochs_run)} epochs)"
            rows.append(("Search", text))
            asha = ", ".join(f"{k} {v:g}" for k, v in s.asha.items()) if s.asha else NOT_RECORDED
            rows.append(("ASHA", asha))
        if self.smoke:
            why = "sweep tag smoke=true" if self.smoke_tag else f"{RANDOM_ENCODER} encoder on set split sizes"
            rows.append(("Smoke run", f"yes ({why})"))
        read = "dataset input, params, tags" + (" and search_space.json" if self.search is not None else "")
        counted = (f"{self.n_runs} final-stage runs, {self.search.finished} search trials" if self.search is not None
                   else f"{self.n_runs} runs")
        return TextTable(id=id, title="Budget", caption=f"What the runs of {self.scope} were given ({counted}; "
                         f"read from MLflow: {read}).",
                         headers=("Item", "Value"), rows=tuple(rows), numeric=(False, False))

    def _data_text(self) -> str:
        names = ", ".join(self.data_names) or NOT_RECORDED
        kind = "synthetic" if self.synthetic else "file"
        where = ", ".join(self.sources)
        return f"{names} ({kind}{': ' + where if where and where not in self.data_names else ''})"


def budget_of(frame: Any, *, scope: str, parent_tags: Mapping[str, str] | None = None,
              parent_data: DataRecord | None = None, search: SearchBudget | None = None,
              file_splits: Callable[[str], tuple[int, int, int] | None] | None = None) -> Budget:
    """The budget of the runs in `frame` (a tidy frame of `reports.runs`).

    `parent_data` stands in for runs without a dataset input; `file_splits(digest)` tells a real
    file's own sizes (`reports.runs.file_splits`).
    """
    tags = dict(parent_tags or {})
    n = int(len(frame))

    def column(name: str) -> list:
        return [v for v in (frame[name] if name in frame.columns else []) if _present(v)]

    names = _distinct(column("data_name")) or _distinct(column("dataset"))
    digests = _distinct(column("data_digest"))
    sources = _distinct(column("data_source"))
    source_types = _distinct(column("data_source_type"))
    if parent_data is not None:
        names = names or _distinct([parent_data.name])
        digests = digests or _distinct([parent_data.digest])
        sources = sources or _distinct([parent_data.source])
        source_types = source_types or _distinct([parent_data.source_type])
    synthetic = "synthetic" in source_types or (not source_types and any("synthetic" in x for x in names))
    whole = file_splits(digests[0]) if file_splits is not None and len(digests) == 1 and not synthetic else None
    splits, cut, generated = set(), set(), set()
    profiles = frame["data_splits"] if "data_splits" in frame.columns else [None] * n
    size_columns = [f"params.{p}" for p in SIZE_PARAMS]
    asked = zip(*(frame[c] for c in size_columns)) if all(c in frame.columns for c in size_columns) else [None] * n
    for sizes, profile in zip(asked, profiles):
        sizes = tuple(_int(v) for v in sizes) if sizes is not None and all(_present(v) for v in sizes) else None
        profile = profile if _present(profile) else (parent_data.splits if parent_data else None)
        set_sizes = sizes is not None and any(sizes)
        if synthetic:
            if set_sizes:
                generated.add(sizes)
            used = profile or (sizes if set_sizes else None)
            splits.add(f"{_sizes([used])}{' (generated)' if set_sizes else ''}" if used else NOT_RECORDED)
        elif set_sizes:
            cut.add(sizes)
            splits.add(f"{_sizes([sizes])} (cut)")
        elif sizes is not None:
            splits.add(f"{_sizes([whole])} (whole file)" if whole else "whole file (sizes not recorded)")
        else:
            splits.add(f"{_sizes([profile])} (as the dataset input says)" if profile else NOT_RECORDED)
    encoders = _distinct(str(v) for v in column("params.text_encoder"))
    max_epochs = tuple(sorted({_int(v) for v in column("params.max_epochs")}))
    run = [float(v) for v in column("metrics.epochs_run") if math.isfinite(float(v))]
    seeds = tuple(sorted({int(v) for v in column("seed")}))
    return Budget(scope=scope, n_runs=n, data_names=names, digests=digests, sources=sources, synthetic=synthetic,
                  splits=tuple(sorted(splits)), cut=tuple(sorted(cut)), generated=tuple(sorted(generated)),
                  file_splits=whole, text_encoders=encoders, max_epochs=max_epochs,
                  epochs_run=(min(run), max(run)) if run else None, seeds=seeds,
                  smoke_tag=str(tags.get(SMOKE_TAG, "")).lower() == "true", search=search)


def search_budget(search: Any, *, parent_tags: Mapping[str, str], space: Any | None) -> SearchBudget:
    """The search stage of a sweep: `search` = its FINISHED trials (tidy), `space` its `SpaceInfo`."""
    run = [float(v) for v in (search["metrics.epochs_run"] if "metrics.epochs_run" in search.columns else [])
           if _present(v) and math.isfinite(float(v))]
    return SearchBudget(sampler=parent_tags.get("sampler") or (space.sampler if space else None),
                        sampler_seed=parent_tags.get("sampler_seed"),
                        num_samples=space.num_samples if space else None, finished=int(len(search)),
                        asha=dict(space.asha) if space else {},
                        epochs_run=(min(run), max(run)) if run else None)


def banners(budgets: Sequence[Budget]) -> list[str]:
    """Distinct banners, in section order (the report's first screen lists them all)."""
    return list(dict.fromkeys(b for b in (x.banner() for x in budgets) if b))


# --- formatting -----------------------------------------------------------------------------------
def _sizes(splits: Sequence[Sequence[int]]) -> str:
    return ", ".join("/".join(str(n) for n in s) for s in splits)


def _span(values: Sequence[int]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def _range(pair: tuple[float, float]) -> str:
    lo, hi = pair
    return f"{lo:g}" if lo == hi else f"{lo:g}–{hi:g}"


def _show(field_name: str, value: tuple) -> str:
    """One field of a `BudgetKey` as a reader sees it (split descriptions hold commas: joined by ';')."""
    if not value:
        return NOT_RECORDED
    return ("; " if field_name == "splits" else ", ").join(map(str, value))


def _distinct(values: Any) -> tuple[str, ...]:
    """Sorted distinct values as text, missing ones left out."""
    return tuple(sorted({str(v) for v in values if _present(v)}))


def _present(v: Any) -> bool:
    """Not None / NaN / pandas.NA (a tuple, such as a run's split sizes, is present)."""
    import pandas as pd

    return isinstance(v, (tuple, list)) or not pd.isna(v)


def _int(v: Any) -> int:
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return 0
