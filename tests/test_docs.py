# SPDX-License-Identifier: Apache-2.0
"""The README stays true: its settings table is the one the programs print."""

import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_settings_table_is_current():
    table = subprocess.run([os.path.join(ROOT, "bin", "otp-worker"), "--settings-markdown"],
                           capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert table in readme, "README.md's settings table is stale: paste `otp-worker --settings-markdown`"


def test_readme_names_both_commands():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert "make demo" in readme and "make test" in readme
