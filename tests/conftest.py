"""Settings for the whole suite.

Hypothesis: no deadlines and no "too slow" health check. The suite runs on two shared cores
next to real servers, so timing varies by an order of magnitude; the properties are about
behaviour, and the benchmarks under bench/ are where speed is measured.
"""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "motcua", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile("motcua")
