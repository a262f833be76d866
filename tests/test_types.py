"""The static type checker over the typed packages (configured in pyproject.toml)."""

import subprocess
import sys


def test_mypy_passes_on_the_typed_packages():
    done = subprocess.run([sys.executable, "-m", "mypy"], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "Success: no issues found" in done.stdout
