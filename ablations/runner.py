"""An ablation study: every (variant, seed) of a validated spec, run by the one study driver.

`ablation_study(spec)` describes the study (`ablations.study.Study`) and `run_ablation(spec, runtime)`
runs it (`ablations.study.run_study`). What is the ablation's own:

- the runs: one per (variant, seed), key ``<variant>-seed<seed>``, child tags ``stage=ablation``,
  ``ablation=<variant>``, ``seed``, ``reference``; one grid, ``grid-<hash of its runs>`` (adding
  seeds or variants starts a new grid holding only the pairs not yet finished);
- the parent (``kind=ablation``): tags ``method``, ``reference_variant``, ``variants``, ``seeds``,
  ``spec_source``, ``config_hash`` (and ``base_sweep``), artifacts ``ablation_spec.yaml`` and
  ``ablation_configs.json``; its summary ``ablation_summary.json`` (mean ± std over seeds per variant);
- a ``{sweep: ...}`` base resolved from the sweep's parent run (``best_config.json``), the spec
  then validated again on it;
- the spec's ``robustness:`` block: the reference variant's runs evaluated on corrupted test splits
  (`ablations.evaluation.TestTimeEvaluation`; kind ``tokens`` = the field's MMSA masking with the
  run's tokenizer's [UNK]), metrics ``robust/<kind>-<modalities>/r<rate>/test/<m>``.

Imports Ray, MLflow and torch only inside functions (through `sweeps` and `mmsa_core`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ablations.spec import AblationSpec, AblationSpecError, Trial
from ablations.study import Study, StudyError, StudyGrid, StudyOutcome, StudySummary, mean_std, run_study, runs_digest
from mmsa_core.record_names import Tag, bool_tag
from sweeps.preflight import redact_uri  # stdlib only

if TYPE_CHECKING:
    from ablations.evaluation import TestTimeEvaluation
    from mmsa_core.config import RunConfig
    from sweeps.config import GridRunResult
    from sweeps.runtime_options import RuntimeOptions
    from sweeps.tracking import Tracker

log = logging.getLogger("ablations")
KIND = "ablation"
STAGE = "ablation"
SPEC_ARTIFACT = "ablation_spec.yaml"
CONFIGS_ARTIFACT = "ablation_configs.json"
SUMMARY_ARTIFACT = "ablation_summary.json"
SUMMARY_METRICS = ("mae", "corr", "acc2_non0", "f1_non0", "acc7")


def run_key(variant: str, seed: int) -> str:
    """The child run's lookup key (unique under the study's parent run)."""
    return f"{variant}-seed{seed}"


def grid_name(spec: AblationSpec) -> str:
    """``grid-<hash>`` of the (variant, seed) runs: the Tune experiment a re-run restores."""
    return "grid-" + runs_digest([(run_key(t.variant, t.seed), t.config.to_dict()) for t in spec.trials()])


def ablation_study(spec: AblationSpec, *, robustness: bool = True) -> Study:
    """The study `spec` describes (its base already resolved when it names a sweep)."""
    from sweeps.config import GridRun

    trials = spec.trials()
    runs = tuple(GridRun(key=run_key(t.variant, t.seed), config=t.config, name=f"{spec.name}-{run_key(t.variant, t.seed)}",
                         tags={Tag.STAGE: STAGE, Tag.ABLATION: t.variant, Tag.SEED: str(t.seed),
                               Tag.REFERENCE: bool_tag(t.reference)})
                 for t in trials)
    tags = {Tag.METHOD: spec.method, Tag.CONFIG_HASH: spec.fingerprint(), "reference_variant": spec.reference,
            "variants": ",".join(spec.variant_names()), Tag.SEEDS: ",".join(map(str, spec.seeds)),
            "spec_source": spec.source}
    if spec.base_sweep is not None:
        tags[Tag.BASE_SWEEP] = spec.base_sweep
    configs = spec.configs()
    configs = {spec.reference: configs[spec.reference], **configs}  # the reference decides the data
    evaluation = None
    if robustness and spec.robustness is not None:
        evaluation = reference_evaluation(spec, [r.key for r, t in zip(runs, trials) if t.reference])
    note = (f"{spec.method} ablation on {{data}} (train/valid/test {{sizes}}): "
            f"{len(spec.variants)} variants ({', '.join(spec.variant_names())}; reference {spec.reference}) x "
            f"seeds {','.join(map(str, spec.seeds))}" + (f", from sweep {spec.base_sweep}" if spec.base_sweep else "") + ".")
    return Study(kind=KIND, name=spec.name, folder="ablations", source=spec.source, configs=configs,
                 grids=(StudyGrid(name=grid_name(spec), runs=runs, label="ablation"),),
                 parent_tags=tags, child_tags={Tag.METHOD: spec.method}, description=note,
                 artifacts={SPEC_ARTIFACT: spec.to_yaml(), CONFIGS_ARTIFACT: {v: c.to_dict() for v, c in configs.items()}},
                 evaluation=evaluation, summarize=lambda outcome: _summary(spec, outcome))


def reference_evaluation(spec: AblationSpec, keys: list[str]) -> "TestTimeEvaluation":
    """The spec's ``robustness:`` block as the evaluation of the reference runs `keys`."""
    import dataclasses

    from ablations.evaluation import TestTimeEvaluation
    from mmsa_core.data.corruption import MASKING_KIND
    from mmsa_core.data.masking import tokenizer_unk_id

    assert spec.robustness is not None
    corruptions = []
    for c in spec.robustness.corruptions():
        if c.kind == MASKING_KIND:  # the field's masking: the run's tokenizer's [UNK]
            c = dataclasses.replace(c, unk_token_id=tokenizer_unk_id(spec.config(spec.reference).text_encoder))
        corruptions.append(c)
    return TestTimeEvaluation(corruptions=tuple(corruptions), run_keys=frozenset(keys))


