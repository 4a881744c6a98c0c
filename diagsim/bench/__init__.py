"""``diagsim bench``: diagsim against its peers and the hardware floor.

Contestants on the reference problem (the label-noise SGD SDE, :mod:`.problems`): diagsim on the CPU
(:mod:`.diagsim_cpu`), diagsim on CUDA when a GPU is present (:mod:`.diagsim_cuda`), a GEMM-fused plain
NumPy implementation (:mod:`.numpy_fused`), diffrax (:mod:`.peer_diffrax`) and torchsde
(:mod:`.peer_torchsde`); peers come from the optional extra ``peers`` and are skipped with a message when
missing. :func:`run_bench` measures warm-up and wall time, path-steps/s, the ratio to diagsim, % of the
dgemm rate of the same run, and the final loss and ||w - w*||_1 with standard errors and z-scores against
an independent reference ensemble; :mod:`.paper` times Adam and SGD at the paper's scale.
"""
from .problems import FULL, PAPER_FULL, PAPER_QUICK, QUICK, PaperBench, SDEBench, configs
from .runner import all_contestants, run_bench, run_sde, save_json, select

__all__ = ["SDEBench", "PaperBench", "FULL", "QUICK", "PAPER_FULL", "PAPER_QUICK", "configs", "run_bench",
           "run_sde", "all_contestants", "select", "save_json"]
