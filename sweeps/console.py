"""What a person at the terminal sees: one line per trial event, a header per stage, a summary.

Why a module of its own: the human-facing output is the command line's concern, not the sweep's.
`TrialConsole` writes the trial-event lines; `sweeps.tune_objects.ConsoleCallback`, the driver-side
Tune callback, calls it (this module imports no Ray; Tune pickles both into ``tuner.pkl``, so
`TrialConsole`'s name and attributes are part of the on-disk format, `sweeps.tune_objects`);
`print_result` reads a finished `SweepResult`.

Verbosity (``--verbose``): 0 = the final summary only; 1 (default) = stage headers and one line per
trial event (started with its searched parameters, a new best of the stage, stopped by ASHA / by
patience / finished / failed with the error's first line); 2 and 3 = also a line per epoch of every
trial, Ray Tune's own reporter at its verbosity 2 / 3 (trial tables, configurations, TensorBoard
hint) and Ray Train's checkpoint messages. `ray_verbosity` maps ours onto Ray Tune's.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from sweeps import objective as obj
from sweeps.state import JOURNAL_FILE

if TYPE_CHECKING:
    from sweeps.config import SweepResult

_SET_OLD_ENGINE = False  # whether `ray_verbosity` chose Ray's older output engine
_STOP_WORDS = {"scheduler": "stopped by ASHA", "patience": "stopped by patience",
               "max_epochs": "finished"}


def ray_verbosity(verbose: int) -> int:
    """Ray Tune's ``RunConfig(verbose=...)`` for our ``--verbose``: silent below 2.

    Silent needs Ray's older output engine too (``RAY_AIR_NEW_OUTPUT=0``, read when ``fit``
    starts): the new one prints its experiment box and TensorBoard hint even at verbosity 0.
    """
    global _SET_OLD_ENGINE
    if verbose < 2:
        _SET_OLD_ENGINE = _SET_OLD_ENGINE or os.environ.get("RAY_AIR_NEW_OUTPUT") != "0"
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
        return 0
    if _SET_OLD_ENGINE:  # ours, from an earlier quiet stage of this process: Ray's default again
        os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        _SET_OLD_ENGINE = False
    return verbose


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "[]"
    return str(value)


def first_error_line(text: str) -> str:
    """The exception line of a Ray error file / traceback (its last unindented line)."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if not ln[0].isspace() and not ln.startswith(("Traceback", "Failure #", "ray::")):
            return ln[:300]
    return lines[-1][:300] if lines else "unknown error"


