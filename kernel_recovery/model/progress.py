"""The one progress bar of the package: tqdm (the ``progress`` extra) when it is asked for, else a no-op bar.

``progress=None`` means "show when stderr is a terminal"; ``True`` insists (and says which extra to install
when tqdm is missing); ``False`` never shows.  tqdm is imported only when a bar is drawn.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, Literal, TextIO

#: What to install for the bars.
MISSING_TQDM = "progress=True needs tqdm: pip install 'kernel_recovery[progress]'."


def show_progress(progress: bool | None) -> bool:
    """Whether to draw a bar: ``progress`` when given, else whether stderr is a terminal."""
    if progress is not None:
        return bool(progress)
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class NoBar:
    """The part of tqdm's interface the package uses, doing nothing (``write`` prints the line)."""

    def __init__(self, iterable: Iterable[Any] | None = None) -> None:
        self.iterable = iterable

    def __enter__(self) -> NoBar:
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        return False

    def __iter__(self) -> Iterator[Any]:
        return iter(() if self.iterable is None else self.iterable)

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass

    @staticmethod
    def write(text: str, file: TextIO | None = None) -> None:
        print(text, file=file)


def progress_bar(
    progress: bool | None, iterable: Iterable[Any] | None = None, *, worth_showing: bool = True, **kwargs: Any
) -> Any:
    """A tqdm bar (``leave=False``, the other ``kwargs`` passed on) or a :class:`NoBar` with the same methods.

    Parameters
    ----------
    progress : bool or None
        True: a bar (ImportError naming the ``progress`` extra without tqdm); False: none; None: a bar when
        ``worth_showing``, stderr is a terminal and tqdm is installed.
    iterable : iterable, optional
        Wrapped by the bar (iterate over the bar).
    worth_showing : bool
        Whether the default (``progress=None``) may draw at all, e.g. only for several fits or long records.

    Examples
    --------
    >>> with progress_bar(False, total=3) as bar:
    ...     bar.update(3)
    >>> list(progress_bar(False, [1, 2]))
    [1, 2]
    """
    if progress is None and not worth_showing:
        return NoBar(iterable)
    if not show_progress(progress):
        return NoBar(iterable)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress:
            raise ImportError(MISSING_TQDM) from None
        return NoBar(iterable)
    return tqdm(iterable, leave=False, **kwargs)
