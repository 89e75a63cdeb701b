"""The chat-completions dialogue writer against a scripted local server: retries, refusals, validation, cache, rate."""

import itertools
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from components.synthesis.llm import DIALOGUE_SCHEMA, ChatDialogueWriter, LLMConfig, LLMError
from tests.fake_chat import Reply, serve_chat

KEY = "sk-test-secret-123"
GOOD = {
    "user_text": "My flight got cancelled again and I am so angry about it.",
    "response_text": "I am really sorry your flight got cancelled again, that is so frustrating. "
    "Let's look at the next options together.",
}


@pytest.fixture
def server():
    """The shared fake /v1 (tests/fake_chat.py), answering GOOD unless a test scripts otherwise."""
    with serve_chat(answer=lambda body: json.dumps(GOOD), key=KEY) as fake:
        yield fake


def make_writer(server, **overrides) -> ChatDialogueWriter:
    settings = {
        "base_url": server.url,
        "model": "tiny",
        "api_key": KEY,
        "timeout_s": 2.0,
        "max_retries": 3,
        "backoff_s": 0.001,
        "requests_per_s": 1000.0,
    }
    return ChatDialogueWriter(LLMConfig(**{**settings, **overrides}))


def test_writes_a_dialogue_with_the_schema_seed_and_labels_in_the_request(server):
    assert make_writer(server).write("travel", "angry", "apologetic", seed=7) == (
        GOOD["user_text"],
        GOOD["response_text"],
    )
    [(_, _, _, body)] = server.chat_requests()
    assert set(body) == {"model", "messages", "temperature", "seed", "response_format"}
    assert body["model"] == "tiny" and body["seed"] == 7 and body["temperature"] == 0.8
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "dialogue", "schema": DIALOGUE_SCHEMA, "strict": True},
    }
    prompt = body["messages"][-1]["content"]
    assert all(label in prompt for label in ("travel", "angry", "apologetic"))


def test_server_errors_are_retried_until_success(server):
    server.script = [Reply(500, body="boom"), Reply(503, body="busy"), Reply(429, body="slow down")]
    assert make_writer(server).write("work", "sad", "comforting", seed=1)[0] == GOOD["user_text"]
    assert len(server.chat_requests()) == 4


def test_gives_up_after_max_retries_with_the_last_error(server):
    server.script = [Reply(502, body="bad gateway")] * 10
    with pytest.raises(LLMError, match="in 3 attempts; last: HTTP 502: bad gateway"):
        make_writer(server, max_retries=2).write("work", "sad", "comforting", seed=1)
    assert len(server.chat_requests()) == 3


def test_retry_after_is_honoured(server):
    server.script = [Reply(429, headers={"Retry-After": "0.3"}, body="rate limited")]
    make_writer(server).write("money", "fearful", "reassuring", seed=2)
    first, second = (entry[0] for entry in server.chat_requests())
    assert second - first >= 0.3


def test_a_refused_key_fails_at_once_without_revealing_it(server):
    server.key = "sk-the-right-one"
    with pytest.raises(LLMError, match="HTTP 401.*check OMNI_LLM_API_KEY") as caught:
        make_writer(server).write("work", "sad", "comforting", seed=1)
    assert KEY not in str(caught.value) and "***" in str(caught.value)  # the server echoed it; it was masked
    assert len(server.chat_requests()) == 1


def test_a_wrong_path_or_model_fails_at_once_naming_both_settings(server):
    server.script = [Reply(404, body='{"error": "model not found"}')]
    with pytest.raises(LLMError, match="OMNI_LLM_BASE_URL.*ends in /v1 and OMNI_LLM_MODEL='tiny' exists"):
        make_writer(server).write("work", "sad", "comforting", seed=1)
    assert len(server.chat_requests()) == 1


