"""Hydra config composition for the `engram` command.

The config groups ship inside the package (engram/configs). Only this module
and cli.py import hydra, and hydra is initialised only inside `compose`, never
at import time, so applications that use hydra themselves are not disturbed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["compose", "to_plain", "instantiate"]


def compose(config_name: str, overrides: Sequence[str] = ()) -> Any:
    """Compose ``engram/configs/<config_name>.yaml`` with command-line style overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="engram.configs", version_base="1.3"):
            return hydra_compose(config_name=config_name, overrides=list(overrides))
    except Exception as exc:  # hydra's errors are long; keep the first line and the override list
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"bad configuration for {config_name!r} with overrides {list(overrides)}: {msg}") from exc


def to_plain(cfg: Any) -> Any:
    """An OmegaConf node as plain dicts and lists (per-frame code reads plain attributes)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def instantiate(cfg: Any, **kwargs: Any) -> Any:
    """Build the object a config node names with ``_target_``."""
    from hydra.utils import instantiate as hydra_instantiate

    return hydra_instantiate(cfg, **kwargs)
