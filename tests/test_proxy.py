"""One public origin in front of both ports: a real nginx (Debian's) with deploy/'s locations
(`/ws` to the live listener, the rest to HTTP), on loopback, from a temporary prefix."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import trio
from trio_websocket import open_websocket_url

from pika.live.listener import OwnedSocket
from pika.server import Running, serve
from tests.conftest import test_settings
from tests.procs import free_port
from tests.wsclient import Peer, go_live, track

NGINX = Path("/usr/sbin/nginx")
LOCATIONS = Path(__file__).resolve().parents[1] / "deploy" / "nginx-pika-locations.conf"


def nginx_conf(prefix: Path, port: int, running: Running) -> Path:
    """A whole nginx.conf around deploy's locations, its upstream ports the test server's."""
    locations = LOCATIONS.read_text()
    locations = locations.replace("127.0.0.1:3002", f"127.0.0.1:{running.live_port}")
    locations = locations.replace("127.0.0.1:3001", f"127.0.0.1:{running.port}")
    (prefix / "locations.conf").write_text(locations)
    temp = " ".join(
        f"{kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
error_log {prefix / "error.log"} warn;
pid {prefix / "nginx.pid"};
events {{ worker_connections 64; }}
http {{
    access_log off;
    {temp}
    server {{
        listen 127.0.0.1:{port};
        include {prefix / "locations.conf"};
    }}
}}
"""
    )
    return conf


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.headers["content-type"], response.read()


async def test_a_dancer_and_a_dj_meet_through_one_origin(
    nursery: trio.Nursery, db_url: str, tmp_path: Path
) -> None:
    if not NGINX.exists():
        pytest.fail(f"nginx not found at {NGINX}: this test needs it (`apt-get install -y nginx`)")
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    settings = test_settings(
        db_url, public_live_url=f"ws://127.0.0.1:{port}/ws", trusted_proxies=("127.0.0.1",)
    )
    running: Running = await nursery.start(serve, settings)
    conf = nginx_conf(tmp_path, port, running)
    proxy = await trio.lowlevel.open_process(
        [str(NGINX), "-e", "stderr", "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"]
    )
    try:
        with trio.fail_after(10):
            while True:
                assert proxy.poll() is None, (tmp_path / "error.log").read_text()
                try:
                    status, kind, body = await trio.to_thread.run_sync(get, origin + "/api/live")
                    break
                except OSError:
                    await trio.sleep(0.05)
        live_url = json.loads(body)["url"]
        assert live_url == f"ws://127.0.0.1:{port}/ws"  # the page's own origin
        status, kind, _ = await trio.to_thread.run_sync(get, origin + "/")
        assert (status, kind.split(";")[0]) == (200, "text/html")

        headers = [("Origin", origin)]  # as the page's browser sends it
        async with (
            open_websocket_url(live_url, extra_headers=headers) as dj_ws,
            open_websocket_url(live_url, extra_headers=headers) as dancer_ws,
        ):
            dj, dancer = Peer(dj_ws), Peer(dancer_ws)
            await go_live(dj, "conf_proxy")
            await dancer.request("SUBSCRIBE", sessionId="conf_proxy", clientId="client_behind_proxy")
            await dj.request("BROADCAST_TRACK", sessionId="conf_proxy", track=track("Through nginx"))
            assert (await dancer.recv_type("NOW_PLAYING"))["track"]["title"] == "Through nginx"
            # both came through the live listener, not the HTTP port's /ws
            assert running.hub.connection_count == 2
            assert all(isinstance(c._transport, OwnedSocket) for c in running.hub.connections)
    finally:
        proxy.terminate()
        with trio.fail_after(10):
            await proxy.wait()