def run_ablation(spec: AblationSpec, runtime: "RuntimeOptions", *, robustness: bool = True) -> "AblationSummary":
    """Train every (variant, seed) of `spec` not yet finished, then log robustness metrics."""
    from sweeps.tracking import Tracker

    if spec.base_sweep is not None and spec.resolved_base is None:
        spec = resolve_sweep_base(spec, Tracker(runtime.resolved_tracking_uri()))
    outcome = run_study(ablation_study(spec, robustness=robustness), runtime)
    return AblationSummary(spec, outcome)


def validate_only(spec: AblationSpec, runtime: "RuntimeOptions") -> str:
    """Describe the validated spec; resolve a sweep base when the tracking store exists."""
    from ablations.validate import describe

    notes = []
    if spec.base_sweep is not None:
        uri = runtime.resolved_tracking_uri()
        if uri.startswith("sqlite:///") and not os.path.exists(uri[len("sqlite:///"):]):
            notes.append(f"base sweep {spec.base_sweep!r} not resolved: no MLflow store at {uri} "
                         "(validated against the preset instead)")
        else:
            from sweeps.tracking import Tracker

            spec = resolve_sweep_base(spec, Tracker(uri))
            notes.append(f"base resolved from the MLflow store {uri}")
    return "\n".join([describe(spec), *notes, "valid: nothing was run (--validate-only)"])


# =============================================================================================
# results


@dataclass
class AblationSummary:
    """What `run_ablation` did, and the study's results (mean ± std over seeds per variant)."""

    spec: AblationSpec
    outcome: StudyOutcome

    @property
    def ok(self) -> bool:
        return self.outcome.ok

    @property
    def results(self) -> list[tuple[Trial, "GridRunResult"]]:
        trials = {run_key(t.variant, t.seed): t for t in self.spec.trials()}
        return [(trials[run.key], res) for run, res in self.outcome.results]

    def per_variant(self) -> dict[str, dict[str, tuple[float, float, int]]]:
        """variant -> metric -> (mean, std, n) of ``best/test/<metric>`` over its finished seeds."""
        return per_variant(self.spec, self.outcome)

    def format(self) -> str:
        s, o = self.spec, self.outcome
        lines = [f"\nablation {s.name!r} ({s.method} on {o.dataset}): {len(o.results)} runs = "
                 f"{len(s.variants)} variants x {len(s.seeds)} seeds; {o.finished_before} finished "
                 f"before, {o.to_train} trained now"]
        for t, r in self.results:
            if r.status not in ("FINISHED", "SKIPPED"):
                tail = (r.error or "").splitlines()[-1:] if r.error else ""
                lines.append(f"  {r.status}: {t.variant} seed {t.seed}" + (f" ({tail})" if tail else ""))
        table = self.per_variant()
        ref = table.get(s.reference, {})
        lines.append("test metrics at the best validation epoch, mean ± std over seeds (Δ = variant − reference):")
        lines.append(f"  {'variant':<18}{'n':>3}" + "".join(f"{m:>22}" for m in SUMMARY_METRICS[:3]))
        for v, row in table.items():
            cells = []
            for m in SUMMARY_METRICS[:3]:
                if m not in row:
                    cells.append(f"{'-':>22}")
                    continue
                mean, std, _ = row[m]
                delta = "" if v == s.reference or m not in ref else f" Δ{mean - ref[m][0]:+.3f}"
                cells.append(f"{f'{mean:.3f}±{std:.3f}{delta}':>22}")
            n = max((x[2] for x in row.values()), default=0)
            mark = " (ref)" if v == s.reference else ""
            lines.append(f"  {(v + mark):<18}{n:>3}" + "".join(cells))
        if o.evaluated:
            how: dict[str, int] = {}
            for v in o.evaluated.values():
                how[v] = how.get(v, 0) + 1
            lines.append("robustness metrics on the reference runs: " + ", ".join(f"{n} {k}" for k, n in sorted(how.items())))
        lines += [f"note: {n}" for n in o.notes]
        lines.append(o.where())
        return "\n".join(lines)


