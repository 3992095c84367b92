"""Built-in example problems: the classic tutorial examples and a few realistic ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .model.conv import conv1d


@dataclass(frozen=True)
class Example:
    """An input/output pair with the kernel that made it (``kernel`` None when not known)."""

    name: str
    description: str
    x: np.ndarray
    y: np.ndarray
    kernel_size: int
    kernel: np.ndarray | None = None
    bias: np.ndarray | None = None
    settings: dict[str, Any] = field(default_factory=dict)


def tutorial_examples() -> list[Example]:
    """The three worked examples of the classic "recover a Conv1D kernel" tutorial.

    Returns
    -------
    list of Example
        "single filter" (``x=[0,3,4,5]``, ``y=[6,11,14]``, kernel ``[1, 2]``), "two channels" (8 steps of 2
        input channels, ``kernel_size=3``, a square 6x6 system) and "two filters" (the same input through two
        filters).

    Examples
    --------
    >>> import kernel_recovery as kr
    >>> ex = tutorial_examples()[0]
    >>> kr.recover_kernel(ex.x, ex.y, ex.kernel_size).kernel.ravel().round(12)
    array([1., 2.])
    """
    x1 = np.array([0.0, 3.0, 4.0, 5.0])
    x2 = np.array([[0, 0], [3, 6], [4, 7], [5, 8], [1, 2], [4, 5], [2, 0], [0, 1]], dtype=float)
    return [
        Example(
            "single filter",
            "x=[0,3,4,5], y=[6,11,14], kernel_size=2",
            x1,
            np.array([6.0, 11.0, 14.0]),
            2,
            np.array([1.0, 2.0]).reshape(2, 1, 1),
        ),
        Example(
            "two channels",
            "8 steps, 2 input channels, kernel_size=3",
            x2,
            np.array([14.0, 20.0, 14.0, 15.0, 10.0, 4.0]),
            3,
            np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]).reshape(3, 2, 1),
        ),
        Example(
            "two filters",
            "x=[0,3,4,5], two filters of length 2",
            x1,
            np.array([[6.0, 12.0], [11.0, 25.0], [14.0, 32.0]]),
            2,
            np.array([[1.0, 3.0], [2.0, 4.0]]).reshape(2, 1, 2),
        ),
    ]


def noisy_multichannel(length: int = 2000, noise: float = 0.01, seed: int = 0) -> Example:
    """A 3-in / 2-out sensor array with 'same' padding, bias and Gaussian noise.

    Parameters
    ----------
    length : int
        Samples in the record.
    noise : float
        Standard deviation of the white Gaussian noise added to ``y``.
    seed : int
        Seed of the random kernel, input and noise.

    Returns
    -------
    Example
        ``kernel_size=8``, with ``settings={"padding": "same", "use_bias": True}`` to pass to ``recover_kernel``.

    Examples
    --------
    >>> ex = noisy_multichannel(length=500)
    >>> ex.x.shape, ex.y.shape, ex.kernel.shape
    ((500, 3), (500, 2), (8, 3, 2))
    """
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal((8, 3, 2)) * np.exp(-np.arange(8) / 3.0)[:, None, None]
    bias = np.array([0.5, -0.25])
    x = rng.standard_normal((length, 3))
    y = conv1d(x, kernel, bias, padding="same") + noise * rng.standard_normal((length, 2))
    return Example(
        "noisy multichannel",
        f"L={length}, 3 in, 2 out, K=8, same, bias, noise {noise}",
        x,
        y,
        8,
        kernel,
        bias,
        {"padding": "same", "use_bias": True},
    )


def underdetermined(seed: int = 0) -> Example:
    """Too short a record: 5 outputs for a 6-tap kernel.

    Examples
    --------
    >>> import kernel_recovery as kr
    >>> ex = underdetermined()
    >>> kr.analyze(ex.x, ex.y, ex.kernel_size, warn=False).status
    'underdetermined'
    """
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal((6, 1, 1))
    x = rng.standard_normal(10)
    y = np.asarray(conv1d(x, kernel))  # an array x gives an array y (a list only for a list of sequences)
    return Example("underdetermined", "10 samples, kernel_size=6: 5 equations, 6 unknowns", x, y, 6, kernel)


def all_examples() -> list[Example]:
    """Every built-in example, in the order ``kernel-recovery demo`` shows them.

    Examples
    --------
    >>> [ex.name for ex in all_examples()]
    ['single filter', 'two channels', 'two filters', 'noisy multichannel', 'underdetermined']
    """
    return [*tutorial_examples(), noisy_multichannel(), underdetermined()]
