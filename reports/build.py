"""Compose a report from MLflow: resolve names, read runs, build tables and plots, write, log.

    build_report(tracking_uri=..., experiment="mmsa-synthetic-mosi", sweeps=["hscl-s1"],
                 ablations=["hscl-abl"], methods=True, out_dir="outputs/report")

writes `report.md`, `report.tex`, `report.html` and the PNGs into `out_dir` (and with `csv_dir`
one CSV per table), and logs them under `report/` of every parent run the report covers: the
sweeps, ablations and robustness studies asked for, and every sweep, comparison or robustness study
a method-comparison table takes rows from.
"""

from __future__ import annotations

import datetime as _dt
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from reports import plots, runs, stats
from reports.budget import Budget, BudgetKey, budget_of, search_budget
from reports.document import Figure, Paragraph, ParentRef, Report, Section, slug
from reports.runs import ReportError
from mmsa_core.record_names import Tag
from reports.rerank import summarize_rerank
from reports.sweep_summary import EVALUATORS, SpaceInfo, parse_search_space, summarize_sweep, sweep_objective
from reports.tables import (DEGENERATE_RULE, FIELD_ROBUST_METRICS, STD_NOTE, UNITS_NOTE, StatTable, TextTable,
                            ablation_table, metric_spec, protocol_text, pvalue_table, results_table,
                            robust_absent_table, robust_auc_table, robust_points, robust_rate_table,
                            robustness_table, significance_convention)

FORMATS = ("md", "tex", "html")
ROBUST_METRICS = ("mae", "acc2_non0")
# The method every other one is tested against in the method comparison (the project's first method).
# Reports read MLflow only, so this is a name, not a registry lookup.
REFERENCE_METHOD = "hscl"


@dataclass
class BuildResult:
    report: Report
    files: dict[str, Path]  # "md" | "tex" | "html" | figure id -> path
    logged_to: list[str] = field(default_factory=list)  # parent run ids that got report/ artifacts
    csv: dict[str, Path] = field(default_factory=dict)  # table id -> CSV file (with csv_dir)