def per_variant(spec: AblationSpec, outcome: StudyOutcome) -> dict[str, dict[str, tuple[float, float, int]]]:
    rows: dict[str, list[dict[str, float]]] = {v: [] for v in spec.variant_names()}
    for run, res in outcome.results:
        if res.status in ("FINISHED", "SKIPPED") and res.best_test:
            rows[run.tags[Tag.ABLATION]].append(res.best_test)
    out: dict[str, dict[str, tuple[float, float, int]]] = {}
    for v, found in rows.items():
        out[v] = {m: mean_std([r[m] for r in found if m in r]) for m in SUMMARY_METRICS if any(m in r for r in found)}
    return out


def _summary(spec: AblationSpec, outcome: StudyOutcome) -> StudySummary:
    table = per_variant(spec, outcome)
    means = {v: row["mae"][0] for v, row in table.items() if "mae" in row}
    ref = table.get(spec.reference, {})
    metrics = {f"reference/test/{m}": ref[m][0] for m in ("mae", "acc2_non0") if m in ref}
    return StudySummary(
        artifact_name=SUMMARY_ARTIFACT,
        artifact={"study": spec.name, "reference": spec.reference, "seeds": list(spec.seeds),
                  "test": {v: {m: {"mean": x[0], "std": x[1], "n": x[2]} for m, x in row.items()}
                           for v, row in table.items()},
                  "runs": [{"variant": run.tags[Tag.ABLATION], "seed": int(run.tags[Tag.SEED]), "run_id": r.run_id,
                            "status": r.status, "best_epoch": r.best_epoch} for run, r in outcome.results]},
        description=("Test mae, mean over seeds: " + ", ".join(
            f"{v} {m:.4f}" for v, m in sorted(means.items(), key=lambda kv: kv[1])) + ".") if means else "",
        metrics=metrics)


# =============================================================================================
# base configuration from a sweep


def resolve_sweep_base(spec: AblationSpec, tracker: "Tracker") -> AblationSpec:
    """`spec` on the best configuration of the sweep its base names (by name or parent run id)."""
    from ablations.spec import spec_on_base

    assert spec.base_sweep is not None
    cfg = sweep_best_config(tracker, spec.base_sweep, method=spec.method, data=spec.data, source=spec.source)
    return spec_on_base(spec, cfg)


def sweep_best_config(tracker: "Tracker", name: str, *, method: str, data: str, source: str) -> "RunConfig":
    """The best configuration (``best_config.json``) of the finished sweep `name` (name or parent run id).

    Looks in `data`'s experiment first, then in every ``mmsa-*`` experiment; refuses a sweep of
    another method, naming it (`source` says where the request came from).
    """
    from mmsa_core.config import RunConfig
    from sweeps.config import data_name
    from sweeps.tracking import experiment_name

    client = tracker.client
    wanted = experiment_name(data_name(data))
    exps = client.search_experiments()
    exps.sort(key=lambda e: (e.name != wanted, e.name))
    parent = None
    available: list[str] = []
    for exp in exps:
        if not exp.name.startswith("mmsa-"):
            continue
        runs = client.search_runs([exp.experiment_id], filter_string="tags.kind = 'sweep'", max_results=1000)
        runs = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        available += [r.data.tags.get("sweep_name", r.info.run_name) for r in runs]
        hits = [r for r in runs if name in (r.info.run_id, r.data.tags.get("sweep_name"), r.info.run_name)]
        if hits:
            parent = max(hits, key=lambda r: r.info.start_time or 0)  # the newest of that name
            break
    if parent is None:
        raise StudyError(f"{source}: base sweep {name!r} not found at {redact_uri(tracker.tracking_uri)}; "
                               f"sweeps there: {sorted(set(available)) or '(none)'}")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        local = client.download_artifacts(parent.info.run_id, "best_config.json")
        with open(local) as f:
            best = json.load(f)
    except Exception as exc:  # noqa: BLE001 - any store error means the same to the user
        raise StudyError(f"{source}: sweep {name!r} (run {parent.info.run_id}) has no readable "
                               f"best_config.json ({exc}); has its search stage finished?") from None
    values = dict(best.get("config", best))
    values.pop("_run", None)
    cfg = RunConfig.from_dict(values, source=f"best_config.json of sweep {name!r}")
    if cfg.method != method:
        raise AblationSpecError(source, [f"base: sweep {name!r} tuned method {cfg.method!r}, "
                                         f"the study runs {method!r}"])
    if data_name(cfg.data) != data_name(data):
        log.warning("sweep %r was tuned on %s; the study runs on %s", name, cfg.data, data)
    return cfg


