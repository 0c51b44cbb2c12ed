"""Hypothesis profiles, chosen by the HYPOTHESIS_PROFILE environment variable.

- ``dev`` (default): quick local runs.
- ``ci``: what ``.ci/run`` uses; derandomized so CI is reproducible.
- ``slow``: long fuzzing and law-checking runs (10,000 examples).
"""

import os

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
