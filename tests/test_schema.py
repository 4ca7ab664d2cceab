import subprocess
import sys
from pathlib import Path

import pytest

from api.graphql.schema import schema_sdl

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT.parent / "shared" / "tools" / "check_contract.py"


def test_schema_graphql_is_what_the_code_prints() -> None:
    assert (ROOT / "schema.graphql").read_text() == schema_sdl(), (
        "run `mapi-ews-admin export-schema`"
    )


def test_the_schema_keeps_every_promise_of_the_contract() -> None:
    if not CHECKER.exists():
        pytest.skip(
            f"the contract checker is not at {CHECKER} (shared/ sits beside the repository)"
        )
    result = subprocess.run(
        [sys.executable, str(CHECKER), str(ROOT / "schema.graphql")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
    assert "contract: 0 broken promises" in result.stdout, result.stdout
