"""Running the `apem` command in-process, as a user's shell would see it."""

import contextlib
import io

import pytest

from apem.cli import main


def run_cli(argv) -> tuple[int, str, str]:
    """``main(argv)``: exit status (2 for a usage error), stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def cli():
    """``cli(argv) -> (exit status, stdout, stderr)`` of the `apem` command."""
    return run_cli