def build_report(*, tracking_uri: str, out_dir: str | Path, experiment: str | None = None,
                 sweeps: Sequence[str] = (), ablations: Sequence[str] = (), methods: bool = False,
                 formats: Sequence[str] = FORMATS, test: str = "ttest", alpha: float = 0.05,
                 evaluator: str = "ped-anova", log_artifacts: bool = True,
                 robustness: Sequence[str] = (), csv_dir: str | Path | None = None) -> BuildResult:
    """Build, write and (optionally) log one report. Raises `ReportError` with a clear message.

    `csv_dir`: also write every table as ``<table id>.csv`` there (logged under ``report/csv/``)."""
    if not (sweeps or ablations or methods or robustness):
        raise ReportError("nothing to report: give --sweep, --ablation, --robustness and/or --methods")
    if test not in stats.TESTS:
        raise ReportError(f"unknown test {test!r}; choose one of {sorted(stats.TESTS)}")
    if evaluator not in EVALUATORS:
        raise ReportError(f"unknown importance evaluator {evaluator!r}; choose one of {sorted(EVALUATORS)}")
    if not 0 < alpha < 1:
        raise ReportError(f"alpha must be in (0, 1), got {alpha}")
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ReportError(f"unknown format(s) {bad}; choose from {list(FORMATS)}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    first_id = next((x for x in [*sweeps, *ablations, *robustness] if runs._RUN_ID_RE.match(x)), None)
    exp = runs.resolve_experiment(tracking_uri, experiment, run_id=first_id)
    report = Report(title="", dataset="", experiment_id=exp.id, experiment_name=exp.name,
                    tracking_uri=runs.redact(tracking_uri),
                    generated_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    ctx = _Context(tracking_uri, exp, out, report, test, alpha, evaluator)
    for name in sweeps:
        ctx.sweep_section(name)
    for name in ablations:
        ctx.ablation_sections(name)
    for name in robustness:
        ctx.robustness_section(name)
    if methods:
        ctx.methods_section()

    datasets = sorted(ctx.datasets) or [exp.name.removeprefix("mmsa-")]
    report.dataset = ", ".join(datasets)
    report.title = f"MMSA report — {report.dataset}"
    report.conventions = _conventions(ctx)

    files = {f.id: f.path for f in report.figures()}
    from reports import render_html, render_latex, render_markdown

    renderers = {"md": render_markdown.render, "tex": render_latex.render, "html": render_html.render}
    for fmt in formats:
        path = out / f"report.{fmt}"
        path.write_text(renderers[fmt](report), encoding="utf-8")
        files[fmt] = path
    result = BuildResult(report, files)
    if csv_dir is not None:
        from reports.export_csv import write_tables

        result.csv = write_tables(report, Path(csv_dir))
    if log_artifacts:
        client = runs.client(tracking_uri)
        for run_id in dict.fromkeys(p.run_id for p in report.parents):
            for path in files.values():
                client.log_artifact(run_id, str(path), artifact_path="report")
            for path in result.csv.values():
                client.log_artifact(run_id, str(path), artifact_path="report/csv")
            result.logged_to.append(run_id)
    return result


@dataclass
class _Context:
    uri: str
    exp: runs.Experiment
    out: Path
    report: Report
    test: str
    alpha: float
    evaluator: str
    datasets: set = field(default_factory=set)
    has_ablation: bool = False
    has_importances: bool = False
    file_sizes: dict = field(default_factory=dict)  # data digest -> the file's own split sizes (or None)

    # --- helpers ------------------------------------------------------------------------------
    def _parent(self, name: str, kind: str) -> tuple[runs.Parent, list[str]]:
        parent, notes = runs.resolve_parent(self.uri, self.exp.id, name, kind)
        self._cover(parent)
        return parent, notes

    def _cover(self, parent: runs.Parent) -> None:
        """The report covers `parent`: it is listed at the top and gets the report/ artifacts."""
        if all(p.run_id != parent.run_id for p in self.report.parents):
            self.report.parents.append(ParentRef(parent.kind, parent.name, parent.run_id))
        if parent.dataset:
            self.datasets.add(parent.dataset)

    def _file_splits(self, digest: str) -> tuple[int, int, int] | None:
        if digest not in self.file_sizes:
            self.file_sizes[digest] = runs.file_splits(self.uri, self.exp.id, digest)
        return self.file_sizes[digest]

    def _budget(self, frame: Any, scope: str, parent: runs.Parent | None, **kw: Any) -> Budget:
        return budget_of(frame, scope=scope, parent_tags=parent.tags if parent else None,
                         parent_data=parent.data if parent else None, file_splits=self._file_splits, **kw)

    @staticmethod
    def _state_budget(sec: Section, budget: Budget, id: str) -> None:
        """The section opens with its budget: a banner when it is not a result, then the table."""
        banner = budget.banner()
        if banner:
            sec.banners.append(banner)
        sec.blocks.append(budget.table(id))

    def _children(self, parent: runs.Parent) -> Any:
        frame = runs.tidy(runs.search(self.uri, self.exp.id, f"tags.mlflow.parentRunId = '{parent.run_id}'"))
        self.datasets.update(d for d in frame["dataset"].dropna().unique())
        return frame

    def _finished(self, frame: Any, scope: str) -> runs.RunSet:
        rs = runs.split_finished(frame)
        self.report.excluded[scope] = dict(rs.excluded)
        self.report.excluded_ids.update(rs.excluded_ids)
        return rs

    def _figure(self, section: Section, fid: str, caption: str, draw) -> None:
        path = self.out / f"{fid}.png"
        draw(path)
        section.blocks.append(Figure(fid, path, caption))

    # --- sweep ----------------------------------------------------------------------------------
    def sweep_section(self, name: str) -> None:
        parent, notes = self._parent(name, "sweep")
        children = self._children(parent)
        sid = slug(parent.name)
        sec = Section(f"sweep-{sid}", f"Sweep “{parent.name}” ({parent.method or 'unknown method'})")
        sec.blocks += [Paragraph(n) for n in notes]
        search = self._finished(children[children["stage"] == "search"], f"sweep {parent.name}, search stage")
        final = self._finished(children[children["stage"] == "final"], f"sweep {parent.name}, final stage")
        final_runs, dropped = runs.latest_per_seed(final.runs)
        space = _search_space(self.uri, parent.run_id)
        searched = summarize_searched(search.runs, space.names if space else None)
        self._state_budget(sec, self._budget(
            final_runs if len(final_runs) else search.runs, f"sweep “{parent.name}”", parent,
            search=search_budget(search.runs, parent_tags=parent.tags, space=space)), f"budget-{sid}")
        if len(final_runs):
            method = parent.method or _one(final_runs["method"]) or "?"
            tnotes = [f"seeds: {', '.join(str(s) for s in final_runs['seed'].dropna())}"]
            if parent.tags.get("best_trial_id"):
                tnotes.append(f"configuration of search trial {parent.tags['best_trial_id']} (best validation "
                              f"objective {parent.tags.get('best_objective', '?')})")
            if dropped:
                tnotes.append(f"{dropped} duplicate run(s) of a seed left out (newest kept)")
            sec.blocks.append(results_table(
                [(method, final_runs)], id=f"final-{sid}", title="Final-stage results",
                caption=f"Test metrics at the best validation epoch of the best configuration; {STD_NOTE}. "
                        f"{UNITS_NOTE}.", notes=tnotes))
            sec.blocks.append(_config_table(final_runs, searched, sid))
        else:
            sec.blocks.append(Paragraph("No FINISHED final-stage run in this sweep."))
        rerank = self._finished(children[children["stage"] == "rerank"], f"sweep {parent.name}, re-rank stage")
        objective, minimize = sweep_objective(space)
        reranked = summarize_rerank(rerank.runs, search.runs, objective=objective, minimize=minimize,
                                    winner=parent.tags.get(Tag.BEST_TRIAL_ID),
                                    search_best=parent.tags.get(Tag.SEARCH_BEST_TRIAL_ID)
                                    or parent.tags.get(Tag.BEST_TRIAL_ID), id=f"sweep-{sid}")
        if reranked is not None:
            sec.blocks += [reranked.table, Paragraph(reranked.text)]
        if len(search.runs):
            self._sweep_summary(sec, search.runs, sid, space)
        else:
            sec.blocks.append(Paragraph("No FINISHED search-stage run in this sweep."))
        self.report.sections.append(sec)

    def _sweep_summary(self, sec: Section, search: Any, sid: str, space: SpaceInfo | None) -> None:
        s = summarize_sweep(search, evaluator=self.evaluator, space=space, id=f"sweep-{sid}")
        sec.blocks.append(s.best_trials)
        sec.blocks += [Paragraph(n) for n in s.notes]
        imp = s.importances
        if imp.values:
            self.has_importances = True
            sec.blocks.append(TextTable(
                id=f"sweep-{sid}-importances", title="Parameter importances",
                caption=f"{imp.evaluator} on the {imp.n_trials} full-fidelity search trials (not stopped by "
                        "the scheduler: stop_reason ≠ scheduler; untagged runs: epochs run = max_epochs or "
                        f"stopped_early = false), objective validation {s.objective}; importances sum to 1.",
                headers=("Parameter", "Importance"),
                rows=tuple((k, f"{v:.3f}") for k, v in imp.values.items()), numeric=(False, True),
                value_headers=("parameter", "importance"), values=tuple(imp.values.items())))
            self._figure(sec, f"importances-{sid}", f"Parameter importances ({imp.evaluator}, "
                         f"{imp.n_trials} full-fidelity trials).",
                         lambda p: plots.importances(imp.values, p, evaluator=imp.evaluator, n_trials=imp.n_trials))
        else:
            sec.blocks.append(Paragraph(f"Parameter importances ({imp.evaluator}): {imp.message}."))
        self._figure(sec, f"history-{sid}", f"Optimisation history: validation {s.objective} of each search "
                     "trial in start order and the best so far (hollow = stopped early, lower fidelity).",
                     lambda p: plots.history(s.history, p, objective=s.objective, minimize=s.minimize))
        c = s.compute
        if c.budget > 0:
            sec.blocks.append(TextTable(
                id=f"sweep-{sid}-compute", title="Compute saved by early stopping",
                caption="Epochs the finished search trials ran against the full budget "
                        "(Σ max_epochs = trials × max_epochs).",
                headers=("Trials", "Full fidelity", "Epochs run", "Full budget", "Saved"),
                rows=((str(c.n_trials), str(c.n_full), f"{c.epochs_run:g}", f"{c.budget:g}",
                       f"{100 * c.saved_fraction:.1f}%"),), numeric=(True,) * 5,
                value_headers=("trials", "full_fidelity", "epochs_run", "full_budget", "saved_fraction"),
                values=((c.n_trials, c.n_full, c.epochs_run, c.budget, c.saved_fraction),)))
        else:
            sec.blocks.append(Paragraph("Compute saved: unknown (no epochs_run metric / max_epochs param)."))

    # --- ablation -------------------------------------------------------------------------------
    def ablation_sections(self, name: str) -> None:
        parent, notes = self._parent(name, "ablation")
        self.has_ablation = True
        children = self._children(parent)
        sid = slug(parent.name)
        stage = children[(children["stage"] == "ablation") | (children["stage"].isna() & children["ablation"].notna())]
        rs = self._finished(stage, f"ablation {parent.name}")
        sec = Section(f"ablation-{sid}", f"Ablation “{parent.name}” ({parent.method or 'unknown method'})")
        sec.blocks += [Paragraph(n) for n in notes]
        frame = rs.runs[rs.runs["ablation"].notna()]
        self._state_budget(sec, self._budget(frame, f"ablation “{parent.name}”", parent), f"budget-{sid}")
        if frame.empty:
            sec.blocks.append(Paragraph("No FINISHED ablation run with an `ablation` tag."))
            self.report.sections.append(sec)
            return
        order = frame.groupby("ablation")["start_time"].min().sort_values().index.tolist()
        variants, tnotes = [], []
        for v in order:
            vf, dropped = runs.latest_per_seed(frame[frame["ablation"] == v])
            variants.append((v, vf))
            if dropped:
                tnotes.append(f"{v}: {dropped} duplicate run(s) of a seed left out (newest kept)")
        refs = sorted(frame.loc[frame["reference"], "ablation"].unique())
        if not refs and parent.tags.get("reference_variant") in dict(variants):
            refs = [parent.tags["reference_variant"]]  # the parent's tag, when no run says reference=true
            tnotes.append(f"reference taken from the parent run's reference_variant tag ({refs[0]})")
        reference = refs[0] if refs else None
        if len(refs) > 1:
            tnotes.append(f"several variants are tagged reference ({', '.join(refs)}); using {reference}")
        if reference is None:
            tnotes.append("no variant is tagged reference=true: no Δ and no significance tests")
        caption = (f"Test metrics at the best validation epoch; {STD_NOTE}. {UNITS_NOTE}. "
                   + (f"Reference: {reference}." if reference else ""))
        table = ablation_table(variants, reference=reference, id=f"ablation-{sid}", title="Ablation",
                               caption=caption, test=self.test, alpha=self.alpha, notes=tnotes)
        if self.test == "wilcoxon" and reference:
            table = _with_wilcoxon_floor(table, self.alpha)
        sec.blocks.append(table)
        if reference:
            sec.blocks.append(pvalue_table(table))
        self._figure(sec, f"ablation-{sid}", "Ablation variants, mean ± std over seeds (MAE, Acc-2 non0).",
                     lambda p: plots.ablation_bars(table, p))
        self.report.sections.append(sec)
        if reference:
            self._robustness(parent, dict(variants)[reference], reference, sid)

    def _robustness(self, parent: runs.Parent, ref_runs: Any, reference: str, sid: str) -> None:
        tables = []
        for m in ROBUST_METRICS:
            header = metric_spec(m).header
            t = robustness_table(ref_runs, m, id=f"robust-{sid}-{slug(m)}", title=f"Robustness — test {header}",
                                 caption=f"Reference variant {reference}, test {header} under test-time "
                                         f"missing-modality corruption (rows: kind-modalities; columns: missing "
                                         f"rate; clean = no corruption); {STD_NOTE}. {UNITS_NOTE}.")
            if t is not None:
                tables.append((m, t))
        if not tables:
            return
        sec = Section(f"robust-{sid}", f"Robustness — ablation “{parent.name}”")
        sec.blocks += [t for _, t in tables]
        self._figure(sec, f"robustness-{sid}", "Robustness curves: test metric against the missing rate "
                     "(rate 0 = clean), mean ± std over seeds of the reference variant.",
                     lambda p: plots.robustness([t for _, t in tables], [m for m, _ in tables], p))
        self.report.sections.append(sec)

    # --- robustness study (ablations/robustness.py) ----------------------------------------------
    def robustness_section(self, name: str) -> None:
        """Per method and rate mean ± std over seeds, the AUC of each curve, the curves, and the
        whole-modality-drop table of a ``kind=robustness`` parent run; the protocol in every caption."""
        parent, notes = self._parent(name, "robustness")
        children = self._children(parent)
        sid = slug(parent.name)
        protocol = parent.tags.get("protocol") or _one(children["protocol"]) or "?"
        rs = self._finished(children[children["stage"] == "robustness"], f"robustness {parent.name}")
        sec = Section(f"robustness-{sid}", f"Robustness “{parent.name}” ({protocol} protocol)")
        sec.blocks += [Paragraph(n) for n in notes]
        frame, dropped = rs.runs, 0
        if not frame.empty:  # one run per (method, seed[, rate]): the newest
            import pandas as pd

            parts = []
            for _, group in frame.groupby([frame["method"].fillna("?"), frame["rate"].fillna("")], sort=False):
                kept, d = runs.latest_per_seed(group)
                parts.append(kept)
                dropped += d
            frame = pd.concat(parts, ignore_index=True)
        self._state_budget(sec, self._budget(frame, f"robustness study “{parent.name}”", parent), f"budget-{sid}")
        points = robust_points(frame, protocol, order=[m for m in parent.tags.get("methods", "").split(",") if m])
        if not points.values:
            sec.blocks.append(Paragraph("No FINISHED robustness run with masked-test metrics."))
            self.report.sections.append(sec)
            return
        proto = protocol_text(protocol)
        tnotes = [f"{dropped} duplicate run(s) left out (newest kept)"] if dropped else []
        field_rates = tuple(round(0.1 * i, 1) for i in range(11))
        auc_note = ("AUC = area under the curve over r ∈ [0, 1], trapezoid rule with step 0.1 (EMT-DLFR), per "
                    "seed, then mean ± std" if points.rates == field_rates else
                    f"AUC = trapezoid rule over the rates run ({', '.join(f'{r:g}' for r in points.rates)}), per "
                    "seed, then mean ± std — not the field's 11 rates 0.0, 0.1, …, 1.0, so not comparable "
                    "with published AUCs")
        tables = []
        for m in FIELD_ROBUST_METRICS:
            header = metric_spec(m).header
            tables.append(robust_rate_table(
                points, m, id=f"robustness-{sid}-{slug(m)}", title=f"Robustness — test {header} against the missing rate",
                caption=f"{proto}. Test {header} per method and missing rate r; {auc_note}; {STD_NOTE}. {UNITS_NOTE}.",
                notes=tnotes))
        sec.blocks.append(robust_auc_table(
            points, id=f"robustness-{sid}-auc", title="Robustness — area under the curve",
            caption=f"{proto}. {auc_note}, per metric; {STD_NOTE}. {UNITS_NOTE}."))
        sec.blocks += tables
        self._figure(sec, f"robustness-{sid}", f"{proto}. Test metric against the missing rate r, one line per "
                     "method (mean over seeds) with a ± std band.",
                     lambda p: plots.robustness_methods(tables, list(FIELD_ROBUST_METRICS), p, protocol=protocol))
        absent = robust_absent_table(
            points, id=f"robustness-{sid}-absent", title="Robustness — whole-modality drop",
            caption=f"{proto}. Test metrics with the acoustic (A), visual (V) or both streams absent (frames "
                    f"zeroed, lengths 0) and on the complete test split; {STD_NOTE}. {UNITS_NOTE}.")
        if absent is not None:
            sec.blocks.append(absent)
        elif protocol == "retrain":
            sec.blocks.append(Paragraph("Whole-modality drop is evaluated by the evaluate protocol "
                                        "(`--protocol evaluate`), not by retraining."))
        self.report.sections.append(sec)

    # --- method comparison ----------------------------------------------------------------------
    def methods_section(self) -> None:
        """Method tables of like with like: rows only from runs with the same budget (data digest,
        split sizes, text encoder, max_epochs, seeds — `BudgetKey`); paired tests against HSCL
        inside a table only.

        Sources are sweeps (final stage), method comparisons and evaluate-protocol robustness
        studies. An evaluate-protocol study trains each (method, seed) once on complete data and
        selects on complete validation, exactly like a comparison; its ``best/test/*`` metrics are
        the unmasked test at the best validation epoch, so it counts as one.

        Table 1 holds the budget most methods share (ties: the one with HSCL, then the newest),
        each method from its newest source with that budget. A method with no source of that
        budget gets a separate table with the budget of its newest source, and the section names
        what differs. Every other source is listed as not shown, with the reason."""
        import pandas as pd

        robust = [p for p in runs.list_parents(self.uri, self.exp.id, "robustness")
                  if p.tags.get("protocol") == "evaluate"]
        parents = sorted(runs.list_parents(self.uri, self.exp.id, "sweep")
                         + runs.list_parents(self.uri, self.exp.id, "comparison") + robust,
                         key=lambda p: p.start_time, reverse=True)  # newest first
        final = runs.tidy(runs.search(self.uri, self.exp.id, "tags.stage = 'final'"))
        if robust:
            studied = runs.tidy(runs.search(self.uri, self.exp.id, "tags.stage = 'robustness'"))
            studied = studied[studied["parent_run_id"].isin({p.run_id for p in robust})]
            final = pd.concat([final, studied], ignore_index=True) if len(final) else studied
        finished = final[final["status"] == runs.KEPT_STATUS]
        sources: list[_Source] = []  # newest parent first
        for p in parents:
            mine = finished[finished["parent_run_id"] == p.run_id]
            if mine.empty:
                continue
            tagged = mine["method"].notna().any()
            for method in sorted(set(mine["method"].dropna())) if tagged else [p.method or "?"]:
                vf, dropped = runs.latest_per_seed(mine[mine["method"] == method] if tagged else mine)
                sources.append(_Source(p, method, vf, dropped, self._budget(vf, p.name, p).key()))
        sec = Section("methods", "Method comparison (final stage)")
        self.report.sections.append(sec)
        if not sources:
            sec.blocks.append(Paragraph("No sweep, method comparison or evaluate-protocol robustness "
                                        "study in this experiment has FINISHED final-stage runs."))
            return
        tables = _like_with_like(sources)
        self._finished(final[final["parent_run_id"].isin({s.parent.run_id for t in tables for s in t.values()})],
                       "method comparison (final stage)")
        if len(tables) > 1:
            sec.blocks.append(Paragraph(
                f"These runs have {len(tables)} different budgets. Rows are compared only with runs of the same "
                "budget (same data digest, split sizes, text encoder, max_epochs and seeds): one table per "
                "budget, Δ and paired tests inside a table only."))
        primary = next(iter(tables[0].values())).key
        for i, chosen in enumerate(tables, start=1):
            self._method_table(sec, i, len(tables), chosen, primary if i > 1 else None)
        shown = {id(s) for t in tables for s in t.values()}
        left = [s for s in sources if id(s) not in shown]
        if left:
            keys = {s.key: i for i, t in enumerate(tables, start=1) for s in t.values()}
            lines = []
            for s in left:
                where = (f"an older run of {s.method} with the budget of table {keys[s.key]}" if s.key in keys
                         else "budget differs from table 1: " + "; ".join(s.key.differences(primary)))
                lines.append(f"{s.parent.name} ({s.parent.kind}, {s.method}) — {where}")
            sec.blocks.append(Paragraph(f"{len(left)} other source(s) not shown: " + " · ".join(lines) + "."))

    def _method_table(self, sec: Section, index: int, n_tables: int, chosen: dict[str, "_Source"],
                      primary: BudgetKey | None) -> None:
        """One like-with-like method table: its budget, then the rows, then the paired tests."""
        import pandas as pd

        tid = "methods" if index == 1 else f"methods-{index}"
        key = next(iter(chosen.values())).key
        if primary is not None:
            sec.blocks.append(Paragraph(f"Table for budget {index} — not comparable with budget 1: "
                                        + "; ".join(key.differences(primary)) + ". No Δ across budgets."))
        reference = REFERENCE_METHOD if REFERENCE_METHOD in chosen else None
        order = sorted(chosen, key=lambda m: (m != reference, m))
        for s in chosen.values():
            self._cover(s.parent)
            self.datasets.update(s.runs["dataset"].dropna().unique())
        newest = max(chosen.values(), key=lambda s: s.parent.start_time).parent
        smoke = any(str(s.parent.tags.get("smoke", "")).lower() == "true" for s in chosen.values())
        scope = "the method comparison" + (f", budget {index}" if n_tables > 1 else "")
        budget = budget_of(pd.concat([chosen[m].runs for m in order], ignore_index=True), scope=scope,
                           parent_tags={"smoke": "true"} if smoke else {}, parent_data=newest.data,
                           file_splits=self._file_splits)
        self._state_budget(sec, budget, f"{tid}-budget")
        notes = [f"{m}: {chosen[m].dropped} duplicate run(s) of a seed left out (newest kept)"
                 for m in order if chosen[m].dropped]
        against = (f"Δ and paired tests against {reference} over matched seeds, Holm-corrected across methods"
                   if reference else f"no {REFERENCE_METHOD} run with this budget: no Δ and no paired tests")
        table = ablation_table(
            [(m, chosen[m].runs) for m in order], reference=reference, id=tid,
            title="Method comparison" if index == 1 else f"Method comparison — budget {index}", row_header="Method",
            caption=f"Final-stage test metrics (complete inputs) at the best validation epoch; per method the "
                    f"newest sweep, comparison or evaluate-protocol robustness study with this budget; "
                    f"{STD_NOTE}; {against}. {UNITS_NOTE}.",
            test=self.test, alpha=self.alpha, extra={"Source": [chosen[m].parent.name for m in order]}, notes=notes)
        if reference and self.test == "wilcoxon":
            table = _with_wilcoxon_floor(table, self.alpha)
        sec.blocks.append(table)
        if reference and len(order) > 1:
            sec.blocks.append(pvalue_table(table))


@dataclass(frozen=True)
class _Source:
    """One method's FINISHED runs under one parent (a sweep's final stage, a comparison, a study)."""

    parent: runs.Parent
    method: str
    runs: Any  # tidy frame, one run per seed
    dropped: int  # duplicate runs of a seed left out
    key: BudgetKey


def _like_with_like(sources: Sequence[_Source]) -> list[dict[str, _Source]]:
    """The method tables: {method: source} per budget, table 1 first (see `methods_section`).

    `sources` are newest first; within a budget each method keeps its newest source."""
    groups: dict[BudgetKey, dict[str, _Source]] = {}
    for s in sources:
        groups.setdefault(s.key, {}).setdefault(s.method, s)

    def rank(key: BudgetKey) -> tuple:
        g = groups[key]
        return len(g), REFERENCE_METHOD in g, max(s.parent.start_time for s in g.values())

    shown = [max(groups, key=rank)]
    placed = set(groups[shown[0]])
    for s in sources:
        if s.method not in placed:
            shown.append(s.key)
            placed |= set(groups[s.key])
    return [groups[k] for k in shown]


def _with_wilcoxon_floor(table: Any, alpha: float) -> Any:
    """Add a note on the smallest p an exact Wilcoxon test can reach with the pairs at hand."""
    import dataclasses

    ns = sorted({c.n_pairs for r in table.rows if not r.reference for c in r.cells.values()
                 if c.n_pairs >= stats.MIN_PAIRS}, reverse=True)
    if not ns:
        return table
    floors = ", ".join(f"{stats.min_wilcoxon_p(n):.3g} with {n} pairs" for n in ns)
    note = f"smallest two-sided exact Wilcoxon p attainable: {floors}"
    if stats.min_wilcoxon_p(ns[0]) > alpha:
        note += f" — above α = {alpha:g}, so no cell can be significant with these seeds"
    return dataclasses.replace(table, notes=table.notes + (note,))


def summarize_searched(search: Any, space: list[str] | None) -> list[str]:
    from reports.sweep_summary import searched_params

    return searched_params(search, space) if len(search) else list(space or [])


def _config_table(final: Any, searched: list[str], sid: str) -> TextTable:
    """The configuration of the final stage: the searched params (all constant params if unknown)."""
    params = [c[len("params."):] for c in final.columns if c.startswith("params.")]
    keys = [p for p in searched if p in params] or [p for p in params if p != "seed"]
    rows = []
    for k in keys:
        values = {_fmt(v) for v in final[f"params.{k}"]}
        rows.append((k, values.pop() if len(values) == 1 else "varies: " + ", ".join(sorted(values))))
    what = "searched parameters" if [p for p in searched if p in params] else "all parameters"
    return TextTable(id=f"final-{sid}-config", title="Best configuration",
                     caption=f"Configuration of the final-stage runs ({what}; seeds differ).",
                     headers=("Parameter", "Value"), rows=tuple(rows), numeric=(False, False))


def _search_space(uri: str, run_id: str) -> SpaceInfo | None:
    """The parent's `search_space.json` artifact, parsed; None if absent or unreadable."""
    import os

    quiet = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR" not in os.environ
    if quiet:
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # no progress bar for a tiny JSON
    try:
        client = runs.client(uri)
        if not any(f.path == "search_space.json" for f in client.list_artifacts(run_id)):
            return None
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run_id, "search_space.json", tmp)
            data = json.loads(Path(path).read_text())
        return parse_search_space(data)
    except Exception:  # an unreadable artifact only costs the hint; params still tell the space
        return None
    finally:
        if quiet:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)


