"""Every demo test set against its prompt's newest approved version, with the built-in simulator.

Seeds the demo into a fresh SQLite file, then runs each test set once through the
experiment service (gateway, budgets and the default judge model included) and prints
pass / fail / error and the pass rate per set; with -v also each failing cell's reasons.

Run: python bench/demo_testsets.py [-v]
"""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    verbose = "-v" in sys.argv
    with tempfile.TemporaryDirectory() as folder:
        os.environ["DATABASE_URL"] = f"sqlite:///{folder}/demo.db"
        os.environ["QUORUM_DEMO"] = "1"
        os.environ["QUORUM_AUDIT_CHECKPOINT_DIR"] = folder
        os.environ.pop("OPENAI_API_KEY", None)
        from core import db, demo, migrate
        from core.demo.experiment_check import run_testsets

        migrate.upgrade()
        with db.session_scope(write=True) as session:
            demo.seed(session)
        started = time.perf_counter()
        with db.session_scope(write=True) as session:
            outcomes = run_testsets(session)
        for outcome in outcomes:
            print(outcome.line())
            if verbose:
                for cell in outcome.run.cells:
                    if cell.status != "pass":
                        reasons = "; ".join(a["reason"] for a in cell.assertions if not a["passed"]) or cell.error
                        print(f"    {cell.case_id}: {cell.status}: {reasons}")
                        print(f"      output: {cell.output[:400]!r}")
        print(f"{sum(len(o.run.cells) for o in outcomes)} cells in {time.perf_counter() - started:.1f} s")
        db.dispose_engines()


if __name__ == "__main__":
    main()
