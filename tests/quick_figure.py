"""One helper for the tests of a paper figure: draw it at quick size into a temporary folder."""
import json

from diagsim.experiments.figures import make_figure


def quick_figure(name, tmp_path_factory, root):
    """Compute and draw figure ``name`` at quick size (its own cache and output folders under a temporary
    directory). Returns (report, the figure's JSON of numbers, output folder, the temporary directory)."""
    tmp = tmp_path_factory.mktemp(name.split("_")[0])
    rep = make_figure(name, quick=True, cache_dir=tmp / "cache", out_dir=tmp / "out", root=root, progress=False)
    return rep, json.loads((tmp / "out" / f"{name}.json").read_text()), tmp / "out", tmp