def _conventions(ctx: _Context) -> list[str]:
    out = ["Tables read test metrics at the best validation epoch (best/test/<m>); selection uses "
           "validation only.", STD_NOTE[0].upper() + STD_NOTE[1:] + ".", UNITS_NOTE + ".",
           "Every section opens with its budget (data and digest, split sizes used, text encoder, epochs, "
           "seeds; for sweeps the search); a banner above says when runs are a smoke run, cut a real file's "
           "splits or used a random text encoder: such numbers are not results. Method tables compare only "
           "runs of one budget."]
    tables = ctx.report.tables()
    if any(isinstance(t, StatTable) and t.test for t in tables):
        out.append(significance_convention(ctx.test, ctx.alpha))
    if ctx.has_ablation:
        out.append("Ablations: Δ = variant mean − reference mean, runs paired by seed with the reference variant.")
    if any(isinstance(t, StatTable) and (any(r.degenerate for r in t.rows) or any("degenerate" in n for n in t.notes))
           for t in tables):
        out.append(DEGENERATE_RULE)
    if ctx.has_importances:
        out.append(f"Parameter importances: {EVALUATORS[ctx.evaluator]}, full-fidelity trials only.")
    return out


def _one(values: Any) -> str | None:
    vals = [v for v in values if v is not None and v == v]
    return vals[0] if vals else None


def _fmt(v: Any) -> str:
    if v is None or v != v:
        return "–"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, tuple):
        return "[" + ", ".join(map(str, v)) + "]"
    return str(v)
