"""``diagsim simulate``: run an ensemble of an optimizer (or its SDE / slow flow) and summarize it.

    diagsim simulate --optimizer adam --lr 0.1 --beta2 0.95 --steps 100000 --paths 64 --out run.npz
    diagsim simulate --optimizer sgd --lr 0.005 --label-noise 0.5 --tau 1.0 --json
    diagsim simulate --config run.toml --paths 16          # flags override the file
    diagsim simulate --resume run.ckpt.npz                 # continue an interrupted run
    diagsim simulate --model-family matrix --family-option depth=3 --optimizer adam --steps 1000
    diagsim simulate --model-family matrix --data sensing.npz --optimizer sgd --steps 1000

The horizon is one of --steps N, --t T (SDE time, dt per step) or --tau TAU (slow time, lr * t).
--seed seeds the generated problem and, unless --noise-seed is given, the noise.
--config FILE.toml: keys mirror the long flags (``label-noise`` or ``label_noise``); tables [problem],
[optimizer] and [run] are flattened; a table [model_options] gives the model options. Flags given on
the command line override the file.
--checkpoint-every: seconds (``60``, ``60s``) or steps (``5000steps``).
--model-family NAME: the model family of the problem (default ``diagonal``, the diagonal network of the
problem flags). Another family is built by its registered maker, ``family(NAME).make(**options)``, with the
options ``--family-option KEY=VALUE`` (repeatable, VALUE parsed as JSON; a ``[family_options]`` table in
--config; ``seed`` is --seed unless given), or read from ``--data FILE`` by the family's loader
(``family(NAME).load(FILE, **options)``; for the matrix family an .npz with ``A`` (n, m1, m2), ``y`` (n) and
optionally ``W_star``). Without --model-family, a --data file with ``Z`` is the diagonal family's, and one
without is read by the first other registered family whose loader accepts it. The diagonal problem flags
(--n, --d, ...) do not apply to the other families.
--json prints one JSON object: w_mean, w_se (d floats; diagonal family only), the final observables (mean and ``*_se``),
n_paths, n_diverged, diverged, model, optimizer, steps, t, tau, seed, elapsed_s.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import fields

import numpy as np

from ..errors import DiagsimError, StoredWorkMismatch
from .common import add_device_arg, add_problem_args, print_json, print_table, problem_from_args


def hyper_flags() -> dict:
    """Every optimizer hyperparameter as a flag, from the spec classes' dataclass fields:
    field name -> {"field": a dataclasses.Field, "owners": {optimizer name: its default}}."""
    from ..optimizers.specs import OPTIMIZERS, hyperparameters
    flags: dict = {}
    for name, cls in OPTIMIZERS.items():
        for f in hyperparameters(cls):
            flags.setdefault(f.name, {"field": f, "owners": {}})["owners"][name] = f.default
    return flags


def _flag_help(entry: dict) -> str:
    """The field's help and, per default value, the optimizers that take the flag."""
    by_default: dict = {}
    for name, default in entry["owners"].items():
        by_default.setdefault(repr(default), []).append(name)
    owners = "; ".join(f"{', '.join(names)}: {d}" for d, names in by_default.items())
    return f"{entry['field'].metadata.get('help', '')} ({owners})"


def _add_optimizer_flags(group) -> None:
    from ..optimizers.specs import OPTIMIZERS
    group.add_argument("--optimizer", default="sgd", help=" | ".join(OPTIMIZERS) + " (default sgd)")
    lrs = {}
    for name, cls in OPTIMIZERS.items():
        lrs.setdefault(cls.default_lr, []).append(name)
    group.add_argument("--lr", type=float, help="learning rate eta (default: "
                       + "; ".join(f"{', '.join(n)}: {lr:g}" for lr, n in lrs.items()) + ")")
    for dest, entry in hyper_flags().items():
        f = entry["field"]
        default = next(iter(entry["owners"].values()))
        flag = "--" + dest.replace("_", "-")
        if isinstance(default, bool):
            group.add_argument(flag, action="store_true", default=None, help=_flag_help(entry))
        elif "parse" in f.metadata or default is None:
            group.add_argument(flag, metavar=f.metadata.get("metavar"), help=_flag_help(entry))
        else:
            group.add_argument(flag, type=type(default), help=_flag_help(entry))


