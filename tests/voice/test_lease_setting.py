# SPDX-License-Identifier: Apache-2.0
"""Issue 11, part 3: a lease that cannot outlive one VoIPBin request (OTP_CALL_TIMEOUT_MS) plus
the dispatcher's 2 s look-up margin is refused at start, naming both settings; the shortest lease
the product accepts (what tests/system/test_reliability.py's crash runs use: 6 s for a 4 s call
timeout) gets as far as the database. Also OTP_BLOCKED_NUMBER_TYPES is checked at start."""

import pytest

from test_settings import start


@pytest.mark.parametrize("lease, timeout_ms", [(5, 10000), (11, 10000), (2, 100), (5, 3001)])
def test_short_lease_is_refused_naming_both_settings(lease, timeout_ms):
    out = start(OTP_LEASE_SECONDS=str(lease), OTP_CALL_TIMEOUT_MS=str(timeout_ms))
    assert out.returncode == 2, out
    assert "OTP_LEASE_SECONDS=%d" % lease in out.stderr, out.stderr
    assert "OTP_CALL_TIMEOUT_MS=%d" % timeout_ms in out.stderr, out.stderr
    assert "at least %d" % -(-(timeout_ms + 2000) // 1000) in out.stderr, out.stderr


@pytest.mark.parametrize("lease, timeout_ms", [(12, 10000), (6, 4000), (30, 10000), (3, 1000)])
def test_long_enough_lease_gets_to_the_database(lease, timeout_ms):
    out = start(OTP_LEASE_SECONDS=str(lease), OTP_CALL_TIMEOUT_MS=str(timeout_ms))
    assert out.returncode == 2
    assert "OTP_DATABASE_URL: cannot connect" in out.stderr, out.stderr


def test_unknown_number_type_is_refused():
    out = start(OTP_BLOCKED_NUMBER_TYPES="premium_rate,premium")
    assert out.returncode == 2
    assert "OTP_BLOCKED_NUMBER_TYPES" in out.stderr and '"premium"' in out.stderr, out.stderr
