"""A single training run (``python -m mmsa_core.train --tracking-uri URI``) recorded in MLflow like
every run of a sweep or study.

Why here: the core never imports MLflow; the single-run command finds this logger through the entry
point ``mmsa_core.run_loggers`` (``mlflow``, declared in pyproject.toml), so one module — the sweep
layer's `sweeps.tracking.Tracker` — writes every MLflow record, with one contract: experiment
``mmsa-<dataset>``, the dataset input with its digest, tags ``stage=single``, ``method``,
``dataset``, ``seed``, ``stop_reason``, every configuration key as a param, one metric batch per
epoch (``step`` = epoch) with the ``best/*`` summary, status FINISHED. Before anything trains,
`check` asks the store to answer (the sweeps' pre-flight: seconds, not minutes of retries).
"""

from __future__ import annotations

from typing import Any

from mmsa_core.record_names import Tag, bool_tag


class MlflowRunLogger:
    """The ``mlflow`` run logger of the single-run command (an entry point of ``mmsa_core.run_loggers``)."""

    def check(self, tracking_uri: str) -> None:
        """Raise ValueError, saying why and what to do, when the store does not answer."""
        from sweeps.preflight import PreflightError, check_tracking
        from sweeps.runtime_options import TRACKING_SCHEMES

        if not tracking_uri.startswith(TRACKING_SCHEMES):
            raise ValueError(f"--tracking-uri {tracking_uri!r}: use sqlite:///<absolute path>, http(s)://host:port "
                             "or a database URL MLflow accepts")
        try:
            check_tracking(tracking_uri)
        except PreflightError as exc:
            raise ValueError(str(exc)) from None

    def log(self, tracking_uri: str, result: Any, data: Any) -> str:
        """Record a finished `mmsa_core.trainer.RunResult`; returns the MLflow run id."""
        from sweeps.tracking import Tracker, dataset_record, flatten_params

        cfg = result.config
        tracker = Tracker(tracking_uri)
        experiment_id = tracker.experiment(data.name)
        reason = ("patience" if result.stopped_early else "max_epochs")
        tags = {Tag.STAGE: "single", Tag.METHOD: cfg.method, Tag.DATASET: data.name, Tag.SEED: str(cfg.seed),
                Tag.STOPPED_EARLY: bool_tag(result.stopped_early), Tag.STOP_REASON: reason}
        run = tracker.client.create_run(experiment_id, run_name=f"{cfg.method}-{data.name}-seed{cfg.seed}", tags=tags)
        run_id = run.info.run_id
        tracker.log_params(run_id, flatten_params(cfg.to_dict()))
        tracker.log_dataset(run_id, dataset_record(data), context="single")
        for record in result.history:
            tracker.log_metrics(run_id, record.as_metrics(), step=record.epoch)
        tracker.finish(run_id, "FINISHED")
        return run_id
