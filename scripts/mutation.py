"""`make mutation`: mutation testing (mutmut) of the modules whose bugs would corrupt results
silently: drop schemes, set exports, evaluation, splits and the variant catalog.

mutmut names mutants after the module's path under ./, src/ or source/ and imports the mutated
copy from there, so the run happens in a staging folder, .mutation/, that lays the package out
as src/bgshift beside a copy of the tests. Tests that run Snakemake or train (they would call
the installed, unmutated `bgshift` command, and take minutes) are left out: the in-process
tests are the ones that must catch a wrong line. Prints the surviving count per module.

    python scripts/mutation.py [module.py ...]     (default: all five)
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / ".mutation"
MODULES = ["drops.py", "splits.py", "sets.py", "export.py", "metrics.py", "evaluate.py", "variants/catalog.py", "variants/families.py"]
TESTS = ["tests/test_sets.py", "tests/test_evaluate.py", "tests/test_variants.py", "tests/test_accounting.py"]
# Snakemake runs (demo fixture) and training: out of reach of the mutants, and slow
DESELECT = "not demo_detections and not ultralytics_validator"
EXIT_STATUS = {0: "survived", 1: "killed", 3: "killed", 5: "no tests", 33: "no tests", 36: "timeout", None: "not checked"}


def stage(modules: list[str]) -> None:
    if STAGE.exists():
        shutil.rmtree(STAGE)
    shutil.copytree(REPO / "workflow" / "bgshift", STAGE / "src" / "bgshift", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "workflow" / "schemas", STAGE / "src" / "schemas")  # the config schema, beside the package
    for folder in ("tests", "config", "resources"):
        shutil.copytree(REPO / folder, STAGE / folder, ignore=shutil.ignore_patterns("__pycache__", "cluster"))
    (STAGE / "shared").symlink_to(REPO.parent / "shared")  # conftest finds the real datasets beside the checkout
    pyproject = (REPO / "pyproject.toml").read_text()
    pytest_section = pyproject[pyproject.index("[tool.pytest.ini_options]"):]
    (STAGE / "pyproject.toml").write_text(pytest_section + "\n[tool.mutmut]\n" + "\n".join([
        'source_paths = ["src/bgshift"]',
        'also_copy = ["config", "resources", "shared", "src/schemas"]',
        f"only_mutate = {json.dumps([f'src/bgshift/{m}' for m in modules])}",
        f"pytest_add_cli_args_test_selection = {json.dumps(TESTS)}",
        f"pytest_add_cli_args = {json.dumps(['-p', 'no:cacheprovider', '-k', DESELECT])}",
    ]) + "\n")


def statuses(module: str) -> Counter:
    meta = json.loads((STAGE / "mutants" / "src" / "bgshift" / f"{module}.meta").read_text())
    return Counter(EXIT_STATUS.get(code, "suspicious") for code in meta["exit_code_by_key"].values())


def main(modules: list[str]) -> int:
    stage(modules)
    subprocess.run([str(Path(sys.executable).parent / "mutmut"), "run", "--max-children", "2"], cwd=STAGE, check=False)
    print("\n| module | mutants | killed | survived | no tests | timeout |\n|---|---|---|---|---|---|")
    for module in modules:
        c = statuses(module)
        print(f"| {module} | {sum(c.values())} | {c['killed']} | {c['survived']} | {c['no tests']} | {c['timeout']} |")
    survivors = subprocess.run([str(Path(sys.executable).parent / "mutmut"), "results"], cwd=STAGE, capture_output=True, text=True)
    print("\nsurvivors (`cd .mutation && mutmut show <name>` shows one):\n" + survivors.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or MODULES))