class _Default:
    """Marks a value argparse filled in (not given on the command line), so --config can override it."""

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return repr(self.value)


def register(sub) -> None:
    p = sub.add_parser("simulate", help="run an optimizer / SDE / slow flow over an ensemble of paths",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    o = p.add_argument_group("optimizer (flags named after the optimizers' fields)")
    _add_optimizer_flags(o)
    o.add_argument("--noise", help="rademacher | gaussian (label noise) | minibatch | none "
                                   "(default rademacher; none for gd)")
    o.add_argument("--label-noise", type=float, help="label-noise scale delta (0.5)")
    o.add_argument("--batch-size", type=int, help="minibatch size B (with --noise minibatch; default 1)")

    r = p.add_argument_group("run")
    r.add_argument("--model", default="discrete", help="discrete | sde | slow-flow (default discrete)")
    r.add_argument("--model-option", action="append", default=None, metavar="KEY=VALUE",
                   help="option of the model, e.g. dt=0.01 (repeatable; VALUE parsed as JSON if possible)")
    h = r.add_mutually_exclusive_group()
    h.add_argument("--steps", type=int, help="horizon in steps")
    h.add_argument("--t", type=float, help="horizon in SDE time t = dt * steps")
    h.add_argument("--tau", type=float, help="horizon in slow time tau = lr * t")
    r.add_argument("--paths", type=int, default=1, help="ensemble size M (default 1)")
    r.add_argument("--noise-seed", type=int, help="seed of the noise (default: --seed)")
    r.add_argument("--record", default=None, help="record grid: an integer stride, log or linear (default)")
    r.add_argument("--n-records", type=int, default=101, help="record points for log / linear (101)")
    r.add_argument("--divergence-factor", type=float, default=1e6,
                   help="a path diverges when its loss exceeds factor * (initial loss + 1) (1e6)")
    r.add_argument("--config", metavar="FILE", help="TOML file whose keys mirror these flags")
    r.add_argument("--out", metavar="FILE", help="save the result (.npz, plus a .json sidecar)")
    r.add_argument("--checkpoint", metavar="FILE", help="checkpoint file (written atomically)")
    r.add_argument("--checkpoint-every", default="60", help="seconds (60, 60s) or steps (5000steps)")
    r.add_argument("--resume", metavar="FILE", help="continue the run saved in this checkpoint")
    r.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    add_device_arg(r)
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    add_problem_args(p)
    f = p.add_argument_group("model family")
    f.add_argument("--model-family", default="diagonal",
                   help="the problem's model family (default diagonal; see diagsim.networks.model.family_names)")
    f.add_argument("--family-option", action="append", default=None, metavar="KEY=VALUE",
                   help="option of the family's maker or loader, e.g. depth=3 (repeatable; VALUE parsed as JSON "
                        "if possible)")
    for a in p._actions:  # mark argparse's defaults (an append action must keep its list default: None)
        if (a.dest not in ("help", "config") and a.default is not argparse.SUPPRESS
                and not isinstance(a, argparse._AppendAction)):
            a.default = _Default(a.default)
    p.set_defaults(func=main)


# --------------------------------------------------------------------------- arguments
def _load_config(path) -> dict:
    import tomllib
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise DiagsimError(f"config file {path!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise DiagsimError(f"config file {path!r} is not valid TOML ({exc})") from None
    out = {}
    for key, val in raw.items():
        if isinstance(val, dict) and key in ("problem", "optimizer", "run"):
            for k2, v2 in val.items():
                out[k2.replace("-", "_")] = v2
        elif key in ("model_options", "model-options", "family_options", "family-options"):
            name = key.replace("-", "_")
            if not isinstance(val, dict):
                raise DiagsimError(f"config key {name} must be a table")
            out[name] = val
        else:
            out[key.replace("-", "_")] = val
    return out


def _resolve(args) -> argparse.Namespace:
    """Command-line values, then the --config file, then the defaults."""
    cfg = _load_config(args.config) if args.config else {}
    known = set(vars(args)) - {"func", "command", "config"}
    unknown = sorted(set(cfg) - known - {"model_options", "family_options"})
    if unknown:
        raise DiagsimError(f"unknown key(s) in {args.config}: {', '.join(unknown)} "
                           f"(keys mirror the flags, e.g. lr, beta2, label-noise, steps, paths)")
    out = argparse.Namespace()
    out.given = set(cfg)  # what the command line or the config file set (not argparse's defaults)
    for key, val in vars(args).items():
        if isinstance(val, _Default):
            val = cfg.get(key, val.value)
        elif key not in ("func", "command", "config") and val is not None:
            out.given.add(key)
        setattr(out, key, val)
    out.model_options_table = cfg.get("model_options", {})
    out.family_options_table = cfg.get("family_options", {})
    if sum(getattr(out, k) is not None for k in ("steps", "t", "tau")) > 1:
        raise DiagsimError("give only one of --steps, --t, --tau (the config file and the flags together)")
    return out


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _key_values(table: dict, items, flag: str) -> dict:
    """The options of a config table, then those of a repeatable KEY=VALUE flag (VALUE as JSON if it parses)."""
    opts = dict(table)
    for item in items or []:
        if "=" not in item:
            raise DiagsimError(f"{flag} must be KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        opts[k.strip().replace("-", "_")] = _parse_value(v.strip())
    return opts


def _model_options(a) -> dict:
    return _key_values(a.model_options_table, a.model_option, "--model-option")


#: the problem flags of the diagonal family (they do not apply to the other families)
DIAGONAL_PROBLEM_FLAGS = ("n", "d", "k", "design", "teacher", "support", "param", "init", "alpha")


def _family_of_data(path, opts: dict) -> str:
    """The family of a --data file given without --model-family: "diagonal" for a file with ``Z`` (or one
    that cannot be read: its loader says why), else the first other registered family (by name) whose loader
    reads it; a one-line error when none does."""
    from ..networks.model import family, family_names
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:  # np.load leaks its own handle on
            keys = set(f.files)                                              # a corrupt zip
    except Exception:  # noqa: BLE001 - unreadable: the diagonal loader reports it
        return "diagonal"
    if "Z" in keys:
        return "diagonal"
    tried = []
    for name in family_names():
        if name == "diagonal":
            continue
        try:
            family(name).load(path, **opts)
        except (DiagsimError, TypeError) as exc:
            tried.append(f"{name}: {exc}")
            continue
        return name
    raise DiagsimError(f"--data {path!r} has no 'Z' (the diagonal family's format) and no other model family reads "
                       f"it ({'; '.join(tried) or 'none registered'}); give --model-family")


def build_problem(a):
    """The problem of the resolved arguments: the diagonal family's from the problem flags / --data, or another
    family's through the registry (``family(name).make(**options)`` / ``.load(--data, **options)``), so that
    this command knows no family but by its name."""
    from inspect import Parameter, signature

    from ..networks.model import family
    name = a.model_family
    opts = _key_values(a.family_options_table, a.family_option, "--family-option")
    if a.data and "model_family" not in a.given:
        name = _family_of_data(a.data, opts)
    if name == "diagonal":
        if opts:
            raise DiagsimError("--family-option applies to the other model families; the diagonal family takes "
                               "the problem flags (--n, --d, --k, ...)")
        return problem_from_args(a)
    fam = family(name)
    wrong = [f"--{k}" for k in DIAGONAL_PROBLEM_FLAGS if k in a.given]
    if wrong:
        raise DiagsimError(f"{', '.join(wrong)} belong to the diagonal family; for --model-family {name} give its "
                           "options as --family-option KEY=VALUE")
    make = fam.make if not a.data else fam.load
    params = signature(make).parameters
    if "seed" not in opts and "seed" in params and (not a.data or "seed" in a.given):
        opts["seed"] = a.seed
    if not any(p.kind is Parameter.VAR_KEYWORD for p in params.values()):
        names = list(params)[1:] if a.data else list(params)  # a loader's first parameter is the file
        allowed = [k for k in names if params[k].kind in (Parameter.KEYWORD_ONLY, Parameter.POSITIONAL_OR_KEYWORD)]
        bad = sorted(set(opts) - set(allowed))
        if bad:
            raise DiagsimError(f"model family {name!r} has no option {', '.join(map(repr, bad))}; its options: "
                               f"{', '.join(allowed) or 'none'}")
    return fam.load(a.data, **opts) if a.data else fam.make(**opts)


def build_optimizer(a, dim: int):
    """The optimizer spec of the resolved arguments: ``--optimizer`` names the spec class, and every
    hyperparameter flag given sets the field of the same name."""
    from ..errors import check_choice
    from ..optimizers import specs as S

    name = check_choice("--optimizer", a.optimizer, S.OPTIMIZERS)
    cls = S.OPTIMIZERS[name]
    default_noise = next(f for f in fields(cls) if f.name == "noise").default_factory()
    noise_name = a.noise or ("none" if isinstance(default_noise, S.NoNoise) else "rademacher")
    check_choice("--noise", noise_name, ("rademacher", "gaussian", "minibatch", "none"))
    if noise_name in ("rademacher", "gaussian"):
        noise = S.LabelNoise(0.5 if a.label_noise is None else a.label_noise, noise_name)
    elif noise_name == "minibatch":
        noise = S.Minibatch(1 if a.batch_size is None else a.batch_size)
    else:
        noise = S.NoNoise()
    if a.label_noise is not None and noise_name not in ("rademacher", "gaussian"):
        raise DiagsimError(f"--label-noise needs --noise rademacher or gaussian (got --noise {noise_name})")
    if a.batch_size is not None and noise_name != "minibatch":
        raise DiagsimError("--batch-size needs --noise minibatch")
    kw = {}
    for dest, entry in hyper_flags().items():
        val = getattr(a, dest)
        if val is None:
            continue
        if name not in entry["owners"]:
            raise DiagsimError(f"--{dest.replace('_', '-')} does not apply to --optimizer {name} "
                               f"(it applies to {', '.join(entry['owners'])})")
        parse = entry["field"].metadata.get("parse")
        kw[dest] = parse(val, dim) if parse is not None and isinstance(val, str) else val
    lr = cls.default_lr if a.lr is None else a.lr
    try:
        return cls(lr=lr, noise=noise, **kw)
    except TypeError as exc:  # e.g. a string where a number is needed, from the config file
        raise DiagsimError(f"bad hyperparameter for {name}: {exc}") from None


def _checkpoint_every(text):
    s = str(text).strip()
    try:
        if s.endswith("steps"):
            return int(s[:-5])
        return float(s[:-1] if s.endswith("s") else s)
    except ValueError:
        raise DiagsimError(f"--checkpoint-every must be seconds (60, 60s) or steps (5000steps); got {text!r}") from None


def _record(text):
    if text is None or isinstance(text, int):
        return text
    s = str(text)
    if s in ("log", "linear"):
        return s
    try:
        return int(s)
    except ValueError:
        raise DiagsimError(f"--record must be an integer stride, log or linear; got {text!r}") from None


# --------------------------------------------------------------------------- output
def _print_model_summary(res, out_path, elapsed) -> None:
    """The summary of a run on a non-diagonal model family: configuration and final observables."""
    cfg = res.config
    pr = {k: v for k, v in cfg["problem"].items() if k != "data_sha256"}
    print(f"optimizer   {json.dumps(cfg['optimizer'])}")
    print(f"model       {cfg['model']}" + (f" {cfg['model_options']}" if cfg["model_options"] else ""))
    print(f"problem     {json.dumps(pr, default=str)}")
    print(f"run         {res.n_paths} paths x {res.n_steps} steps, t = {cfg['t']:.6g}, tau = {cfg['tau']:.6g}, "
          f"noise seed {cfg['seed']}, {elapsed:.3g} s")
    print()
    n_ok = res.n_paths - int(res.diverged_mask.sum())
    rows = []
    for key, val in res.final_observables.items():
        mean, se = res.mean_se(val)
        rows.append((key, float(mean), "-" if not np.isfinite(se) else float(se)))
    print(f"final state: mean and standard error over {n_ok} path(s)")
    print_table(rows, ("observable", "mean", "se"))
    for rep in res.diverged[:10]:
        print(f"diverged: {rep['message']}")
    if out_path:
        print()
        print(f"saved: {out_path}")


def _print_summary(res, out_path, elapsed, w_star=None) -> None:
    if res.family != "diagonal":
        _print_model_summary(res, out_path, elapsed)
        return
    cfg = res.config
    oc = dict(cfg["optimizer"])
    name = oc.pop("optimizer")
    noise = oc.pop("noise")
    hyper = ", ".join(f"{k}={v}" for k, v in oc.items() if v is not None)
    nz = {"label": lambda: f"label noise {noise['dist']} delta={noise['delta']}",
          "minibatch": lambda: f"minibatch noise B={noise['batch_size']}",
          "none": lambda: "no noise"}[noise["kind"]]()
    pr = cfg["problem"]
    print(f"optimizer   {name} ({hyper}); {nz}")
    print(f"model       {cfg['model']}" + (f" {cfg['model_options']}" if cfg["model_options"] else ""))
    print(f"problem     n={pr['n']} d={pr['d']} {pr['parametrization']} init={pr['init']} alpha={pr['alpha']} "
          f"seed={pr['seed']} ({pr.get('source', '')})")
    resumed = res.info.get("resumed_from_step")
    print(f"run         {res.n_paths} paths x {res.n_steps} steps, t = {cfg['t']:.6g}, tau = {cfg['tau']:.6g}, "
          f"noise seed {cfg['seed']}, {elapsed:.3g} s" + (", on the GPU" if cfg.get("device") == "cuda" else "")
          + (f" (continued from its checkpoint at step {resumed})" if resumed is not None else ""))
    print()
    n_ok = res.n_paths - int(res.diverged_mask.sum())
    rows, undefined = [], []
    for key, val in res.final_observables.items():
        mean, se = res.mean_se(val)
        if key == "test_loss" and n_ok and np.all(np.isnan(np.asarray(val)[~res.diverged_mask])):
            undefined.append(key)
            rows.append((key, "n/a", "-"))
            continue
        rows.append((key, float(mean), "-" if not np.isfinite(se) else float(se)))
    print(f"final state: mean and standard error over {n_ok} path(s)")
    print_table(rows, ("observable", "mean", "se"))
    if undefined:
        print("test_loss: n/a, the data has neither w_star nor a test set (Z_test, y_test) to measure it on")
    print()
    mean, se = res.mean_se(res.w)
    order = np.argsort(-np.abs(mean), kind="stable")[:8]
    if w_star is not None:  # also show the teacher's support
        order = np.unique(np.concatenate([order, np.flatnonzero(w_star)]))[:16]
        order = order[np.argsort(-np.abs(mean[order]), kind="stable")]
    rows = [(int(i), float(mean[i]), "-" if not np.isfinite(se[i]) else float(se[i]))
            + (() if w_star is None else (float(w_star[i]),)) for i in order]
    print("largest |w_mean| coordinates" + ("" if w_star is None else " and the teacher's support"))
    print_table(rows, ("i", "w_mean", "w_se") + (() if w_star is None else ("w_star",)))
    if res.diverged:
        print()
        for rep in res.diverged[:10]:
            print(f"diverged: {rep['message']}")
    if out_path:
        print()
        print(f"saved: {out_path}")


#: flags that may accompany --resume alone: they choose output, not the run
RESUME_FLAGS = {"resume", "checkpoint", "checkpoint_every", "out", "json", "quiet"}


def _out_path(out) -> str | None:
    """The result file --out writes (``.npz`` appended when missing), checked before the run."""
    if not out:
        return None
    from pathlib import Path

    from ..storage import check_output_file
    if Path(out).is_dir():
        raise DiagsimError(f"--out {out!r} is a folder; give a file name (e.g. {Path(out) / 'run.npz'})")
    path = out if str(out).endswith(".npz") else f"{out}.npz"
    check_output_file(path, "--out file")
    return path


def main(args) -> int:
    from ..engine.driver import resume, simulate
    from ..storage import check_output_file, describe_diff

    a = _resolve(args)
    progress = False if a.quiet else None
    out_path = _out_path(a.out)
    w_star = None
    every = _checkpoint_every(a.checkpoint_every)
    run_flags = sorted(a.given - RESUME_FLAGS)
    if a.resume and a.checkpoint and a.checkpoint != a.resume:
        raise DiagsimError(f"--resume {a.resume} continues that checkpoint file; --checkpoint {a.checkpoint} "
                           "names another (drop --checkpoint)")
    if a.resume and not run_flags:
        check_output_file(a.resume, "--resume checkpoint")
        res = resume(a.resume, progress=progress,
                     checkpoint_every=every if "checkpoint_every" in a.given else None)
    else:
        checkpoint = a.resume or a.checkpoint
        if a.resume:
            from pathlib import Path
            if not Path(a.resume).is_file():
                raise DiagsimError(f"--resume checkpoint {a.resume!r} does not exist")
        problem = build_problem(a)
        w_star = getattr(problem, "w_star", None) if a.model_family == "diagonal" else None
        opt = build_optimizer(a, problem.dim)
        seed = a.seed if a.noise_seed is None else a.noise_seed
        try:
            res = simulate(problem, opt, steps=a.steps, t=a.t, tau=a.tau, n_paths=a.paths, seed=seed,
                           record=_record(a.record), n_records=a.n_records, model=a.model,
                           model_options=_model_options(a), progress=progress, checkpoint=checkpoint,
                           checkpoint_every=every, divergence_factor=a.divergence_factor, device=a.device)
        except StoredWorkMismatch as exc:
            if not a.resume:
                raise
            key = lambda d: d.split(":")[0].rsplit(".", 1)[-1]  # noqa: E731
            first = sorted(exc.differences, key=lambda d: not any(f in key(d) for f in run_flags))
            diffs = describe_diff(first)
            given = ", ".join(f"--{f.replace('_', '-')}" for f in run_flags)
            raise StoredWorkMismatch(f"checkpoint {a.resume!r} holds a run with other settings than this command "
                                     f"line ({diffs}). With --resume give only output flags (--out, --json, --quiet, "
                                     f"--checkpoint-every), or the run's whole original command; given: {given}"
                                     ) from None
    if out_path:
        res.save(out_path)
    elapsed = float(res.info.get("elapsed_s", 0.0))
    if a.json:
        summ = res.summary()
        summ["elapsed_s"] = elapsed
        if out_path:
            summ["out"] = out_path
        print_json(summ)
    else:
        _print_summary(res, out_path, elapsed, w_star)
    return 0
