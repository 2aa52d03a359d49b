"""A cluster's nodes behind one amqp_url / management_url: parsing, order, failover."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pika
import pytest

from bus.broker.connection import refused_access
from bus.broker.management import ManagementApi, ManagementUnavailable
from bus.broker.nodes import disagreement, first_url, node_urls, shuffled, where, with_user
from bus.settings import Settings, SettingsError

NODES = [f"amqp://bus:pw@127.0.0.1:{5700 + i}/%2F" for i in (1, 2, 3)]


def test_a_single_url_is_a_list_of_one() -> None:
    assert node_urls("amqp://guest:guest@127.0.0.1:5672/%2F") == [
        "amqp://guest:guest@127.0.0.1:5672/%2F"
    ]


def test_a_comma_list_keeps_its_order_and_the_first_names_user_and_vhost() -> None:
    assert node_urls(" , ".join(NODES)) == NODES
    assert first_url(",".join(NODES)) == NODES[0]


def test_with_user_logs_in_as_another_user_on_every_node_keeping_port_vhost_and_query() -> None:
    cluster = (
        "amqp://bus:pw@10.0.0.1:5701/%2F?heartbeat=30, amqp://bus:pw@10.0.0.2:5702/%2F?heartbeat=30"
    )
    assert with_user(cluster, "ns-tests", "pw-ns-tests") == (
        "amqp://ns-tests:pw-ns-tests@10.0.0.1:5701/%2F?heartbeat=30,"
        "amqp://ns-tests:pw-ns-tests@10.0.0.2:5702/%2F?heartbeat=30"
    )


def test_with_user_quotes_user_and_password_so_the_broker_sees_them_as_given() -> None:
    url = with_user("amqp://127.0.0.1/vh", "a@b", "p:w/%,")
    assert url == "amqp://a%40b:p%3Aw%2F%25%2C@127.0.0.1/vh"
    assert node_urls(url) == [url]  # a comma in the password does not split the node
    credentials = pika.URLParameters(url).credentials
    assert (credentials.username, credentials.password) == ("a@b", "p:w/%,")


def test_shuffled_puts_the_lost_node_last_and_keeps_every_node() -> None:
    for _ in range(20):
        order = shuffled(",".join(NODES), avoid=NODES[1])
        assert sorted(order) == sorted(NODES)
        assert order[-1] == NODES[1]


def test_shuffled_spreads_the_first_choice_over_the_nodes() -> None:
    firsts = {shuffled(",".join(NODES))[0] for _ in range(100)}
    assert firsts == set(NODES)


def test_nodes_of_one_list_must_share_user_and_vhost() -> None:
    assert disagreement(",".join(NODES)) is None
    assert disagreement(NODES[0] + ",amqp://other:pw@127.0.0.1:5702/%2F") is not None
    assert disagreement(NODES[0] + ",amqp://bus:pw@127.0.0.1:5702/other") is not None


def test_settings_take_a_list_from_toml_as_the_comma_form() -> None:
    settings = Settings(amqp_url=NODES, management_url=["http://a:15701", "http://a:15702"])
    assert settings.amqp_url == ",".join(NODES)
    assert settings.management_url == "http://a:15701,http://a:15702"


def test_settings_refuse_a_list_that_cannot_be_one_cluster(tmp_path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        'amqp_url = ["amqp://a:pw@127.0.0.1:5701/%2F", "amqp://b:pw@127.0.0.1:5702/%2F"]\n'
    )
    with pytest.raises(SettingsError, match="one user and one vhost"):
        Settings.load(config)


def test_where_names_host_and_port_never_the_password() -> None:
    assert where(NODES[0]) == "127.0.0.1:5701"


def test_access_refused_is_recognised_as_a_configuration_error() -> None:
    assert refused_access("(403, 'ACCESS_REFUSED - access to exchange denied')")
    assert not refused_access("(320, 'CONNECTION_FORCED - broker forced connection closure')")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_api() -> Iterator[str]:
    """A stand-in management API answering GET /api/overview."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"cluster_name": "dvc"}'
            self.send_response(200 if self.path == "/api/overview" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://guest:guest@127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_management_calls_go_on_to_a_node_that_answers(live_api: str) -> None:
    dead = f"http://guest:guest@127.0.0.1:{_closed_port()}"
    api = ManagementApi(f"{dead},{live_api}", timeout=2)
    assert api.get("overview") == {"cluster_name": "dvc"}
    assert api.base == live_api.replace("guest:guest@", "")  # asked first from now on


def test_an_http_error_is_the_clusters_answer_not_retried_elsewhere(live_api: str) -> None:
    api = ManagementApi(f"{live_api},{live_api}", timeout=2)
    with pytest.raises(ManagementUnavailable, match="HTTP 404"):
        api.get("nothing-here")


def test_no_node_answering_names_every_node() -> None:
    ports = [_closed_port(), _closed_port()]
    api = ManagementApi(",".join(f"http://127.0.0.1:{p}" for p in ports), timeout=2)
    with pytest.raises(ManagementUnavailable) as failed:
        api.get("overview")
    assert all(str(p) in str(failed.value) for p in ports)
