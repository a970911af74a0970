"""One HSCL training step, this project against the HSCL authors' code, side by side (samples/s).

    python benchmarks/bench_train_step.py --authors-src path/to/hscl_authors/src
    python benchmarks/bench_train_step.py --batch-sizes 32,128 --steps 5 --warmup 2 --repeats 3 \\
        --threads 2 --authors-src DIR --out benchmarks/results/train_step.json
    python benchmarks/bench_train_step.py                      # without --authors-src: the project only

What one step is, for each implementation, on the CPU with ``--threads`` torch threads:

- project: the trainer's step (`mmsa_core.trainer.train`): `prepare_batch`, the method runtime's
  `training_terms` (forward of `HSCLModel` + every HSCL term) under the trainer's autocast, the
  weighted total, the finite check, backward through the trainer's (here disabled) GradScaler,
  `after_backward`, grad-norm clipping at ``cfg.grad_clip``, Adam (`build_optimizer`), zero_grad,
  and the per-term ``float()`` logging. Configuration: ``RunConfig.paper("hscl", "mosi")`` with
  the text encoder below (``--project-faithful`` switches on the six quirks of the authors' code);
- authors: the body of ``train()`` in their ``solver.py`` with their MOSI defaults (``config.py``
  argparse defaults, as ``main.py`` completes them): ``model.zero_grad()``, the forward of their
  ``HSCL``, ``L1Loss`` + ``SupConR(temperature=0.5)`` on the fusion, t-a and t-v views +
  ``Similarity``, ``loss = y + omega1 (L_at + L_vt) + omega2 L_fusion``, backward,
  ``clip_grad_norm_(..., hp.clip)``, their Adam (two groups, built by their ``Solver``, which also
  does their Xavier initialisation), and their two ``loss.item()``. Their ``.cuda()`` moves are
  the only lines left out (this is a CPU benchmark; the tensors already live on the CPU).

Both use the same text encoder: a random-weight ``BertConfig(hidden_size=768, num_hidden_layers=2,
num_attention_heads=12, intermediate_size=3072)`` saved with ``save_pretrained`` into a temporary
directory, which is both the authors' ``hp.bert_path`` and the project's ``text_encoder`` (so both
start from identical BERT weights). Both see the same inputs: B x 50 random token ids ([CLS] ... [SEP],
attention mask all ones), acoustic (B, 50, 5) and visual (B, 50, 20) frames, all 50 frames valid,
labels uniform in [-3, 3]; the project gets them as its `Batch` (through `SplitArrays` and
`make_loader`), the authors as their collate gives them (time-first frames, (B, 1) labels, int lengths).

Per batch size: ``--warmup`` untimed steps of each implementation, then ``--repeats`` rounds that
ALTERNATE a block of ``--steps`` project steps and a block of ``--steps`` authors steps, so that
the ratio is measured side by side on the same (noisy, shared) machine. Reported: samples/s of
each implementation (median over rounds), the ratio project/authors of those medians and the
median of the per-round ratios, and parameter counts (total, text encoder, A/V streams, fusion).

The authors' code (github Turdidae810/HSCL) is a MEASURING STICK ONLY: it is not part of this
repository and is never copied into it; it is imported at run time from ``--authors-src DIR``
(the clone's ``src`` folder, put at the front of ``sys.path``). To get it, clone or ``fetch``
github.com/Turdidae810/HSCL into a scratch directory OUTSIDE this repository: with a checkout of the
authors' code at ``path/to/hscl_authors``, pass ``--authors-src path/to/hscl_authors/src``. It needs
scikit-learn (imported by their ``utils``) besides torch and transformers.

Their ``main.py`` turns on ``torch.autograd.set_detect_anomaly(True)`` for the whole run; that is
a debugging switch, not part of the step, so it is off here unless ``--authors-anomaly`` (then it
is on during the authors' blocks only).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

try:  # `python benchmarks/x.py` and `python -m benchmarks.x` both work
    from benchmarks._common import machine, write_json
except ImportError:
    from _common import machine, write_json

TEXT_LEN = 50  # tokens, all real ([CLS] + 48 + [SEP])
FRAMES = 50  # acoustic and visual frames, all valid
AUDIO_DIM, VISION_DIM = 5, 20  # MOSI widths (the authors' model hard-codes them for 'mosi')
POOL = 3  # distinct batches per batch size, cycled through by both implementations
BERT = dict(hidden_size=768, num_hidden_layers=2, num_attention_heads=12, intermediate_size=3072)


# ---------------------------------------------------------------------------------------------
# shared set-up


def save_bert(directory: Path, seed: int) -> None:
    """A random-weight 768-wide 2-layer BERT (with pooler, as `BertModel` builds it) in `directory`."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    BertModel(BertConfig(**BERT)).save_pretrained(str(directory))


