"""Checks shared by the command-line tests (imported by the test modules beside it)."""
from __future__ import annotations


def refused(result, *fragments: str) -> str:
    """Assert exit status 2 with one `error:` line holding every fragment and no traceback;
    return the line."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output
    return lines[0]
