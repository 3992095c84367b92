"""Warnings of kernel_recovery (subclasses of ``UserWarning``, as SciPy's ``OptimizeWarning``)."""


class UnderdeterminedWarning(UserWarning):
    """The data do not determine the kernel: too few equations, or a rank-deficient design."""


class IllConditionedWarning(UserWarning):
    """The data determine the kernel, but noise in ``y`` is amplified by a large condition number."""


class KernelSizeWarning(UserWarning):
    """The residual says the kernel is longer than ``kernel_size``: taps outside the support explain ``y``."""


class NonCausalWarning(UserWarning):
    """The response is significant at negative lags: feedback from the output to the input, or a misaligned input."""


class SpectralWarning(IllConditionedWarning):
    """The per-frequency systems of ``method="fft"`` are singular at some frequencies.

    The input channels carry no (independent) power there, so the kernel's response at those
    frequencies is fixed by regularization rather than by the data.
    """


class ChangeWarning(UserWarning):
    """One kernel does not explain the whole record: the system changed during it (see ``track_kernel``)."""


class ModelMisfitWarning(UserWarning):
    """The fitted convolution does not describe ``y``: the post-fit specification tests found a nonlinearity, a
    clipped or rectified output, a missing bias or a coloured residual (``diagnostics["specification"]``).

    The kernel is then the best linear fit, not the system (or its standard errors do not hold); the warning says
    what to do.  ``success`` stays True: the solver solved the problem it was given.
    """
