"""What the scripts that drive a running `pipebook serve` share: free ports, JSON calls to its
API, waiting for a condition, reading a stage's counter, starting and stopping the server.

Only the standard library.
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

# The server's own logs stay quiet unless something is wrong; librdkafka's reconnect chatter
# during a broker restart is expected and left out.
QUIET = "warn,librdkafka=off,rdkafka::client=off"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, path, body=None, timeout=30):
    """GET `path`, or POST `body` as JSON (with the Origin a state change needs)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method="POST" if data else "GET")
    if data:
        request.add_header("content-type", "application/json")
        request.add_header("origin", base)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def wait(what, check, timeout=600, every=0.2):
    """Calls `check` until it returns something true, and returns that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


def stage(base, stage_id):
    for status in call(base, "/api/pipeline")["stages"]:
        if status["id"] == stage_id:
            return status
    return {}


def counter(base, stage_id, name):
    return stage(base, stage_id).get("counters", {}).get(name, 0)


def healthy(base):
    try:
        call(base, "/api/health", timeout=5)
        return True
    except OSError:
        return False


class Server:
    """`pipebook serve` with its embedded broker on the given ports and data dir."""

    def __init__(self, binary, data_dir, port, broker_port, log=None):
        self.base = f"http://127.0.0.1:{port}"
        env = dict(os.environ, RUST_LOG=QUIET)
        env.pop("PIPEBOOK_KAFKA_BROKERS", None)
        self.process = subprocess.Popen(
            [binary, "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", data_dir,
             "--broker-addr", f"127.0.0.1:{broker_port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=log,
        )
        wait("the server", lambda: healthy(self.base), timeout=120)

    def stop(self):
        """Ctrl-C as an operator would: the stages stop and commit, the broker closes."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self):
        """SIGKILL: a crash, nothing flushed or committed on the way out."""
        self.process.kill()
        self.process.wait()
