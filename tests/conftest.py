import os

import numpy as np
import pytest
from hypothesis import settings

# CI replays the same examples every run (derandomize); locally hypothesis keeps exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
