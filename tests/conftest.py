# SPDX-License-Identifier: Apache-2.0
"""Fixtures shared by every test under tests/.

pytest imports this file with tests/ first on sys.path (its default "prepend" import mode and
no __init__.py here), so test modules import `stack`, `pipeline` and `testkit` directly.

`pipe` is the whole pipeline (PostgreSQL, Kafka broker, simulator, one verifier, one worker)
for a module. A module that needs other settings overrides `pipeline_options`:

    @pytest.fixture(scope="module")
    def pipeline_options():
        return {"worker_env": {"OTP_PURGE_INTERVAL_SECONDS": 3600}}
"""

import pytest

import pipeline as P


@pytest.fixture(scope="module")
def pipeline_options():
    """Keyword arguments of pipeline.running() (worker_env, verifier_env, Pipeline's own)."""
    return {}


@pytest.fixture(scope="module")
def pipe(pipeline_options):
    yield from P.running(**pipeline_options)
