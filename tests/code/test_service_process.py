"""``query-predictor serve`` as its own process (one worker, or a supervisor and two), asked
by a real HTTP client: a bundle reload on SIGHUP under load fails no request, 2,000 idle
connections leave it answering, /metrics adds up the workers, SIGTERM stops it with exit 0."""

from __future__ import annotations

import http.client
import json
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from query_predictor.service.routing import HEADER_PREFIX, gateway_request
from query_predictor.training.featurize import context_of

from .test_serving import build_bundle

LISTENING = re.compile(r"listening on http://(127\.0\.0\.1):(\d+) \(model (\S+),")
NEW_NAME = "next-classifier"  # another export of the same files: a new version


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    directory = tmp_path_factory.mktemp("bundle")
    splits = build_bundle(directory)
    rows = list(splits["test"].head(40).iter_rows(named=True))
    return directory, [gateway_request(r["query"], context_of(r)) for r in rows]


class Service:
    """``query-predictor serve`` on a free port; stopped with SIGTERM."""

    def __init__(self, models: Path, *options: str) -> None:
        command = [sys.executable, "-m", "query_predictor.cli", "serve", "--port", "0"]
        self.process = subprocess.Popen(
            [*command, "--models", str(models), *options], stderr=subprocess.PIPE, text=True
        )
        line = self.process.stderr.readline()  # type: ignore[union-attr]
        found = LISTENING.search(line)
        assert found, line + self.process.communicate(timeout=10)[1]
        self.address = (found[1], int(found[2]))
        self.version = found[3]
        deadline = time.monotonic() + 60
        while self.health_version() is None:  # workers load their bundles after the bind
            assert time.monotonic() < deadline, "no answer on /healthz"
            time.sleep(0.1)

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(*self.address, timeout=30)

    def health_version(self) -> str | None:
        try:
            connection = self.connect()
            connection.request("GET", "/healthz")
            answer = json.loads(connection.getresponse().read())
            connection.close()
        except OSError:
            return None
        return answer["model_version"]

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        _, rest = self.process.communicate(timeout=60)
        return rest


@pytest.fixture
def reloadable(bundle: tuple[Path, list], tmp_path: Path) -> Iterator[Path]:
    """A copy of the bundle that a test may change and reload."""
    copy = tmp_path / "models"
    shutil.copytree(bundle[0], copy)
    yield copy


def test_a_sighup_reload_under_load_with_two_workers_fails_no_request(
    bundle: tuple[Path, list], reloadable: Path
) -> None:
    service = Service(reloadable, "--workers", "2")
    old = service.version
    stop = threading.Event()
    requests = bundle[1]

    def hammer() -> tuple[list[int], set[str]]:
        connection, statuses, versions, n = service.connect(), [], set(), 0
        while not stop.is_set():
            body, headers = requests[n % len(requests)]
            connection.request("POST", "/v1/route", body=json.dumps(body), headers=headers)
            response = connection.getresponse()
            answer = json.loads(response.read())
            statuses.append(response.status)
            versions.add(answer["externalHeaders"][f"{HEADER_PREFIX}Model-Version"])
            n += 1
        connection.close()
        return statuses, versions

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(hammer) for _ in range(4)]
            time.sleep(0.5)
            metadata = json.loads((reloadable / "metadata.json").read_text())
            (reloadable / "metadata.json").write_text(json.dumps(metadata | {"name": NEW_NAME}))
            service.process.send_signal(signal.SIGHUP)
            new = f"{NEW_NAME}@{old.split('@')[1]}"
            deadline = time.monotonic() + 60
            consecutive = 0  # answers of the new version in a row, on new connections
            while consecutive < 20:
                assert time.monotonic() < deadline, "the workers did not reload"
                consecutive = consecutive + 1 if service.health_version() == new else 0
            time.sleep(0.5)
            stop.set()
            results = [f.result() for f in futures]
        metrics = scrape(service)
    finally:
        stop.set()
        rest = service.stop()
    statuses = [s for batch, _ in results for s in batch]
    versions = set().union(*(v for _, v in results))
    assert len(statuses) > 50
    assert set(statuses) == {200}
    assert versions == {old, new}
    info = {
        labels["pid"]: value
        for labels, value in metrics["query_predictor_model_info"]
        if labels["version"] == new
    }
    assert len(info) == 2 and set(info.values()) == {1.0}, metrics["query_predictor_model_info"]
    routed = sum(
        v
        for labels, v in metrics["query_predictor_requests_total"]
        if labels["endpoint"] == "/v1/route"
    )
    assert routed == len(statuses)
    assert service.process.returncode == 0, rest
    assert "Traceback" not in rest


def scrape(service: Service) -> dict[str, list[tuple[dict[str, str], float]]]:
    connection = service.connect()
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def test_a_bundle_that_does_not_load_is_not_served_and_the_old_one_stays(
    reloadable: Path,
) -> None:
    service = Service(reloadable)
    try:
        (reloadable / "model.onnx").write_bytes(b"not a model")
        service.process.send_signal(signal.SIGHUP)
        time.sleep(2)
        assert service.health_version() == service.version
        errors = scrape(service)["query_predictor_errors_total"]
        assert ({"kind": "reload_failed"}, 1.0) in errors
    finally:
        rest = service.stop()
    assert "reload failed, still serving" in rest
    assert service.process.returncode == 0


def test_a_worker_that_dies_is_replaced_and_metrics_still_answer(bundle: tuple[Path, list]) -> None:
    """A worker killed outright (or ended by a signal while it starts) is replaced; the
    supervisor forgets its gauges and the others' /metrics keeps answering."""
    service = Service(bundle[0], "--workers", "2")
    try:
        supervisor = psutil.Process(service.process.pid)
        victim = supervisor.children()[0]
        victim.kill()
        deadline = time.monotonic() + 60
        while {c.pid for c in supervisor.children()} & {victim.pid} or len(
            supervisor.children()
        ) < 2:
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.2)
        while len(scrape(service)["query_predictor_model_info"]) < 2:  # the new one has loaded
            assert time.monotonic() < deadline, "the new worker did not load its bundle"
            time.sleep(0.2)
        pids = {labels["pid"] for labels, _ in scrape(service)["query_predictor_model_info"]}
        assert str(victim.pid) not in pids
    finally:
        rest = service.stop()
    assert service.process.returncode == 0, rest
    assert "Traceback" not in rest


def test_2000_idle_connections_do_not_exhaust_the_service(bundle: tuple[Path, list]) -> None:
    """Connections that send nothing, or half a request, hold no thread: the service still
    answers at once, with few more threads and little more memory."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    service = Service(bundle[0])
    process = psutil.Process(service.process.pid)
    threads, rss = process.num_threads(), process.memory_info().rss
    idle: list[socket.socket] = []
    try:
        for i in range(2000):
            sock = socket.create_connection(service.address, timeout=10)
            if i % 2:
                sock.sendall(b"POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Le")
            idle.append(sock)
        time.sleep(1.0)
        started = time.perf_counter()
        body, headers = bundle[1][0]
        connection = service.connect()
        connection.request("POST", "/v1/route", body=json.dumps(body), headers=headers)
        response = connection.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["routingGroup"]
        connection.close()
        assert time.perf_counter() - started < 2.0
        assert len(process.net_connections()) >= 2000
        assert process.num_threads() <= threads + 4
        assert process.memory_info().rss - rss < 40 * 2**20
    finally:
        for sock in idle:
            sock.close()
        service.stop()
    assert service.process.returncode == 0
