"""The empathy judge against a scripted local endpoint: scores, retries, refusals, not computed, cache, key file."""

import dataclasses
import json
import re
import socket

import pytest

from components.chat import ChatError
from components.contracts import METRIC_EMPATHY_SCORE
from components.evaluation import empathy_judge
from components.evaluation.empathy_judge import (
    JUDGE_SCHEMA,
    RUBRIC,
    EmpathyJudge,
    JudgeConfig,
    JudgeItem,
    JudgeRow,
    judge_replies,
)
from tests.fake_chat import Reply, serve_chat

KEY = "sk-judge-secret-456"
ITEMS = [
    JudgeItem(
        "a",
        "My flight got cancelled again and I am furious.",
        "angry",
        "I am so sorry, that is really frustrating. Let's find you the next flight.",
        "apologetic",
    ),
    JudgeItem("b", "I finally passed my driving test!", "happy", "Okay.", "neutral"),
    JudgeItem(
        "c",
        "My dog has been sick all week and I am scared.",
        "fearful",
        "That sounds worrying. A vet visit today could put your mind at rest.",
        "reassuring",
    ),
]
SCORES = {"a": 5, "b": 2, "c": 4}  # what the fake judge gives each item's reply


def verdict(body: dict) -> str:
    """The fake judge: finds which item is being rated from the reply text in the request."""
    exchange = json.loads(body["messages"][-1]["content"].split("\n", 1)[1])
    [item] = [item for item in ITEMS if item.reply_text == exchange["reply_words"]]
    return json.dumps({"reason": f"reply {item.id} rated", "score": SCORES[item.id]})


@pytest.fixture
def server():
    with serve_chat(verdict, KEY) as fake:
        yield fake


def make_judge(server, **overrides) -> EmpathyJudge:
    settings = {
        "base_url": server.url,
        "model": "judge",
        "api_key": KEY,
        "timeout_s": 2.0,
        "max_retries": 2,
        "backoff_s": 0.001,
        "requests_per_s": 1000.0,
    }
    return EmpathyJudge(JudgeConfig(**{**settings, **overrides}))


def free_port_url() -> str:
    with socket.socket() as sock:  # a port nobody listens on once the socket closes
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_scores_are_parsed_and_averaged_with_the_rubric_and_schema_in_each_request(server):
    result = judge_replies(ITEMS, make_judge(server), workers=3)
    assert result.computed and result.model == "judge"
    assert [(row.id, row.score) for row in result.rows] == [("a", 5), ("b", 2), ("c", 4)]  # the items' order
    assert result.summary() == {METRIC_EMPATHY_SCORE: pytest.approx(11 / 3)}
    assert [row.id for row in result.lowest(2)] == ["b", "c"]

    bodies = [entry[3] for entry in server.chat_requests()]
    assert len(bodies) == 3
    for body in bodies:
        assert body["model"] == "judge" and body["temperature"] == 0.0 and body["seed"] == 0
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "empathy_verdict", "schema": JUDGE_SCHEMA, "strict": True},
        }
        assert body["messages"][0] == {"role": "system", "content": RUBRIC}
    [body_a] = [body for body in bodies if "furious" in body["messages"][1]["content"]]
    exchange = json.loads(body_a["messages"][1]["content"].split("\n", 1)[1])
    assert exchange == {
        "user_words": ITEMS[0].user_text,
        "user_emotion": "angry",
        "reply_words": ITEMS[0].reply_text,
        "reply_spoken_emotion": "apologetic",
    }

    saved = json.loads(json.dumps(result.to_dict()))  # what EMPATHY_JUDGE_FILE holds
    assert saved["metric"] == METRIC_EMPATHY_SCORE and saved["computed"] and saved["reason"] == ""
    assert saved["mean"] == pytest.approx(11 / 3) and saved["n"] == 3 and saved["model"] == "judge"
    assert saved["counts"] == {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1}
    assert saved["rows"][0] == {"id": "b", "score": 2, "reason": "reply b rated"}
    assert re.fullmatch(r"[0-9a-f]{64}", saved["rubric_sha256"])


def test_overload_and_server_errors_are_retried_honouring_retry_after(server):
    server.script = [Reply(429, headers={"Retry-After": "0.2"}, body="slow down"), Reply(500, body="boom")]
    assert make_judge(server).score(ITEMS[0]) == JudgeRow("a", 5, "reply a rated")
    arrivals = [entry[0] for entry in server.chat_requests()]
    assert len(arrivals) == 3 and arrivals[1] - arrivals[0] >= 0.2


@pytest.mark.parametrize(
    "content, problem",
    [
        ("The reply is kind. Score: 4", "not JSON"),
        (json.dumps({"reason": "kind", "score": 6}), "6 is not one of"),
        (json.dumps({"reason": "kind", "score": "4"}), "'4' is not of type 'integer'"),
        (json.dumps({"score": 4}), "'reason' is a required property"),
        (json.dumps({"reason": "kind", "score": 4, "confidence": 0.9}), "Additional properties"),
        (json.dumps({"reason": "  ", "score": 4}), "the reason is empty"),
    ],
)
def test_a_malformed_verdict_is_asked_again_with_a_new_seed(server, content, problem, caplog):
    server.script = [Reply(content=content)]
    assert make_judge(server).score(ITEMS[1]).score == 2
    assert [entry[3]["seed"] for entry in server.chat_requests()] == [0, 1]  # a seeded server repeats itself
    assert problem in caplog.text


