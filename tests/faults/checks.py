"""What every fault test asserts, and the hypothesis settings the suite shares."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

from flexip.atomic import is_temporary
from flexip.errors import FlexIPError

#: Base settings of every property test here (each sets its own max_examples): no deadline (a render takes
#: a varying 0.1 s on a busy machine), and no example database, so the suite leaves no `.hypothesis/` behind.
FAULTS = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def assert_one_line(error: BaseException) -> None:
    """A user-facing error: a FlexIPError whose message is one non-empty line."""
    assert isinstance(error, FlexIPError), f"{type(error).__name__}: {error}"
    message = str(error)
    assert message.strip() and "\n" not in message and "\r" not in message, repr(message)


def assert_cli_outcome(result) -> None:
    """A `flexip` run ends with exit code 0, or 2 and exactly one stderr line `error: ...`; never a traceback."""
    if result.exit_code == 0:
        return
    assert result.exit_code == 2, f"exit code {result.exit_code}: {result.exception!r}\n{result.output}"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output


def partial_files(folder: str | os.PathLike) -> list[str]:
    """Leftovers of an interrupted write under `folder`: temporary names, and PNGs that do not decode."""
    from PIL import Image

    root = Path(folder)
    if not root.is_dir():
        return []
    found = []
    for path in root.rglob("*"):
        if is_temporary(path.name) or path.suffix in (".tmp", ".old"):
            found.append(str(path))
        elif path.is_file() and path.suffix == ".png":
            try:
                with Image.open(path) as image:
                    image.load()
            except Exception:
                found.append(str(path))
    return found


def reset_accelerate() -> None:
    """Between two Trainers in one process (accelerate keeps process-wide singletons)."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