@pytest.mark.parametrize(
    "content, problem",
    [
        ("Sure! Here is a dialogue.", "not JSON"),
        (json.dumps({"user_text": GOOD["user_text"]}), "'response_text' is a required property"),
        (json.dumps({**GOOD, "emotion": "sad"}), "Additional properties"),
        (json.dumps({**GOOD, "user_text": "Ugh."}), "user_text has 1 words, not 5-25"),
        (json.dumps({**GOOD, "response_text": "So sorry " * 25}), "response_text has 50 words, not 10-40"),
        (json.dumps({**GOOD, "user_text": "I am so sad today, my dog ran away \U0001f622"}), "cannot read"),
        (json.dumps({**GOOD, "response_text": "*sighs* " + GOOD["response_text"]}), "cannot read: '*'"),
        (json.dumps({**GOOD, "user_text": "1 2 3 4 5 6"}), "user_text has no letters"),
    ],
)
def test_malformed_dialogues_are_retried_then_refused(server, content, problem, tmp_path):
    server.script = [Reply(content=content)] * 10
    with pytest.raises(LLMError, match="in 3 attempts; last: malformed dialogue") as caught:
        make_writer(server, max_retries=2, cache_dir=tmp_path).write("family", "sad", "comforting", seed=5)
    assert problem in str(caught.value)
    # Every retry asks with a new seed (a seeded server repeats itself); nothing unvalidated is cached.
    assert [entry[3]["seed"] for entry in server.chat_requests()] == [5, 6, 7]
    assert not list(tmp_path.rglob("*.json"))


def test_one_malformed_reply_then_a_good_one_succeeds(server):
    server.script = [Reply(content="not json"), Reply(body='{"unexpected": true}')]
    assert make_writer(server).write("school", "happy", "cheerful", seed=3)[1] == GOOD["response_text"]
    assert len(server.chat_requests()) == 3


def test_cache_serves_repeats_without_requests_and_new_seeds_ask_again(server, tmp_path):
    first = make_writer(server, cache_dir=tmp_path).write("health", "fearful", "calm", seed=9)
    [path] = tmp_path.rglob("*.json")
    assert path.parent.name == path.stem[:2] and len(path.stem) == 64
    assert not list(tmp_path.rglob("*.tmp"))
    # A fresh writer (another process, a rerun) reads the same cache.
    assert make_writer(server, cache_dir=tmp_path).write("health", "fearful", "calm", seed=9) == first
    assert len(server.chat_requests()) == 1
    make_writer(server, cache_dir=tmp_path).write("health", "fearful", "calm", seed=10)
    make_writer(server, cache_dir=tmp_path, temperature=0.2).write("health", "fearful", "calm", seed=9)
    assert len(server.chat_requests()) == 3 and len(list(tmp_path.rglob("*.json"))) == 3


def test_a_damaged_cache_entry_is_fetched_again(server, tmp_path):
    writer = make_writer(server, cache_dir=tmp_path)
    writer.write("friends", "surprised", "excited", seed=4)
    [path] = tmp_path.rglob("*.json")
    path.write_text("{ half written")
    assert writer.write("friends", "surprised", "excited", seed=4)[0] == GOOD["user_text"]
    assert len(server.chat_requests()) == 2 and json.loads(path.read_text())["user_text"] == GOOD["user_text"]


