"""`flexip` runs for the SIGKILL tests, each stopped for good at a chosen point so that the test kills it there.

    python paused_cli.py RUNS.json

RUNS.json maps a name to {"pause": "POINT:N", "cwd": FOLDER, "args": ["train", ...]}. This process imports
flexip once (the imports cost far more than a tiny training), then forks one child per run: a separate
process that runs `flexip ARGS` (the console script's entry point, `flexip.cli.main.main`) in FOLDER, its
output in FOLDER/child.log. The N-th time a child reaches POINT it creates FOLDER/paused and waits for the
SIGKILL. Beside RUNS.json this process writes pids.json ({name: pid}) once every child runs, and, when every
child has ended, statuses.json ({name: exit code, or -signal}).

Points (counted in each child):
    state-tree   inside a checkpoint write: a state tree's tensors are written, its structure (JSON) not yet
    rotation     inside a rotation: the delete of a retired checkpoint has begun (one file gone), whatever
                 the rotation does first (today: rename it to step-N.old)
    step         inside a training step: the loss is computed, no gradient or update yet

The stops wrap library functions in the child only; the library itself has no test hooks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import traceback
from pathlib import Path


def _stop_after(count: int, flag: Path):
    hits = 0

    def reached() -> None:
        nonlocal hits
        hits += 1
        if hits == count:
            flag.touch()
            while True:  # until SIGKILL
                time.sleep(60)

    return reached


def install(point: str, count: int, flag: Path) -> None:
    from flexip.training import checkpointing, trainer

    reached = _stop_after(count, flag)
    if point == "state-tree":
        save_file = checkpointing.save_file

        def save_then_stop(*args, **kwargs):
            save_file(*args, **kwargs)
            reached()

        checkpointing.save_file = save_then_stop
    elif point == "rotation":
        rmtree = shutil.rmtree

        def delete_partly_then_stop(path, *args, **kwargs):
            path = Path(path)
            if not re.fullmatch(r"step-\d+(\.old)?", path.name):  # a checkpoint, not a leftover .tmp
                return rmtree(path, *args, **kwargs)
            first = min(p for p in path.rglob("*") if p.is_file())
            first.unlink()  # the delete has begun
            reached()

        shutil.rmtree = delete_partly_then_stop
    elif point == "step":
        loss = trainer.per_sample_mse

        def loss_then_stop(*args, **kwargs):
            value = loss(*args, **kwargs)
            reached()
            return value

        trainer.per_sample_mse = loss_then_stop
    else:
        raise ValueError(f"unknown pause point {point!r}")


def run_child(run: dict) -> None:
    """In the forked child: `flexip ARGS` with its stop installed; never returns."""
    code = 1
    try:
        folder = Path(run["cwd"])
        os.chdir(folder)
        log = os.open(folder / "child.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(log, 1)
        os.dup2(log, 2)
        point, _, count = run["pause"].partition(":")
        install(point, int(count), folder / "paused")
        from flexip.cli.main import main

        main(args=run["args"], prog_name="flexip")
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    runs_file = Path(sys.argv[1])
    runs = json.loads(runs_file.read_text())
    import flexip.cli.main  # noqa: F401  everything `flexip train` imports, once, before forking
    import flexip.training.trainer  # noqa: F401

    sys.stdout.flush()
    sys.stderr.flush()
    pids = {}
    for name, run in runs.items():
        pid = os.fork()
        if pid == 0:
            run_child(run)
        pids[name] = pid
    # written under another name and renamed: the test polls for pids.json and must never read it half-written
    partial = runs_file.parent / "pids.json.partial"
    partial.write_text(json.dumps(pids))
    partial.replace(runs_file.parent / "pids.json")
    statuses = {}
    names = {pid: name for name, pid in pids.items()}
    while names:
        pid, status = os.wait()
        statuses[names.pop(pid)] = os.waitstatus_to_exitcode(status)
    (runs_file.parent / "statuses.json").write_text(json.dumps(statuses))


if __name__ == "__main__":
    main()