def make_split(batch_size: int, seed: int):
    """`SplitArrays` of POOL * batch_size random samples in the project's data contract."""
    import numpy as np

    from mmsa_core.data import SplitArrays
    from mmsa_core.data.tokenize import CLS_ID, SEP_ID

    rng = np.random.default_rng([seed, batch_size])
    n = POOL * batch_size
    ids = rng.integers(1000, 30000, size=(n, TEXT_LEN), dtype=np.int64)
    ids[:, 0], ids[:, -1] = CLS_ID, SEP_ID
    arrays = SplitArrays(
        text_ids=ids, text_mask=np.ones((n, TEXT_LEN), np.int64), text_type=np.zeros((n, TEXT_LEN), np.int64),
        audio=rng.standard_normal((n, FRAMES, AUDIO_DIM), dtype=np.float32),
        audio_lengths=np.full(n, FRAMES, np.int64),
        vision=rng.standard_normal((n, FRAMES, VISION_DIM), dtype=np.float32),
        vision_lengths=np.full(n, FRAMES, np.int64),
        labels=rng.uniform(-3.0, 3.0, size=n).astype(np.float32),
        ids=np.array([f"bench{i}$_$1" for i in range(n)]), raw_text=np.array([""] * n),
    )
    return arrays


def project_batches(arrays, batch_size: int) -> list:
    from mmsa_core.data.batching import make_loader

    return [b for b in make_loader(arrays, batch_size=batch_size, shuffle=False, seed=0)
            if len(b) == batch_size]


def authors_batch(batch):
    """The project's `Batch` as the authors' collate gives it (same numbers)."""
    import torch

    return dict(
        text=batch.text_ids.t().contiguous(),  # `sentences` (L, B): passed through, unused by their model
        visual=batch.vision.transpose(0, 1).contiguous(),  # (L_v, B, 20), time first
        vlens=batch.vision_mask.sum(1).to(torch.int32),  # IntTensor lengths
        audio=batch.audio.transpose(0, 1).contiguous(),  # (L_a, B, 5)
        alens=batch.audio_mask.sum(1).to(torch.int32),
        y=batch.labels[:, None].contiguous(),  # (B, 1)
        bert_sent=batch.text_ids.contiguous(), bert_sent_type=batch.text_type.contiguous(),
        bert_sent_mask=batch.text_mask.contiguous(),
    )


def count(module) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


# ---------------------------------------------------------------------------------------------
# the project


class ProjectStep:
    def __init__(self, bert_dir: Path, arrays, batch_size: int, faithful: bool, seed: int,
                 device: str = "cpu", amp: bool = False):
        import torch

        from mmsa_core.config import RunConfig
        from mmsa_core.data import MSADataset
        from mmsa_core.data.validate import validate_dataset
        from mmsa_core.methods.runtime import build_runtime
        from mmsa_core.trainer import build_optimizer, resolve_device

        data = MSADataset(name="bench-random", source="bench_train_step (random)",
                          splits={"train": arrays, "valid": arrays, "test": arrays})
        validate_dataset(data, expected_dims={"audio": AUDIO_DIM, "vision": VISION_DIM}, text_len=TEXT_LEN)
        self.cfg = RunConfig.paper("hscl", "mosi").replace(text_encoder=str(bert_dir), batch_size=batch_size,
                                                          device=device, amp=amp)
        if faithful:
            self.cfg = self.cfg.with_params(faithful=True)
        self.device = resolve_device(self.cfg.device)
        torch.manual_seed(seed)
        self.runtime = build_runtime(self.cfg, data, self.device)
        self.model = self.runtime.model.train()
        self.optimizer = build_optimizer(self.cfg, self.runtime)
        # the trainer's: only for fp16 autocast on a GPU without bf16 (off on the CPU and for bf16)
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp and self.device.type == "cuda"
                                           and not torch.cuda.is_bf16_supported())
        self.optimizer.zero_grad(set_to_none=True)
        self.runtime.on_epoch_start(1)

    def params(self) -> dict[str, int]:
        m = self.model
        return {"total": count(m), "text_encoder": count(m.text_encoder), "streams": count(m.streams),
                "fusion": count(m.fusion), "heads": count(m) - count(m.text_encoder) - count(m.streams)
                - count(m.fusion)}

    def __call__(self, batch) -> None:
        """One optimiser step exactly as `mmsa_core.trainer.train` does it (accumulation 1)."""
        import torch

        from mmsa_core.trainer import _autocast, prepare_batch

        cfg, runtime, optimizer, scaler = self.cfg, self.runtime, self.optimizer, self.scaler
        batch = prepare_batch(batch, self.device, runtime.trim_padding)
        with _autocast(self.device, cfg.amp):
            terms = runtime.training_terms(batch, 1)
        loss = runtime.total_loss(terms)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"project: non-finite loss {terms}")
        scaler.scale(loss).backward()
        runtime.after_backward(batch)
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        float(loss.detach()) * len(batch)
        for v in terms.values():
            float(v.detach())


