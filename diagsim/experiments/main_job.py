"""The main job behind ``diagsim run``: Adam versus SGD with label noise on one sparse-regression problem,
laid against the implicit-bias predictions.

Steps: (1) generate (or load) the problem; (2) run both discrete optimizers over an ensemble of paths,
recording on a log grid; (3) predict each optimizer's limit (SGD: weighted basis pursuit, an LP; Adam: the
weighted l_{1/2} minimizer, global by support enumeration when tractable, else a local minimizer started
from Adam's own ensemble mean) and compare; (4) save both results, a JSON summary and a figure.

Nothing computed is lost: each run is written as soon as it ends and checkpointed while it runs
(``<out>/<name>.ckpt.npz``; run the same command again to resume an interrupted run).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import CorruptFileError, DiagsimError, StoredWorkMismatch
from ..networks.diagonal.problem import Problem
from ..optimizers import SGD, Adam, LabelNoise
from ..storage import check_output_dir, describe_diff, save_figure, write_text_atomic


@dataclass(frozen=True)
class MainJobConfig:
    """The default configuration: a laptop-scale version of the paper's experiment (d = 100 instead of
    1000) on a problem where the two implicit biases disagree (n = 18, k = 4, seed 1: the weighted-l1
    interpolator misses w*, the weighted-l_{1/2} one is w*), with the hyperparameters of
    ``paper_repro/fig1_trajectories.toml``: label noise delta = 1; Adam lr 0.01, beta1 0.9, beta2 0.95,
    eps 1e-6; SGD lr 0.05; 10^6 steps each, 8 paths."""

    adam_lr: float = 0.01
    sgd_lr: float = 0.05
    label_noise: float = 1.0
    adam_steps: int = 1_000_000
    sgd_steps: int = 1_000_000
    n_paths: int = 8
    noise_seed: int = 0
    device: str = "cpu"

    def quick(self) -> "MainJobConfig":
        return replace(self, adam_steps=100_000, sgd_steps=100_000, n_paths=4)


def _run_one(name, problem, opt, steps, cfg, out: Path, *, progress, overwrite, log, callback=None):
    """One optimizer's run: loaded when ``<out>/<name>.npz`` holds exactly this run, continued from
    ``<out>/<name>.ckpt.npz`` when that holds this run, computed otherwise. Stored work made from other
    settings is refused (or, with ``overwrite``, deleted first, saying so)."""
    from ..engine.driver import plan_run, simulate
    from ..engine.result import load_result
    final = out / f"{name}.npz"
    ckpt = out / f"{name}.ckpt.npz"
    kw = dict(steps=steps, n_paths=cfg.n_paths, seed=cfg.noise_seed, record="log", device=cfg.device)
    plan = plan_run(problem, opt, **kw)
    if overwrite:
        for path in (final, final.with_suffix(".json"), ckpt):
            if path.exists():
                path.unlink()
                log(f"[{name}] --overwrite: deleted {path}")
    if final.exists():
        try:
            res = load_result(final)
        except CorruptFileError as exc:
            log(f"[{name}] {exc}: computing it again")
        else:
            diffs = plan.differences(res.config, res.steps, res.paths)
            if diffs:
                raise StoredWorkMismatch(f"{final} holds a run made with other settings ({describe_diff(diffs)}); "
                                         "choose another --out for this run, or add --overwrite to replace it",
                                         path=final, differences=diffs)
            return res, "loaded"
    try:
        res = simulate(problem, opt, **kw, progress=progress, checkpoint=ckpt, checkpoint_every=30.0,
                       callback=callback)
    except StoredWorkMismatch as exc:
        raise StoredWorkMismatch(f"{exc}; or add --overwrite to discard it", path=exc.path,
                                 differences=exc.differences) from None
    except CorruptFileError as exc:
        log(f"[{name}] {exc}: starting afresh")  # a corrupt checkpoint holds nothing to continue from
        ckpt.unlink()
        res = simulate(problem, opt, **kw, progress=progress, checkpoint=ckpt, checkpoint_every=30.0,
                       callback=callback)
    how = "computed" if res.info.get("resumed_from_step") is None else \
        f"resumed from step {res.info['resumed_from_step']} and computed"
    res.save(final)
    ckpt.unlink(missing_ok=True)
    return res, how


#: what summary.json keeps of each run's summary
SUMMARY_KEYS = ("train_loss", "train_loss_se", "test_loss", "test_loss_se", "l1", "l1_se", "support", "support_se",
                "trace_h", "trace_sqrt_diag_h", "trace_sqrt_diag_gn", "n_diverged", "steps", "tau")


def _method_label(pred) -> str:
    """A short, complete name of how a prediction was obtained and whether it is a global minimizer."""
    kind = pred.method.split(" (")[0].split(";")[0].strip()
    solver = {"LP": "weighted-l1 LP", "global": "support enumeration", "convex": "dual Newton",
              "local": "reweighted l1 from " + ("the min-norm interpolator" if "minimum-norm" in pred.method
                                                 else "x0")}.get(kind, kind)
    return f"{solver} ({'global' if pred.is_global else 'local'})"


def run_main_job(problem: Problem, cfg: MainJobConfig, out, *, progress=None, log=print, overwrite=False,
                 callback=None) -> dict:
    """Run the main job; returns the summary dict (also written to ``<out>/summary.json``).

    ``overwrite`` deletes stored runs made with other settings instead of refusing them; ``callback`` is
    passed to :func:`diagsim.simulate` (called after every chunk of steps)."""
    from ..predict import predict
    out = check_output_dir(out, "output folder")
    noise = LabelNoise(cfg.label_noise)
    optimizers = {
        "adam": (Adam(cfg.adam_lr, noise=noise, beta1=0.9, beta2=0.95, eps=1e-6), cfg.adam_steps),
        "sgd": (SGD(cfg.sgd_lr, noise=noise), cfg.sgd_steps),
    }
    summary = {"problem": problem.describe(), "config": cfg.__dict__, "runs": {}}
    results = {}
    for name, (opt, steps) in optimizers.items():
        t0 = time.perf_counter()
        log(f"[{name}] {steps} steps x {cfg.n_paths} paths, lr={opt.lr}, label noise ±{cfg.label_noise}")
        res, how = _run_one(name, problem, opt, steps, cfg, out, progress=progress, overwrite=overwrite, log=log,
                            callback=callback)
        results[name] = res
        log(f"[{name}] {how} in {time.perf_counter() - t0:.1f} s -> {out / (name + '.npz')}")
    preds = {}
    for name, res in results.items():
        try:  # both predictions start from the same neutral point, the minimum-norm interpolator
            preds[name] = predict(problem, name, method="auto")
        except DiagsimError as exc:
            preds[name] = None
            log(f"[{name}] no prediction: {exc}")
        row = res.summary()
        entry = {k: row.get(k, float("nan")) for k in SUMMARY_KEYS}
        pred = preds[name]
        if pred is not None:
            diff = res.w - pred.w
            dist = np.sqrt((diff * diff).sum(axis=1))
            entry["prediction"] = {
                "method": pred.method, "label": _method_label(pred), "is_global": pred.is_global,
                "support": pred.support.tolist(),
                "test_loss": float(problem.test_loss_w(pred.w)), "l1": float(np.abs(pred.w).sum()),
                "measures": {k: float(v) for k, v in pred.measures.items()},
                "distance_mean": float(dist.mean()),
                "distance_se": float(dist.std(ddof=1) / np.sqrt(dist.size)) if dist.size > 1 else float("nan"),
            }
        summary["runs"][name] = entry
    if problem.w_star is None and problem.Z_test is None:
        summary["note"] = "test loss n/a: the data has neither w_star nor a test set (Z_test, y_test)"
    fig = out / "adam_vs_sgd.png"
    plot_main_job(problem, results, {k: (None if p is None else p.w) for k, p in preds.items()}, fig, cfg=cfg)
    summary["figure"] = str(fig)
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=1, default=float) + "\n")
    return summary


def draw_main_job(problem: Problem, results: dict, w_pred: dict, cfg: MainJobConfig | None = None):
    """The main job's figure (returned, not saved): test loss, ||w||_1 and support size along the runs
    (mean ± se over paths, log steps) with the predicted limits dashed, and the final mean w against w*
    and the predictions. A predicted value below the plotted range (exact recovery: a test loss of
    order 1e-30) is named in the legend instead of stretching the axis."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"adam": "C3", "sgd": "C0"}
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.3))
    panels = (("test_loss", "test loss ½‖w−w*‖²"), ("l1", "‖w‖₁"), ("support", "support size (|wᵢ|>1e-3)"))
    for ax, (key, lab) in zip(axes[:3], panels):
        ax.set_title(lab)
        if not any(np.isfinite(res.records[key]).any() for res in results.values()):
            ax.text(0.5, 0.5, "n/a: the data has neither\nw* nor a test set", ha="center", va="center",
                    transform=ax.transAxes)
            continue
        lo = np.inf
        for name, res in results.items():
            k = np.maximum(res.steps, 1)
            v = res.records[key]
            m = np.nanmean(v, axis=1)
            se = np.nanstd(v, axis=1, ddof=1) / np.sqrt(v.shape[1]) if v.shape[1] > 1 else 0 * m
            ax.plot(k, m, color=colors[name], label=f"{name} (mean ± se)")
            ax.fill_between(k, m - se, m + se, color=colors[name], alpha=0.25)
            lo = min(lo, np.nanmin(m))
        for name in results:
            wp = w_pred.get(name)
            if wp is None:
                continue
            ref = {"test_loss": float(problem.test_loss_w(wp)), "l1": float(np.abs(wp).sum()),
                   "support": int((np.abs(wp) > 1e-3).sum())}[key]
            if key == "test_loss" and not ref >= 0.1 * lo:
                ax.plot([], [], color=colors[name], ls="--", lw=1,
                        label=f"{name} predicted: {ref:.1g} (below the axis)")
            else:
                ax.axhline(ref, color=colors[name], ls="--", lw=1, label=f"{name} predicted limit")
        ax.set_xscale("log")
        ax.set_xlabel("step k")
        if key == "test_loss":
            ax.set_yscale("log")
            ax.legend(fontsize=7)
    ax3 = axes[3]
    idx = np.arange(problem.d)
    if problem.w_star is not None:
        ax3.plot(idx, problem.w_star, "k.", ms=6, label="w*")
    for name, res in results.items():
        ax3.plot(idx, res.w_mean, ".", color=colors[name], ms=3, label=f"{name} (mean w)")
        if w_pred.get(name) is not None:
            ax3.plot(idx, w_pred[name], "x", color=colors[name], ms=5, label=f"{name} predicted")
    ax3.set_xlabel("coordinate i")
    ax3.set_title("final w")
    ax3.legend(fontsize=7)
    pr = problem.describe()
    k_txt = f", k = {pr['k']}" if "k" in pr else ""
    parts = [f"n = {problem.n}, d = {problem.d}{k_txt} ({pr.get('design', 'user data')} design, "
             f"{problem.param.name})"]
    if cfg is not None:
        parts.append(f"label noise ±{cfg.label_noise:g}; Adam lr {cfg.adam_lr:g} (β1 0.9, β2 0.95, ε 1e-6), "
                     f"SGD lr {cfg.sgd_lr:g}; {cfg.n_paths} paths each")
    fig.suptitle("Adam vs SGD with label noise — " + "; ".join(parts), fontsize=10)
    fig.tight_layout()
    return fig


def plot_main_job(problem: Problem, results: dict, w_pred: dict, path, cfg: MainJobConfig | None = None) -> None:
    """Draw the main job's figure (:func:`draw_main_job`) and save it to ``path``."""
    import matplotlib.pyplot as plt
    fig = draw_main_job(problem, results, w_pred, cfg)
    save_figure(fig, path, dpi=110)
    plt.close(fig)