def test_rate_limit_spaces_request_starts_across_threads(server):
    writer = make_writer(server, requests_per_s=20.0)
    writer.write("work", "neutral", "neutral", seed=100)  # warm-up: the first request pays for lazy imports
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda seed: writer.write("work", "neutral", "neutral", seed=seed), range(6)))
    arrivals = sorted(entry[0] for entry in server.chat_requests()[1:])
    gaps = sorted(b - a for a, b in itertools.pairwise(arrivals))
    # Starts are 1/20 s apart; each arrival adds thread and socket jitter (worse on a busy machine), so test the
    # span and the typical gap rather than the smallest one. Unlimited, all six arrive within a few ms.
    assert len(arrivals) == 6 and arrivals[-1] - arrivals[0] >= 5 * 0.05 - 0.04
    assert gaps[len(gaps) // 2] >= 0.035


def test_rejects_unknown_labels(server):
    with pytest.raises(ValueError, match="response_emotion 'sad' is not one of"):
        make_writer(server).write("travel", "sad", "sad", seed=0)
    assert not server.seen


def test_from_env_names_every_missing_variable_and_the_secret_route():
    with pytest.raises(LLMError) as caught:
        LLMConfig.from_env({})
    message = str(caught.value)
    assert all(
        name in message
        for name in (
            "OMNI_LLM_BASE_URL",
            "OMNI_LLM_MODEL",
            "OMNI_LLM_API_KEY (or OMNI_LLM_API_KEY_FILE)",
            "Kubernetes Secret",
        )
    )
    with pytest.raises(LLMError, match=r"needs OMNI_LLM_MODEL:") as caught:
        LLMConfig.from_env({"OMNI_LLM_BASE_URL": "http://x/v1", "OMNI_LLM_API_KEY": KEY})
    assert KEY not in str(caught.value)


def test_from_env_reads_the_key_from_a_mounted_secret_file(tmp_path):
    (tmp_path / "api-key").write_text(KEY + "\n")
    env = {
        "OMNI_LLM_BASE_URL": "https://llm.example/v1/",
        "OMNI_LLM_MODEL": "gpt-4o",
        "OMNI_LLM_API_KEY_FILE": str(tmp_path / "api-key"),
    }
    config = LLMConfig.from_env(env, cache_dir=tmp_path / "cache")
    assert (config.api_key, config.base_url, config.model) == (KEY, "https://llm.example/v1", "gpt-4o")
    assert config.cache_dir == tmp_path / "cache" and KEY not in repr(config)
    assert LLMConfig.from_env({**env, "OMNI_LLM_API_KEY": "sk-direct"}).api_key == "sk-direct"
    with pytest.raises(LLMError, match="OMNI_LLM_API_KEY_FILE=.*cannot be read"):
        LLMConfig.from_env({**env, "OMNI_LLM_API_KEY_FILE": str(tmp_path / "missing")})


def test_check_passes_on_a_live_server_even_without_models_route(server):
    make_writer(server).check()
    server.models_status = 404
    make_writer(server).check()
    assert [entry[2] for entry in server.seen] == ["/v1/models", "/v1/models"]


def test_check_fails_on_a_refused_key(server):
    server.key = "sk-other"
    with pytest.raises(LLMError, match="HTTP 401.*check OMNI_LLM_API_KEY") as caught:
        make_writer(server).check()
    assert KEY not in str(caught.value)


def test_check_fails_fast_on_an_unreachable_endpoint():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    writer = ChatDialogueWriter(
        LLMConfig(base_url=f"http://127.0.0.1:{port}/v1", model="tiny", api_key=KEY, timeout_s=0.5)
    )
    start = time.monotonic()
    with pytest.raises(LLMError, match=f"cannot reach OMNI_LLM_BASE_URL='http://127.0.0.1:{port}/v1'"):
        writer.check()
    assert time.monotonic() - start < 2.0


def test_a_dataset_written_by_the_llm_and_a_dead_endpoint_failing_before_any_shard(server, tmp_path, monkeypatch):
    from components.synthesis import SynthesisConfig, read_manifest, synthesize_dataset
    from components.synthesis import dataset as dataset_module

    monkeypatch.setattr(dataset_module, "LLM_CACHE_DIR", tmp_path / "cache")
    monkeypatch.setenv("OMNI_LLM_BASE_URL", server.url)
    monkeypatch.setenv("OMNI_LLM_MODEL", "tiny")
    monkeypatch.setenv("OMNI_LLM_API_KEY", KEY)
    config = SynthesisConfig(
        n=12, unseen_voice_fraction=0.0, engines=("espeak-ng",), channels=None, filters=None, text_backend="llm"
    )
    summary = synthesize_dataset(config, tmp_path / "llm", progress=False)
    rows = read_manifest(summary.out_dir)
    assert {(r["user_text"], r["response_text"]) for r in rows} == {(GOOD["user_text"], GOOD["response_text"])}
    assert len(server.chat_requests()) == 12 and "llm:tiny" in (summary.out_dir / "card.json").read_text()

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    monkeypatch.setenv("OMNI_LLM_BASE_URL", dead)
    with pytest.raises(LLMError, match="127.0.0.1"):
        synthesize_dataset(config, tmp_path / "never", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "llm"]  # no partial build was started
