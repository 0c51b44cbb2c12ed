"""Hypothesis profiles, chosen by the HYPOTHESIS_PROFILE environment variable,
and the fixtures that set the default dtype.

- ``dev`` (default): quick local runs.
- ``ci``: what ``.ci/run`` uses; derandomized so CI is reproducible.
- ``slow``: long fuzzing and law-checking runs (10,000 examples).
"""

import os

import pytest
import torch

from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "slow", max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# Tests run many small tensor ops; one intra-op thread avoids the
# synchronization cost of a thread pool on tiny tensors and keeps runs
# reproducible across machines.
torch.set_num_threads(1)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request):
    """Build and run everything in this dtype (programs keep their constants
    in the default dtype they are built in)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(request.param)
    yield request.param
    torch.set_default_dtype(previous)


@pytest.fixture
def float64():
    """Build and run everything in float64 (exactness checks)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