# ---------------------------------------------------------------------------------------------
# the authors' code (imported from --authors-src; never copied)


def import_authors(src: Path) -> dict:
    """Their modules, imported from `src` (their top-level names: solver, model, modules, config, utils)."""
    src = src.expanduser().resolve()
    if not (src / "solver.py").is_file() or not (src / "model.py").is_file():
        raise SystemExit(f"--authors-src {src}: no solver.py / model.py there (expected the src/ folder of "
                         "a clone of github Turdidae810/HSCL)")
    for name in ("solver", "model", "modules", "config", "utils"):
        loaded = sys.modules.get(name)
        if loaded is not None and not str(getattr(loaded, "__file__", "") or "").startswith(str(src)):
            raise SystemExit(f"a module named {name!r} is already imported from {loaded!r}; it would shadow "
                             "the authors' module of that name")
    sys.path.insert(0, str(src))
    import config as authors_config
    import solver as authors_solver
    from modules.loss import Similarity, SupConR

    return {"config": authors_config, "solver": authors_solver, "SupConR": SupConR, "Similarity": Similarity,
            "src": str(src)}


def authors_hp(authors: dict, bert_dir: Path, batch_size: int):
    """Their hyper-parameters: `config.get_args()` defaults (MOSI), completed as `main.py` does."""
    argv = sys.argv
    try:
        sys.argv = ["main.py", "--dataset", "mosi", "--bert_path", str(bert_dir), "--batch_size", str(batch_size)]
        hp = authors["config"].get_args()
    finally:
        sys.argv = argv
    hp.word2id = None  # main.py: train_config.word2id (their GloVe vocabulary; unused by HSCL)
    hp.d_tin, hp.d_vin, hp.d_ain = 768, VISION_DIM, AUDIO_DIM  # main.py: train_config.tva_dim
    hp.dataset = hp.data = "mosi"
    hp.n_class = authors["config"].output_dim_dict.get("mosi", 1)
    hp.criterion = authors["config"].criterion_dict.get("mosi", "MSELoss")
    hp.n_train = hp.n_valid = hp.n_test = POOL * batch_size  # get_loader sets these; read by train()/evaluate()
    return hp


