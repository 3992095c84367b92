"""``KernelEstimator``: :func:`recover_kernel` as a scikit-learn regressor, for pipelines and grid searches.

scikit-learn is an optional dependency (``pip install 'kernel_recovery[sklearn]'``); ``import kernel_recovery``
does not import it, ``kernel_recovery.KernelEstimator`` imports this module on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

try:
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.utils import Tags
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "kernel_recovery.KernelEstimator needs scikit-learn >= 1.6: pip install 'kernel_recovery[sklearn]'."
    ) from err

from .api import recover_kernel
from .model.conv import conv1d
from .model.result import KernelResult, Solution
from .model.validation import check_int

#: ``recover_kernel`` arguments the estimator sets itself (the time axis, the alignment, its own parameters):
#: repeating one in ``options`` is an error rather than a silent override.
FIXED = ("kernel_size", "lags", "method", "use_bias", "ridge", "regularization")
FIXED_LAYOUT = ("stride", "padding", "dilation", "groups", "layout", "flip", "nan_policy")


class KernelEstimator(RegressorMixin, BaseEstimator):
    """A finite impulse response from inputs to outputs on one time axis, as a scikit-learn regressor.

    ``X`` is one multichannel time series, time along axis 0; ``y`` is on the same time axis, and each output
    is the sum over input channels of a kernel (impulse response) convolved with that input, plus a bias:

    .. math:: \\hat y_o[t] = b_o + \\sum_{c} \\sum_{l=\\text{first}}^{\\text{last}} h_{l, c, o}\\, X_c[t - l],

    with ``X`` taken as zero before its first and after its last sample (a system at rest before the record).
    ``fit`` calls :func:`~kernel_recovery.recover_kernel` with ``lags=(first, last)``; the defaults
    (``kernel_size=None``, ``lags=None``: lag 0 alone) make it ordinary linear regression with an intercept.

    Parameters
    ----------
    kernel_size : int, optional
        Number of taps of a causal kernel, lags ``0 .. kernel_size - 1`` (used when ``lags`` is None).  None
        with ``lags=None`` means one tap at lag 0 (linear regression).
    lags : (int, int) or "auto", optional
        ``(first, last)``: the lags the kernel covers; ``first`` may be negative (the output leads the input:
        non-causal taps, as in temporal response functions).  Replaces ``kernel_size``.  ``"auto"`` chooses the
        window from the data by BIC (:func:`~kernel_recovery.select_lags`); the choice is ``lags_``.
    method : {"lstsq", "fft", "adam"} or callable
        The method of :func:`~kernel_recovery.recover_kernel`.
    use_bias : bool
        Fit a bias (intercept) per output, not penalized by ``ridge``.
    ridge : float or array_like of shape (n_outputs,), optional
        The ridge penalty ``ridge * ||kernel||^2`` (method ``"lstsq"``); an array gives each output its own
        penalty (each output is then fitted on its own, which gives the same kernel as a joint fit, as the
        outputs' least-squares problems are independent).  None: no penalty.
    regularization : str, optional
        Automatic regularization of ``"lstsq"``, tuned per output: ``"gcv"`` (ridge by generalized
        cross-validation), ``"ml"``, ``"tc"``, ``"dc"``, ``"ss"``, ``"di"`` (see the options table of the user
        guide); the choices are in ``result_.options``.
    options : dict, optional
        Other options of ``recover_kernel`` and of the method (``prewhiten``, ``loss``, ``max_iter``, ...).

    Attributes
    ----------
    kernel_ : ndarray, shape (n_lags, n_features, n_outputs)
        The impulse response: ``kernel_[i, c, o]`` is the response of output ``o`` to input ``c`` at lag
        ``lags_[i]`` (ascending).  Three axes also for a one-dimensional ``y``.
    bias_ : ndarray, shape (n_outputs,)
        The bias per output (zeros with ``use_bias=False``).
    lags_ : ndarray of int, shape (n_lags,)
        The lag of each row of ``kernel_``.
    result_ : KernelResult or list of KernelResult
        What :func:`~kernel_recovery.recover_kernel` returned (report, standard errors, diagnostics); with a
        per-output ``ridge`` array, one result per output, in order.
    n_features_in_ : int
        Number of input channels seen in ``fit``.
    feature_names_in_ : ndarray of str
        Names of the input channels, when ``X`` was a DataFrame with string column names.

    See Also
    --------
    kernel_recovery.recover_kernel : the function behind ``fit``.
    kernel_recovery.select_lags : the lag window chosen by an information criterion instead of a grid search.

    Notes
    -----
    ``score`` is scikit-learn's :math:`R^2` (the coefficient of determination of :meth:`predict`, averaged
    uniformly over outputs), as for every scikit-learn regressor; :meth:`fit_percent` gives the normalized
    root-mean-square fit in percent that system identification reports (MATLAB ``compare``).

    A prediction depends on the samples before it (and after it, for negative lags): unlike a tabular
    regressor, predictions on a subset of rows are not the rows of a prediction on the whole.  Cross-validate
    with contiguous blocks (:class:`~sklearn.model_selection.TimeSeriesSplit`, or
    :class:`~sklearn.model_selection.KFold` without shuffling); each test block starts from rest, so its first
    ``last`` predictions miss the input before the block (and its last ``-first`` the input after it).  Rest is
    ``X = 0``: centering ``X`` first (``StandardScaler()`` in a pipeline) moves it to ``X``'s mean, which changes
    those edge equations; ``StandardScaler(with_mean=False)`` only changes the kernel's units.

    ``fit`` warns as :func:`~kernel_recovery.recover_kernel` does: :class:`~kernel_recovery.KernelSizeWarning`
    when the residual says the window is too short (in a grid search, the short candidates),
    :class:`~kernel_recovery.UnderdeterminedWarning` when a fold has fewer samples than unknowns, and
    :class:`~kernel_recovery.NonCausalWarning` when the response is significant at negative lags (expected for a
    temporal response function: filter it with ``warnings.filterwarnings("ignore", category=kr.NonCausalWarning)``).

    Examples
    --------
    >>> import numpy as np
    >>> from kernel_recovery import KernelEstimator
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 2))
    >>> y = 0.5 * X[:, 0] + np.r_[0.0, X[:-1, 1]] + 3.0  # lag 0 from input 0, lag 1 from input 1
    >>> est = KernelEstimator(kernel_size=2).fit(X, y)
    >>> est.kernel_[:, :, 0].round(6) + 0.0  # kernel_[i, c, 0]: lag i, input c
    array([[0.5, 0. ],
           [0. , 1. ]])
    >>> float(est.bias_[0].round(6)), float(est.score(X, y))
    (3.0, 1.0)
    """

    def __init__(
        self,
        kernel_size: int | None = None,
        *,
        lags: tuple[int, int] | Literal["auto"] | None = None,
        method: str | Callable[..., Solution] = "lstsq",
        use_bias: bool = True,
        ridge: float | ArrayLike | None = None,
        regularization: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.kernel_size = kernel_size
        self.lags = lags
        self.method = method
        self.use_bias = use_bias
        self.ridge = ridge
        self.regularization = regularization
        self.options = options

    def fit(self, X: ArrayLike, y: ArrayLike) -> KernelEstimator:
        """Recover the kernel and bias from the inputs ``X`` (n_samples, n_features) and outputs ``y``.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            The input channels, time along axis 0.
        y : array_like, shape (n_samples,) or (n_samples, n_outputs)
            The outputs on the same time axis.

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        x, y = np.asarray(X), np.asarray(y)
        outputs = y.reshape(len(y), -1)
        self._y_ndim = y.ndim
        kwargs = self._fit_arguments()
        if self.ridge is None or np.ndim(self.ridge) == 0:
            if self.ridge is not None:
                kwargs["ridge"] = self.ridge
            results = [recover_kernel(x, outputs, **kwargs)]
        else:  # one penalty per output: one fit per output (the outputs' problems are independent)
            if isinstance(self.lags, str):
                raise ValueError(
                    f"`lags`={self.lags!r} cannot be combined with a per-output `ridge` (each output would choose its "
                    "own window): choose the lags first (kr.select_lags) or give one ridge."
                )
            ridges = self._ridges(outputs.shape[1])
            results = [recover_kernel(x, outputs[:, [o]], ridge=r, **kwargs) for o, r in enumerate(ridges)]
        self.kernel_ = np.concatenate([r.kernel for r in results], axis=2)
        biases = [r.bias if r.bias is not None else np.zeros(r.kernel.shape[2]) for r in results]
        self.bias_ = np.concatenate(biases)
        self.lags_ = results[0].lags
        self.result_: KernelResult | list[KernelResult] = results[0] if len(results) == 1 else results
        return self

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The outputs the fitted kernel gives for the inputs ``X``, on ``X``'s time axis.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)

        Returns
        -------
        ndarray, shape (n_samples,) or (n_samples, n_outputs)
            Shaped as ``y`` was in :meth:`fit`.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        lags = (int(self.lags_[0]), int(self.lags_[-1]))
        y = np.asarray(conv1d(np.asarray(X), self.kernel_, self.bias_, flip=True, lags=lags))
        return y[:, 0] if self._y_ndim == 1 else y

    def score(self, X: ArrayLike, y: ArrayLike) -> float:
        """:math:`R^2`, the coefficient of determination of :meth:`predict`, averaged uniformly over outputs.

        ``1 - sum (y - y_hat)^2 / sum (y - mean(y))^2``: 1 is a perfect prediction, 0 that of the mean
        (scikit-learn's score of every regressor, used by :class:`~sklearn.model_selection.GridSearchCV`).

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
        y : array_like, shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        float
        """
        return float(super().score(X, y))

    def fit_percent(self, X: ArrayLike, y: ArrayLike) -> float | np.ndarray:
        """The normalized root-mean-square fit ``100 (1 - ||y - y_hat|| / ||y - mean(y)||)`` per output.

        100 is a perfect prediction, 0 no better than the mean, negative worse (MATLAB ``compare``'s fit).

        Parameters
        ----------
        X, y : array_like
            Inputs ``(n_samples, n_features)`` and outputs ``(n_samples,)`` or ``(n_samples, n_outputs)``, as for
            :meth:`score`.

        Returns
        -------
        float or ndarray of shape (n_outputs,)
            A float for a one-dimensional ``y``.
        """
        y = np.asarray(y, dtype=np.float64)
        error = np.linalg.norm(y - self.predict(X).reshape(y.shape), axis=0)
        spread = np.linalg.norm(y - y.mean(axis=0), axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            fit = 100.0 * (1.0 - error / spread)
        return float(fit) if y.ndim == 1 else fit

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _fit_arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``recover_kernel`` (``ridge`` aside)."""
        options = dict(self.options or {})
        repeated = sorted(set(options) & set(FIXED + FIXED_LAYOUT))
        if repeated:
            raise ValueError(
                f"`options` must not contain {repeated}: the estimator's parameters {FIXED} are set directly, and "
                f"{FIXED_LAYOUT} are fixed by its time-series layout."
            )
        if self.lags is None:
            size = 1 if self.kernel_size is None else check_int(self.kernel_size, "kernel_size")
            kwargs: dict[str, Any] = {"lags": (0, size - 1)}
        else:
            kwargs = {"kernel_size": self.kernel_size, "lags": self.lags}
        kwargs.update(method=self.method, use_bias=self.use_bias, flip=True, **options)
        if self.regularization is not None:
            kwargs["regularization"] = self.regularization
        return kwargs

    def _ridges(self, n_outputs: int) -> np.ndarray:
        """A ``ridge`` array checked to hold one value per output (each value is checked by the solver)."""
        ridges = np.asarray(self.ridge)
        if ridges.shape != (n_outputs,):
            raise ValueError(
                f"`ridge` must be a number or one per output (shape ({n_outputs},)), got shape {ridges.shape}."
            )
        return ridges
