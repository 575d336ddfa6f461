"""The Hub helpers against the fake Hub: hub_errors' hints, the dataset viewer client and its errors,
cap_text, feature_type and creating a new private dataset repo."""

from __future__ import annotations

import socket

import pytest
from huggingface_hub.errors import HfHubHTTPError

from tests.fakes.hub_api import FIXTURE_USER, GRANTED_TOKEN, NOT_READY, SENTIMENT, hub_settings
from tools.backends.hub import (
    DatasetViewer,
    ViewerError,
    cap_text,
    feature_type,
    hf_api,
    hub_errors,
    new_private_dataset_repo,
)
from tools.errors import ToolError
from tools.settings import Settings


@pytest.fixture
def hub_config(hub, data_dir):
    return hub_settings(hub, Settings(data_dir=data_dir), token=GRANTED_TOKEN)


def closed_port_url() -> str:
    """The URL of a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def dataset_info_error(settings: Settings) -> str:
    with pytest.raises(ToolError) as err, hub_errors("inspect_dataset", settings.hf_endpoint):
        hf_api(settings).dataset_info(SENTIMENT)
    return str(err.value)


def test_rate_limits_say_to_wait_or_set_a_token(hub, hub_config):
    hub.state["rate_limit"] = 1
    assert dataset_info_error(hub_config) == (
        f"inspect_dataset failed: HTTP 429 from {hub.url} (You have exceeded our rate limit); the Hub is rate "
        "limiting; wait a minute and retry, or set HF_TOKEN for higher limits.")
    with hub_errors("inspect_dataset", hub.url):
        assert hf_api(hub_config).dataset_info(SENTIMENT).id == SENTIMENT  # the next call goes through


def test_server_errors_say_to_retry_later(hub, hub_config):
    hub.state["server_error"] = 1
    message = dataset_info_error(hub_config)
    assert message.startswith(f"inspect_dataset failed: HTTP 500 from {hub.url} (Internal Error")
    assert message.endswith("the Hub had a server error; retry in a minute.")


def test_other_http_errors_say_to_check_the_arguments(hub, hub_config):
    with pytest.raises(ToolError, match=r"HTTP 404 from .* \(Repository not found\); check the arguments and retry"):
        with hub_errors("inspect_dataset", hub.url):
            hf_api(hub_config).dataset_info("nobody/nothing")


def test_an_unreachable_hub_says_to_check_the_network(data_dir):
    url = closed_port_url()
    message = dataset_info_error(Settings(data_dir=data_dir, hf_endpoint=url))
    assert message.startswith(f"inspect_dataset failed: could not reach {url} (ConnectError: ")
    assert message.endswith("check the network or HF_ENDPOINT and retry.")


def test_other_exceptions_pass_through_hub_errors():
    with pytest.raises(KeyError), hub_errors("anything", "http://hub"):
        raise KeyError("not a Hub failure")


def test_the_viewer_reads_splits_and_sends_the_token_only_when_there_is_one(hub, hub_config):
    splits = DatasetViewer(hub_config).splits(SENTIMENT)
    assert {"dataset": SENTIMENT, "config": "default", "split": "train"} in splits["splits"]
    assert hub.requests[-1].headers["authorization"] == f"Bearer {GRANTED_TOKEN}"
    rows = DatasetViewer(hub_config).first_rows(SENTIMENT, "default", "train")
    assert rows["rows"] and hub.requests[-1].query == {"dataset": [SENTIMENT], "config": ["default"],
                                                       "split": ["train"]}
    DatasetViewer(hub_config.with_(hf_token=None)).size(SENTIMENT)
    assert "authorization" not in hub.requests[-1].headers


def test_viewer_errors_carry_status_code_and_message(hub, hub_config):
    anonymous = DatasetViewer(hub_config.with_(hf_token=None))
    with pytest.raises(ViewerError) as err:
        anonymous.splits("nobody/nothing")
    assert (err.value.status, err.value.code) == (401, "ExternalUnauthenticatedError")
    assert err.value.message.startswith("The dataset does not exist, or is not accessible without authentication")
    with pytest.raises(ViewerError) as err:
        DatasetViewer(hub_config).splits("nobody/nothing")
    assert (err.value.status, err.value.code) == (404, "ExternalAuthenticatedError")
    with pytest.raises(ViewerError, match="HTTP 500 ResponseNotReady: The server is busier than usual"):
        DatasetViewer(hub_config).splits(NOT_READY)
    with pytest.raises(ViewerError) as err:
        DatasetViewer(hub_config).get("/no-such-route", dataset=SENTIMENT)
    assert (err.value.status, err.value.code, err.value.message) == (404, None, "no fake route for GET /no-such-route")


def test_an_unreachable_viewer_is_a_tool_error(data_dir):
    url = closed_port_url()
    with pytest.raises(ToolError, match=f"Could not reach the dataset viewer at {url} \\(ConnectError\\); retry "
                                        "later, or inspect a local copy"):
        DatasetViewer(Settings(data_dir=data_dir, datasets_server_url=url + "/")).splits(SENTIMENT)


@pytest.mark.parametrize("text, limit, expected", [
    (None, 10, ""), ("", 10, ""), ("  a\n\n b\tc  ", 10, "a b c"), ("abcdefghij", 10, "abcdefghij"),
    ("abcdefghijk", 10, "abcdefghi…"), ("four score and seven", 11, "four score…"), (42, 5, "42"),
])
def test_cap_text(text, limit, expected):
    assert cap_text(text, limit) == expected
    assert len(cap_text(text, limit)) <= limit


@pytest.mark.parametrize("feature, expected", [
    ({"dtype": "string", "_type": "Value"}, "string"),
    ({"names": ["neg", "pos"], "_type": "ClassLabel"}, "ClassLabel(neg, pos)"),
    ({"names": [str(i) for i in range(12)], "_type": "ClassLabel"}, "ClassLabel(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)"),
    ({"feature": {"dtype": "int64", "_type": "Value"}, "_type": "Sequence"}, "list<int64>"),
    ({"feature": {"role": {"dtype": "string", "_type": "Value"}, "content": {"dtype": "string", "_type": "Value"}},
      "_type": "List"}, "list<{role: string, content: string}>"),
    ([{"dtype": "float32", "_type": "Value"}], "list<float32>"),
    ([], "list<?>"),
    ({"decode": True, "_type": "Image"}, "Image"),
    ({"a": {"_type": "Value"}}, "{a: ?}"),
    ("string", "string"),
])
def test_feature_type(feature, expected):
    assert feature_type(feature) == expected


def test_new_private_dataset_repo_goes_to_the_users_or_the_settings_namespace(hub, hub_config):
    api = hf_api(hub_config)
    assert new_private_dataset_repo(api, hub_config, "reviews-sft") == f"{FIXTURE_USER}/reviews-sft"
    assert new_private_dataset_repo(api, hub_config.with_(hf_namespace="my-org"), "reviews-sft") == \
        "my-org/reviews-sft"
    assert new_private_dataset_repo(api, hub_config, "my-org/other") == "my-org/other"
    repos = hub.state["repos"]
    assert set(repos) == {f"{FIXTURE_USER}/reviews-sft", "my-org/reviews-sft", "my-org/other"}
    assert all(repo["type"] == "dataset" and repo["private"] for repo in repos.values())


def test_new_private_dataset_repo_refuses_an_existing_repo(hub, hub_config):
    api = hf_api(hub_config)
    new_private_dataset_repo(api, hub_config, "reviews-sft")
    with pytest.raises(ToolError, match=f"The Hub dataset {FIXTURE_USER}/reviews-sft already exists; pass another "
                                        "hub_dataset_id"):
        new_private_dataset_repo(api, hub_config, "reviews-sft")
    with pytest.raises(HfHubHTTPError) as err:
        new_private_dataset_repo(api, hub_config, "someone-else/reviews")
    assert err.value.response.status_code == 403  # not ours to handle: hub_errors turns it into a hint
    with pytest.raises(ToolError, match="HTTP 403 .*check the arguments and retry"), hub_errors("push", hub.url):
        new_private_dataset_repo(api, hub_config, "someone-else/reviews")