class AuthorsStep:
    def __init__(self, authors: dict, bert_dir: Path, batch_size: int, seed: int, anomaly: bool,
                 device: str = "cpu", amp: bool = False):
        import torch

        self.device, self.amp = torch.device(device), amp
        self.hp = hp = authors_hp(authors, bert_dir, batch_size)
        torch.manual_seed(seed)
        # their Solver builds HSCL(hp), does their Xavier initialisation and their Adam groups;
        # loaders are only stored by __init__
        self.solver = authors["solver"].Solver(hp, train_loader=None, dev_loader=None, test_loader=None)
        self.model = self.solver.model.to(self.device).train()  # their solver calls .cuda() itself on a GPU
        self.optimizer = self.solver.optimizer_main
        self.criterion = self.solver.criterion
        self.SupConR, self.Similarity = authors["SupConR"], authors["Similarity"]
        self.anomaly = anomaly
        self.hp_used = {k: getattr(hp, k) for k in ("dataset", "alpha", "omega1", "omega2", "d_prjh",
                                                    "dropout_prj", "clip", "lr_main", "lr_bert",
                                                    "weight_decay_main", "weight_decay_bert", "optim",
                                                    "update_batch")}
        if hp.update_batch != 1:
            raise SystemExit(f"authors' update_batch={hp.update_batch}: this benchmark times update_batch=1")

    def params(self) -> dict[str, int]:
        m = self.model
        streams = count(m.acoustic_enc) + count(m.visual_enc)
        fusion = count(m.ta_encoder) + count(m.tv_encoder)
        text = count(m.text_enc)
        return {"total": count(m), "text_encoder": text, "streams": streams, "fusion": fusion,
                "heads": count(m) - text - streams - fusion}

    def __call__(self, b: dict) -> None:
        """The loop body of `train()` in their solver.py; their `.cuda()` moves are the `.to(device)`
        below (lengths stay on the CPU, as theirs do). With ``--amp`` their forward and losses run
        under ``torch.autocast`` in bf16 — which their code does not do itself — to compare like with like."""
        import contextlib

        import torch

        model, optimizer, criterion, hp = self.model, self.optimizer, self.criterion, self.hp
        if self.device.type == "cuda":
            b = {k: (v if k in ("vlens", "alens") else v.to(self.device, non_blocking=True)) for k, v in b.items()}
        cast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp and self.device.type == "cuda"
                else contextlib.nullcontext())
        model.zero_grad()
        with cast:
            preds, feature, _fusion, feature_at, feature_vt = model(
                b["text"], b["visual"], b["audio"], b["vlens"], b["alens"], b["bert_sent"], b["bert_sent_type"],
                b["bert_sent_mask"])
            y = b["y"]
            y_loss = criterion(preds, y)
            cre_cl = self.SupConR(temperature=0.5)
            cre_simi = self.Similarity()
            loss_fusion = cre_cl(feature, y)
            at_contrast_loss = cre_cl(feature_at, y)
            vt_contrast_loss = cre_cl(feature_vt, y)
            at_simi_loss = cre_simi(feature_at)
            vt_simi_loss = cre_simi(feature_vt)
            loss_at = at_contrast_loss + hp.alpha * at_simi_loss
            loss_vt = vt_contrast_loss + hp.alpha * vt_simi_loss
            loss = y_loss + hp.omega1 * (loss_at + loss_vt) + hp.omega2 * loss_fusion
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hp.clip)  # update_batch = 1: every step
        optimizer.step()
        loss.item() * y.size(0)  # proc_loss, epoch_loss
        loss.item() * y.size(0)


# ---------------------------------------------------------------------------------------------
# timing


