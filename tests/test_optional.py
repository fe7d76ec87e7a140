"""Optional parts: a missing one names the extra that installs it; import engram stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engram._optional import MissingExtraError, install_hint, require


def test_missing_module_names_the_extra():
    with pytest.raises(MissingExtraError, match=r"pip install 'engram\[ros\]'"):
        require("rosbags.definitely_not_a_module", "bag replay")
    assert "conda install habitat-sim" in install_hint("habitat_sim")


def test_import_engram_is_cheap():
    code = (
        "import sys, engram, engram.memory.scene, engram.sims.embedded, engram.perception.encoders, engram.qa.embodied;"
        "heavy = [m for m in ('torch', 'pybullet', 'open3d', 'hydra', 'timm', 'transformers') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
