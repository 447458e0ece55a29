"""The example runs as its README says: it trains, and the one-line change it documents is
the one the script makes."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEPS = 150


def test_train_script_learns_the_classes_and_keeps_their_modes(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, str(HERE / "train.py"), "--steps", str(STEPS), "--log-every", "50",
         "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, f"train.py failed:\n{r.stdout}\n{r.stderr}"
    lines = r.stdout.strip().splitlines()
    logged = [int(m.group(1)) for line in lines if (m := re.match(r"step\s+(\d+)\s+loss", line))]
    assert logged == [50, 100, 150]
    result = json.loads(lines[-1])
    assert result["sampler"] == "nearest-positive" and result["steps"] == STEPS
    first, last = result["loss_first"], result["loss_last"]
    assert math.isfinite(first) and math.isfinite(last) and 0 < last < first
    before, after = result["before"], result["after"]
    # Trained on the class labels: class retrieval improves ...
    assert after["class_r1"] > before["class_r1"] + 0.1
    # ... and each class keeps its modes apart instead of collapsing them (with the loss's
    # own triplets, --baseline, mode R@1 falls below the untrained model's).
    assert after["mode_r1"] > before["mode_r1"] + 0.1


def test_readme_diff_is_the_change_the_script_makes() -> None:
    readme = (HERE / "README.md").read_text(encoding="utf-8")
    diff = re.search(r"```diff\n(.*?)```", readme, re.S)
    assert diff, "README.md has no ```diff block"
    added = [line[1:].strip() for line in diff.group(1).splitlines() if line.startswith("+")]
    assert added == [
        "from nearest_positive import NearestPositive",
        "loss_func = NearestPositive(loss_func)",
    ]
    script = [line.strip() for line in (HERE / "train.py").read_text().splitlines()]
    assert added[0] in script
    assert any(line.startswith(added[1]) for line in script)
    context = [line[1:].strip() for line in diff.group(1).splitlines() if line.startswith(" ")]
    missing = [c for c in context if c and c not in script]
    assert not missing, f"diff context lines not in train.py: {missing}"