class TrialConsole:
    """One line per trial event of a stage, printed by the driver (see the module docstring).

    Its methods take Tune's ``Trial`` objects (``trial_id``, ``config``, ``last_result``), given
    by `sweeps.tune_objects.ConsoleCallback`.

    `searched`: the parameters a search trial's start line shows (a grid run shows its key and
    tags instead); `metric`/`mode`: the selection metric (``valid/<metric>``) and its direction.
    """

    def __init__(self, *, stage: str, total: int, resources: str, metric: str, mode: str,
                 max_epochs: int, searched: Sequence[str] = (), verbose: int = 1,
                 note: str = "") -> None:
        self.stage, self.total, self.resources = stage, total, resources
        self.metric, self.mode, self.max_epochs = metric, mode, max_epochs
        self.searched, self.verbose, self.note = list(searched), verbose, note
        self.started: dict[str, int] = {}
        self.best: tuple[float, str, int] | None = None
        self.stream: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "stream": None}

    # ------------------------------------------------------------------------------------------
    def _print(self, text: str) -> None:
        out = self.stream or sys.stdout
        print(text, file=out, flush=True)

    def _better(self, value: float, than: float) -> bool:
        return value < than if self.mode == "min" else value > than

    def _label(self, trial: Any) -> str:
        run = trial.config.get("_run") if isinstance(trial.config, dict) else None
        n = self.started.get(trial.trial_id)
        num = f" {n}/{self.total}" if n else ""
        return f"[{self.stage}{num}] {run['key'] if run else 'trial ' + trial.trial_id}"

    def stage_started(self) -> None:
        note = f", {self.note}" if self.note else ""
        self._print(f"== {self.stage}: {self.total} trial(s), {self.resources} per trial, up to "
                    f"{self.max_epochs} epochs{note} ==")

    def trial_started(self, trial: Any) -> None:
        if trial.trial_id in self.started:  # a retry, or a restored sweep
            self._print(f"{self._label(trial)} restarted {resume_point(trial)}")
            return
        self.started[trial.trial_id] = len(self.started) + 1
        config = trial.config if isinstance(trial.config, dict) else {}
        run = config.get("_run")
        if run:
            tags = {k: v for k, v in run.get("tags", {}).items() if k not in ("stage", "source_trial_id")}
            what = " ".join(f"{k}={v}" for k, v in tags.items())
        else:
            what = " ".join(f"{k}={_fmt(config[k])}" for k in self.searched if k in config)
        self._print(f"{self._label(trial)} started" + (f": {what}" if what else ""))

    def trial_result(self, trial: Any, result: Mapping[str, Any]) -> None:
        epoch = int(result.get(obj.EPOCH, 0) or 0)
        value = result.get(f"valid/{self.metric}")
        best = result.get(f"best/valid/{self.metric}")
        if best is None or not isinstance(best, (int, float)) or not math.isfinite(best):
            return
        new_best = self.best is None or self._better(best, self.best[0])
        if new_best:
            self.best = (float(best), trial.trial_id, epoch)
        if self.verbose >= 2 or (new_best and not (trial.config or {}).get("_run")):
            cur = f"valid {self.metric} {_fmt(float(value))}, " if isinstance(value, (int, float)) else ""
            tail = "  <- best of the stage so far" if new_best else ""
            self._print(f"{self._label(trial)} epoch {epoch}/{self.max_epochs}: {cur}best "
                        f"{_fmt(float(best))} (epoch {int(result.get('best_epoch', epoch))}){tail}")

    def trial_completed(self, trial: Any) -> None:
        last = trial.last_result or {}
        reason = obj.stop_reason(last, self.max_epochs)
        best = last.get(f"best/valid/{self.metric}")
        score = (f": best valid {self.metric} {_fmt(float(best))} at epoch "
                 f"{int(last.get('best_epoch', 0))}") if isinstance(best, (int, float)) else ""
        self._print(f"{self._label(trial)} {_STOP_WORDS.get(reason, reason)} after epoch "
                    f"{int(last.get(obj.EPOCH, 0) or 0)}{score}")

    def trial_recovered(self, trial: Any, error: str) -> None:
        self._print(f"{self._label(trial)} failed, retrying {resume_point(trial)}: {first_error_line(error)}")

    def trial_failed(self, trial: Any, error: str) -> None:
        self._print(f"{self._label(trial)} FAILED: {first_error_line(error)}")


def resume_point(trial: Any) -> str:
    """Where a retried trial starts again: its last checkpoint, or — having none — the beginning."""
    if getattr(trial, "checkpoint", None) is not None:
        return "from its last checkpoint"
    return "from scratch (no checkpoint yet)"


def resources_text(cpu: float, gpu: float, memory_gb: float = 0.0) -> str:
    return f"{cpu:g} CPU" + (f" + {gpu:g} GPU" if gpu else "") + (f" + {memory_gb:g} GB memory" if memory_gb else "")


def footer(tracking_uri: str, experiment_id: str | None, *, journal: str | None = None,
           reports: Mapping[str, str] | None = None) -> list[str]:
    """The closing lines: where the results are and the commands that open them."""
    from sweeps.preflight import redact_uri
    from sweeps.tracking import ui_command, ui_url

    tracking_uri = redact_uri(tracking_uri)  # a password in the URI is never printed
    lines = []
    for what, path in (reports or {}).items():
        lines.append(f"{what + ':':<12}{path}")
    lines.append(f"{'MLflow UI:':<12}{ui_command(tracking_uri)}")
    if experiment_id is not None:
        base = tracking_uri if tracking_uri.startswith("http") else "http://127.0.0.1:5000"
        lines.append(f"{'':<12}then open {ui_url(base, experiment_id)}")
    if journal:
        lines.append(f"{'Optuna:':<12}optuna-dashboard {journal}")
    return lines


