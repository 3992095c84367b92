"""kernel_recovery: recover the kernel (and bias) of a 1-D convolution from its inputs and outputs."""

from typing import TYPE_CHECKING, Any

from .api import analyze, recover_kernel
from .diagnostics.determinacy import DeterminacyReport
from .diagnostics.frequency import FrequencyResponse
from .diagnostics.lagsearch import LagSelection
from .exceptions import (
    ChangeWarning,
    IllConditionedWarning,
    KernelSizeWarning,
    ModelMisfitWarning,
    NonCausalWarning,
    SpectralWarning,
    UnderdeterminedWarning,
)
from .model.conv import conv1d
from .model.grid import conv
from .model.problem import CanonicalProblem
from .model.result import KernelResult, Solution, StepResponse
from .planning import plan
from .selection import KernelSizeSelection, select_kernel_size, select_lags
from .stack import StackResult, recover_stack
from .streaming.accumulator import NormalEquations
from .tracking import KernelTrack, track_kernel

if TYPE_CHECKING:
    from .estimator import KernelEstimator

    __version__: str


def __getattr__(name: str) -> Any:
    # scikit-learn is optional: kr.KernelEstimator imports it on first use, `import kernel_recovery` never does
    if name == "KernelEstimator":
        from .estimator import KernelEstimator

        return KernelEstimator
    if name == "__version__":  # read on first use: importlib.metadata's import and lookup cost ~20-50 ms
        return _version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("kernel_recovery")
    except PackageNotFoundError:  # running from a source tree that is not installed
        found = "0+unknown"
    globals()["__version__"] = found  # (later reads find the attribute itself)
    return found


__all__ = [
    "CanonicalProblem",
    "ChangeWarning",
    "DeterminacyReport",
    "FrequencyResponse",
    "IllConditionedWarning",
    "KernelEstimator",
    "KernelResult",
    "KernelSizeSelection",
    "KernelSizeWarning",
    "KernelTrack",
    "LagSelection",
    "ModelMisfitWarning",
    "NonCausalWarning",
    "NormalEquations",
    "Solution",
    "SpectralWarning",
    "StackResult",
    "StepResponse",
    "UnderdeterminedWarning",
    "__version__",
    "analyze",
    "conv",
    "conv1d",
    "plan",
    "recover_kernel",
    "recover_stack",
    "select_kernel_size",
    "select_lags",
    "track_kernel",
]
