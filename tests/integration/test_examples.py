"""Every example in ``examples/`` runs offline, exits 0 and shows what its docstring promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

EXPECTED = {
    "langchain_chain.py": ["StreamTimeoutError after", "server: generation disconnected"],
    "openai_sdk.py": [" tok1 tok2 tok3", "response closed: True", "server: generation disconnected"],
    "httpx_sse.py": ["'idle' limit after", "server: generation disconnected after sending 3 tokens"],
    "trio_channel.py": [
        "reading 9:",
        "'idle' limit after",
        "sensor: the client closed the connection",
        "producer: the consumer closed the channel",
    ],
    "shared_budget.py": [
        "retrieval done after",
        "generation cut after",
        "server: generation disconnected",
    ],
}


def test_every_example_is_covered() -> None:
    """No example script is left out of the list below (the demo has its own nox session)."""
    scripts = {path.name for path in EXAMPLES.glob("*.py") if not path.name.startswith("_")}
    assert scripts - {"demo.py"} == set(EXPECTED)


@pytest.fixture(scope="module")
def outputs() -> dict[str, subprocess.CompletedProcess[str]]:
    """Run every example at once (they are independent: each starts its own server)."""
    processes = {
        script: subprocess.Popen(  # noqa: S603 (our own scripts, run with this interpreter)
            [sys.executable, "-W", "error", str(EXAMPLES / script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for script in EXPECTED
    }
    results = {}
    for script, process in processes.items():
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        results[script] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return results


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs(script: str, outputs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    """The example exits 0, with no warning (run with ``-W error``), and prints the expected lines."""
    result = outputs[script]
    assert result.returncode == 0, result.stderr
    for expected in EXPECTED[script]:
        assert expected in result.stdout, result.stdout