def print_result(result: "SweepResult", stream: Any = None) -> None:
    """A short human summary of a finished sweep, ending with the commands that open it."""
    out = stream or sys.stdout
    spent = f", {result.search_epochs} epochs" + (f" of a budget of {result.budget_epochs}" if result.budget_epochs
                                                   else "")
    print(f"\n== sweep {result.name}: {result.search_trials} search trials{spent}; winner: trial "
          f"{result.best_trial_id} ==", file=out)
    for line in rerank_lines(result):
        print(line, file=out)
    print("best configuration, searched fields: " + json.dumps(
        {k: result.searched[k] for k in sorted(result.searched)}), file=out)
    summ = result.summary()
    if summ:
        n = max(v["n"] for v in summ.values())
        print(f"final stage, test metrics at the best validation epoch, mean ± std over {n} seed(s):",
              file=out)
        for key in ("mae", "corr", "acc2_non0", "f1_non0", "acc7"):
            if key in summ:
                print(f"  {key:<10} {summ[key]['mean']:.4f} ± {summ[key]['std']:.4f}", file=out)
    from sweeps.preflight import redact_uri

    print(f"MLflow: {redact_uri(result.tracking_uri)} (experiment {result.experiment_id}, parent run "
          f"{result.parent_run_id})", file=out)
    if result.model_run_id:
        print(f"best model: MLFLOW_TRACKING_URI={redact_uri(result.tracking_uri)} mlflow artifacts download --run-id "
              f"{result.model_run_id} --artifact-path model --dst-path best_model, then python -m mmsa_core.predict "
              f"--model best_model", file=out)
    for line in footer(result.tracking_uri, result.experiment_id,
                       journal=result.optuna_storage or os.path.join(result.sweep_dir, JOURNAL_FILE)):
        print(line, file=out)
    out.flush()


def rerank_lines(result: "SweepResult") -> list[str]:
    """The re-rank table (validation objective per seed, mean ± std) and the optimism, in words."""
    metric = f"valid {result.metric}"
    if not result.rerank:
        return [f"best search trial {result.best_trial_id}: {metric} {result.best_objective:.4f} (one seed; not re-ranked)"]
    seeds = sorted({s for row in result.rerank for s in row["seeds"]}, key=int)
    lines = [f"re-rank on new seeds ({metric}; the search's own value first):",
             f"  {'trial':<12}{'search':>9}" + "".join(f"{'seed ' + s:>11}" for s in seeds) + f"{'mean ± std':>18}"]
    for row in result.rerank:
        mark = "  <- winner" if row["trial_id"] == result.best_trial_id else ""
        cells = "".join(f"{row['seeds'][s]:>11.4f}" if row["seeds"].get(s) is not None else f"{'failed':>11}"
                        for s in seeds)
        lines.append(f"  {str(row['trial_id']):<12}{row['search']:>9.4f}{cells}"
                     f"{row['mean']:>10.4f} ± {row['std']:.4f}{mark}")
    first = next((r for r in result.rerank if r["trial_id"] == result.search_best_trial_id), None)
    if first is not None and math.isfinite(first["optimism"]):
        lines.append("optimism: " + optimism_text(first, result.metric))
    return lines


def optimism_text(row: Mapping[str, Any], metric: str) -> str:
    """How far the search's best trial's value was from what it scores again on new seeds, in words."""
    fresh = [v for v in row["seeds"].values() if v is not None]
    mean = sum(fresh) / len(fresh)
    rel = 100 * abs(row["optimism"]) / abs(row["search"]) if row["search"] else math.nan
    text = (f"the search's best trial scored validation {metric} {row['search']:.4f}; on {len(fresh)} new seed(s) "
            f"it averages {mean:.4f}, so its search value was {abs(row['optimism']):.4f} ({rel:.1f} %) ")
    if row["optimism"] > 0:
        return text + "too good: part of its lead was the luck of one seed on one validation split"
    return text + "not better than it is again: no winner's curse showed here"


class OneLineGpuFailures(logging.Filter):
    """Tune logs every failed trial attempt with its traceback; a trial that found no CUDA on its
    GPU share (`sweeps.placement.GpuUnavailableError`) gets one line with the cause and the fix."""

    def filter(self, record: logging.LogRecord) -> bool:
        from sweeps.placement import gpu_failure

        error = record.exc_info[1] if record.exc_info else None
        message = gpu_failure([error]) if error is not None else None
        if message:
            record.msg, record.args = f"{record.getMessage()}: {message}", ()
            record.exc_info, record.exc_text = None, None
        return True


def quiet_console(verbose: int) -> None:
    """Before Ray starts (workers inherit the environment): keep the console to our lines.

    Below ``--verbose 2``: Ray Tune's and Optuna's INFO messages (Ray Train's per-checkpoint
    message inside the trials is the trial's own, `sweeps.trial.TrialContext.verbose`), the Hugging Face
    progress bars ("Loading weights", once per trial) and transformers' own messages below
    errors (its per-load advisories) are silenced; Python and Ray warnings still show.
    """
    import logging

    if verbose >= 2:
        return
    ray_verbosity(verbose)  # Ray's older output engine (see there)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for name in ("ray.tune", "ray.train", "optuna", "mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("ray.tune.execution.tune_controller").addFilter(OneLineGpuFailures())
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:
        pass