def test_an_item_never_scored_fails_the_whole_metric_and_caches_nothing(server, tmp_path):
    server.script = [Reply(content="no idea")] * 3
    with pytest.raises(
        ChatError,
        match="no usable verdict for item 'b' in 3 attempts; last: malformed verdict.*"
        "unset every OMNI_JUDGE_\\* variable",
    ):
        judge_replies([ITEMS[1]], make_judge(server, cache_dir=tmp_path))
    assert len(server.chat_requests()) == 3 and not list(tmp_path.rglob("*.json"))


def test_a_refused_key_names_the_variable_without_revealing_the_key(server):
    server.key = "sk-the-right-one"
    for call in (make_judge(server).check, lambda: make_judge(server).score(ITEMS[0])):
        with pytest.raises(
            ChatError, match="HTTP 401.*check OMNI_JUDGE_API_KEY .or the Secret behind OMNI_JUDGE_API_KEY_FILE"
        ) as caught:
            call()
        assert KEY not in str(caught.value) and "***" in str(caught.value)  # the server echoed it; masked
    assert len(server.chat_requests()) == 1  # a refusal is not retried


def test_an_unreachable_endpoint_names_the_base_url():
    url = free_port_url()
    judge = EmpathyJudge(JudgeConfig(base_url=url, model="judge", api_key=KEY, timeout_s=0.5))
    with pytest.raises(ChatError, match=f"cannot reach OMNI_JUDGE_BASE_URL='{url}'") as caught:
        judge.check()
    assert KEY not in str(caught.value)


def test_check_passes_on_a_live_server_even_without_a_models_route(server):
    make_judge(server).check()
    server.models_status = 404
    make_judge(server).check()
    assert [entry[2] for entry in server.seen] == ["/v1/models", "/v1/models"]


def test_without_any_judge_variable_the_metric_is_not_computed():
    assert JudgeConfig.from_env({"OMNI_LLM_MODEL": "gpt-4o", "OMNI_JUDGE_MODEL": "  "}) is None
    result = judge_replies(ITEMS, None)
    assert not result.computed and result.summary() == {} and result.mean is None
    assert all(name in result.reason for name in ("OMNI_JUDGE_BASE_URL", "OMNI_JUDGE_MODEL", "OMNI_JUDGE_API_KEY"))
    saved = result.to_dict()
    assert saved["computed"] is False and saved["reason"] == result.reason and saved["rows"] == []


def test_no_items_is_not_computed_and_asks_nothing(server):
    result = judge_replies([], make_judge(server))
    assert not result.computed and result.reason == "no replies to judge" and result.summary() == {}
    assert not server.seen


@pytest.mark.parametrize(
    "env, missing",
    [
        ({"OMNI_JUDGE_BASE_URL": "http://judge/v1", "OMNI_JUDGE_API_KEY": KEY}, "needs OMNI_JUDGE_MODEL:"),
        (
            {"OMNI_JUDGE_MODEL": "gpt-4o"},
            "needs OMNI_JUDGE_BASE_URL, OMNI_JUDGE_API_KEY \\(or OMNI_JUDGE_API_KEY_FILE\\):",
        ),
    ],
)
def test_some_judge_variables_without_the_rest_name_the_missing_ones(env, missing):
    with pytest.raises(ChatError, match=missing) as caught:
        JudgeConfig.from_env(env)
    assert "the empathy judge" in str(caught.value) and "unset every OMNI_JUDGE_*" in str(caught.value)
    assert KEY not in str(caught.value)


def test_the_cache_asks_each_model_rubric_and_item_only_once(server, tmp_path, monkeypatch):
    judge_replies(ITEMS, make_judge(server, cache_dir=tmp_path))
    assert len(server.chat_requests()) == 3 and len(list(tmp_path.rglob("*.json"))) == 3
    # A fresh judge (another run) with the same cache asks nothing, even for the same exchange under a new id.
    again = judge_replies([*ITEMS, dataclasses.replace(ITEMS[0], id="a2")], make_judge(server, cache_dir=tmp_path))
    assert [row.score for row in again.rows] == [5, 2, 4, 5] and len(server.chat_requests()) == 3
    make_judge(server, cache_dir=tmp_path, model="judge-2").score(ITEMS[0])  # another model
    monkeypatch.setattr(empathy_judge, "RUBRIC", RUBRIC + "\nBe strict.")
    make_judge(server, cache_dir=tmp_path).score(ITEMS[0])  # another rubric
    assert len(server.chat_requests()) == 5


def test_the_key_is_read_from_a_mounted_secret_file(server, tmp_path):
    (tmp_path / "api-key").write_text(KEY + "\n")
    env = {
        "OMNI_JUDGE_BASE_URL": server.url + "/",
        "OMNI_JUDGE_MODEL": "judge",
        "OMNI_JUDGE_API_KEY_FILE": str(tmp_path / "api-key"),
    }
    config = JudgeConfig.from_env(env, cache_dir=tmp_path / "cache")
    assert (config.api_key, config.base_url, config.cache_dir) == (KEY, server.url, tmp_path / "cache")
    assert KEY not in repr(config) and config.temperature == 0.0
    judge = EmpathyJudge(config)
    judge.check()
    assert judge.score(ITEMS[2]).score == 4
    with pytest.raises(ChatError, match="OMNI_JUDGE_API_KEY_FILE=.*cannot be read"):
        JudgeConfig.from_env({**env, "OMNI_JUDGE_API_KEY_FILE": str(tmp_path / "missing")})


def test_items_are_checked_before_anything_is_asked(server):
    with pytest.raises(ValueError, match="JudgeItem 'x': reply_emotion 'sad' is not one of"):
        JudgeItem("x", "I lost my keys.", "sad", "Oh no.", "sad")
    with pytest.raises(ValueError, match=r"unique; repeated: \['a'\]"):
        judge_replies([ITEMS[0], ITEMS[0]], make_judge(server))
    assert not server.seen