def run_block(step, batches: list, n: int, anomaly: bool = False) -> float:
    """Seconds for `n` steps over `batches` (cycled)."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    previous = torch.is_anomaly_enabled()
    torch.autograd.set_detect_anomaly(anomaly)
    try:
        t0 = time.perf_counter()
        for i in range(n):
            step(batches[i % len(batches)])
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # the GPU's queued work belongs to the block
        return time.perf_counter() - t0
    finally:
        torch.autograd.set_detect_anomaly(previous)


def measure(batch_size: int, args, bert_dir: Path, authors: dict | None) -> dict:
    arrays = make_split(batch_size, args.seed)
    p_batches = project_batches(arrays, batch_size)
    t0 = time.perf_counter()
    project = ProjectStep(bert_dir, arrays, batch_size, args.project_faithful, args.seed, args.device, args.amp)
    built = {"project_build_s": time.perf_counter() - t0}
    impls: dict[str, tuple] = {"project": (project, p_batches, False)}
    row: dict = {"batch_size": batch_size, "steps": args.steps, "warmup": args.warmup,
                 "repeats": args.repeats, "params": {"project": project.params()}}
    if authors is not None:
        t0 = time.perf_counter()
        theirs = AuthorsStep(authors, bert_dir, batch_size, args.seed, args.authors_anomaly, args.device, args.amp)
        built["authors_build_s"] = time.perf_counter() - t0
        impls["authors"] = (theirs, [authors_batch(b) for b in p_batches], args.authors_anomaly)
        row["params"]["authors"] = theirs.params()
        row["authors_hp"] = theirs.hp_used
    row.update(built)
    for name, (step, batches, anomaly) in impls.items():
        if args.warmup:
            run_block(step, batches, args.warmup, anomaly)
    seconds: dict[str, list[float]] = {name: [] for name in impls}
    for r in range(args.repeats):
        for name, (step, batches, anomaly) in impls.items():  # project block, then authors block
            s = run_block(step, batches, args.steps, anomaly)
            seconds[name].append(s)
            print(f"  batch {batch_size:>4} round {r + 1}/{args.repeats} {name:<8} "
                  f"{args.steps * batch_size / s:8.1f} samples/s ({s / args.steps:.3f} s/step)", flush=True)
    row["block_seconds"] = seconds
    row["samples_per_s"] = {name: statistics.median(args.steps * batch_size / s for s in v)
                            for name, v in seconds.items()}
    row["step_s"] = {name: statistics.median(v) / args.steps for name, v in seconds.items()}
    if authors is not None:
        row["ratio_project_over_authors"] = row["samples_per_s"]["project"] / row["samples_per_s"]["authors"]
        row["ratio_per_round_median"] = statistics.median(a / p for p, a in zip(seconds["project"],
                                                                                  seconds["authors"]))
    del impls, project
    gc.collect()
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-sizes", default="32,128", help="comma-separated (default 32,128)")
    p.add_argument("--steps", type=int, default=5, help="steps per timed block (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per implementation (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--authors-src", default=None,
                   help="src/ folder of a clone of github Turdidae810/HSCL (outside this repository)")
    p.add_argument("--authors-anomaly", action="store_true",
                   help="anomaly detection on during the authors' blocks, as their main.py runs")
    p.add_argument("--project-faithful", action="store_true", help="time the project with hscl.faithful=true")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where both steps run (default cpu)")
    p.add_argument("--amp", action="store_true",
                   help="bf16 autocast (CUDA only: the trainer's amp; the authors' step under the same autocast)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/train_step.json)")
    args = p.parse_args()
    sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]
    if not sizes or min(sizes) < 2 or args.steps < 1 or args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        p.error("need batch sizes >= 2, --steps >= 1, --repeats >= 1, --warmup >= 0, --threads >= 1")
    if args.amp and args.device != "cuda":
        p.error("--amp needs --device cuda (the trainer's autocast is CUDA-only)")

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # "Writing model shards" / "Loading weights" bars
    # their TransformerEncoder (batch_first=False) warns about nested tensors at construction: harmless
    warnings.filterwarnings("ignore", message="enable_nested_tensor is True")
    torch.set_num_threads(args.threads)
    authors = import_authors(Path(args.authors_src)) if args.authors_src else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_train_step_bert_") as tmp:
        bert_dir = Path(tmp) / "bert-768-2l"
        save_bert(bert_dir, args.seed)
        for b in sizes:
            rows.append(measure(b, args, bert_dir, authors))

    print()
    for name in ("project", "authors"):
        if name in rows[0]["params"]:
            q = rows[0]["params"][name]
            print(f"parameters {name:<8} total {q['total']:>11,}  text encoder {q['text_encoder']:>11,}  "
                  f"A/V streams {q['streams']:>7,}  fusion {q['fusion']:>10,}  heads {q['heads']:>8,}")
    print(f"\n{'batch':>5} {'impl':<8} {'step s':>8} {'samples/s':>10} {'ratio p/a':>10} {'per-round':>10}")
    for r in rows:
        for name, sps in r["samples_per_s"].items():
            ratio = per_round = ""
            if name == "project" and "ratio_project_over_authors" in r:
                ratio = f"{r['ratio_project_over_authors']:.2f}"
                per_round = f"{r['ratio_per_round_median']:.2f}"
            print(f"{r['batch_size']:>5} {name:<8} {r['step_s'][name]:>8.3f} {sps:>10.1f} {ratio:>10} {per_round:>10}")
    write_json("train_step", {"args": vars(args), "machine": machine(), "authors_src": authors and authors["src"],
                              "text_encoder": {"kind": "random BertModel", **BERT},
                              "inputs": {"text_tokens": TEXT_LEN, "frames": FRAMES, "audio_dim": AUDIO_DIM,
                                         "vision_dim": VISION_DIM, "attention_mask": "all ones"},
                              "rows": rows}, args.out)


if __name__ == "__main__":
    main()
