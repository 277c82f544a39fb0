"""Scale-out on a real PostgreSQL server that these tests start (tests/pgserver.py; Debian's `postgresql`,
installed by .ci/run): several `explore run` workers share one study, a worker killed with SIGKILL costs at
most the trial it was running, a fresh database survives workers racing to create Optuna's schema, and
optuna-dashboard reads the same storage."""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import optuna
import pytest

from tests.pgserver import PostgresServer, why_unavailable
from tests.reliability.test_faults import check_report_and_export, evaluated_twice, explore, finish, write_study

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    reason = why_unavailable()
    if reason:
        pytest.skip(reason)
    pg = PostgresServer()
    try:
        yield pg
    finally:
        pg.stop()


def trials_of(url: str, name: str = "study") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


def running_trial_of(url: str, pid: int) -> bool:
    """Whether process `pid` has a trial RUNNING in the study with its design point drawn (its worker records its
    pid as soon as it asks; a trial killed before its parameters exist has nothing to retry, and is only failed)."""
    try:
        trials = trials_of(url)
    except KeyError:  # the study is not created yet
        return False
    return any(t.state.name == "RUNNING" and t.params and (t.user_attrs.get("worker") or {}).get("pid") == pid for t in trials)


def evaluated_at_once(trials: list[optuna.trial.FrozenTrial]) -> list[tuple[int, int]]:
    """Pairs of trials that evaluated the same design point at overlapping times (a reused result, which
    names its twin in `same_as`, was not evaluated)."""
    spans: dict[str, list[tuple[float, float, int]]] = {}
    for t in trials:
        if t.state.name != "COMPLETE" or "same_as" in t.user_attrs or not t.datetime_start or not t.datetime_complete:
            continue
        key = json.dumps(t.params, sort_keys=True)
        spans.setdefault(key, []).append((t.datetime_start.timestamp(), t.datetime_complete.timestamp(), t.number))
    overlapping = []
    for runs in spans.values():
        runs.sort()
        for (_, end, a), (start, _, b) in itertools.pairwise(runs):
            if start < end:
                overlapping.append((a, b))
    return overlapping


def test_three_workers_one_killed_lose_nothing(server: PostgresServer, tmp_path: Path) -> None:
    url = server.database()
    n_trials = 9
    # quick beats so that the killed worker's trial is found stale within seconds
    write_study(tmp_path, n_trials=n_trials, extra=f"storage: {url}\nheartbeat_interval: 1\ngrace_period: 4\n")
    # started at once on a fresh database: they race to create Optuna's schema and the study
    workers = [explore("run", "study.yaml", "--no-progress", "--no-report", cwd=tmp_path) for _ in range(3)]
    victim = workers[1]
    deadline = time.monotonic() + 180
    while not running_trial_of(url, victim.pid):
        assert victim.poll() is None, finish(victim)[2]
        assert time.monotonic() < deadline, "the worker to be killed never ran a trial"
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    for process in (workers[0], workers[2]):
        code, _, err = finish(process)
        assert code == 0, err
        assert "Traceback" not in err
    # a rerun completes the study (nothing left to do, or what the kill left)
    code, _, err = finish(explore("run", "study.yaml", "--no-progress", "--no-report", cwd=tmp_path))
    assert code == 0, err
    trials = trials_of(url)
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") >= n_trials, states
    assert "RUNNING" not in states and "WAITING" not in states
    assert len({t.number for t in trials}) == len(trials)
    killed = [t for t in trials if t.state.name == "FAIL"]
    assert killed, "the killed worker's trial was not failed"
    retried = {t.system_attrs.get("failed_trial") for t in trials if "failed_trial" in t.system_attrs}
    assert retried & {t.number for t in killed}, "the killed trial was not retried with its parameters"
    assert evaluated_at_once(trials) == []
    assert evaluated_twice([t for t in trials if "failed_trial" not in t.system_attrs]) == []
    check_report_and_export(tmp_path)
    # another machine: the same study file, none of this one's output folder; the files a trial wrote are
    # regenerated from its record in the database
    other = tmp_path / "other_host"
    other.mkdir()
    (other / "study.yaml").write_text((tmp_path / "study.yaml").read_text())
    check_report_and_export(other)
    assert not (other / "out" / "trials").exists()


def test_workers_racing_on_a_fresh_database_all_open_it(server: PostgresServer, tmp_path: Path) -> None:
    url = server.database()
    code = (
        "import sys, optuna; from explorer.study.store import open_storage; "
        "optuna.create_study(study_name='s', storage=open_storage(sys.argv[1]), load_if_exists=True)"
    )
    racers = [
        subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE, text=True, cwd=tmp_path) for _ in range(6)
    ]
    errors = [p.communicate(timeout=120)[1] for p in racers]
    assert [p.returncode for p in racers] == [0] * 6, errors
    assert len(optuna.study.get_all_study_summaries(url)) == 1


def test_a_bare_postgresql_url_and_a_bad_server_are_clear(server: PostgresServer) -> None:
    from explorer.errors import ExplorerError
    from explorer.study.store import database_url, open_storage

    url = server.database()
    bare = url.replace("postgresql+psycopg://", "postgresql://")
    assert database_url(bare) == url  # only psycopg 3 is installed: it is named
    assert open_storage(bare) is not None
    dead = f"postgresql+psycopg://explorer@127.0.0.1:{server.port + 1 if server.port < 65535 else 1}/nothing"
    with pytest.raises(ExplorerError, match="cannot be opened"):
        open_storage(dead)


def test_the_queue_lock_is_an_advisory_lock(server: PostgresServer) -> None:
    """Workers on one database count the trials left and queue proposals one at a time (store.queue_lock)."""
    import sqlalchemy

    from explorer.study.store import QUEUE_LOCK_KEY, queue_lock

    url = server.database()
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)

    def free() -> bool:
        with engine.connect() as connection:
            taken = connection.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:k)"), {"k": QUEUE_LOCK_KEY}).scalar()
            if taken:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": QUEUE_LOCK_KEY})
            return bool(taken)

    try:
        with queue_lock(url):
            assert not free()
        assert free()
    finally:
        engine.dispose()


def test_optuna_dashboard_reads_the_study(server: PostgresServer, tmp_path: Path) -> None:
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    url = server.database()
    study = optuna.create_study(study_name="watched", storage=url, directions=["maximize", "minimize"])
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)), n_trials=3)
    app = optuna_dashboard.wsgi(url)
    environ: dict[str, Any] = {"PATH_INFO": "/api/studies", "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h, *_: status.append(s)))  # type: ignore[arg-type]
    assert status and status[0].startswith("200"), status
    studies = json.loads(body)["study_summaries"]
    assert [s["study_name"] for s in studies] == ["watched"]


def test_a_trial_whose_worker_stops_beating_is_failed_and_retried(server: PostgresServer) -> None:
    from explorer.study.store import WORKER_ATTR, Heartbeat, Worker, ask, beating, close_stale_trials, fail_stale, open_storage

    url = server.database()
    storage = open_storage(url, Heartbeat(interval=1, grace_period=2, max_retry=2))
    study = optuna.create_study(study_name="beats", storage=storage)
    lost = ask(study)
    lost.suggest_float("x", 0, 1)
    # a worker on another host: its process cannot be checked from here, only its heartbeats tell
    lost.set_user_attr(WORKER_ATTR, Worker("another-host", 4242, None).to_dict())
    kept = ask(study)
    kept.suggest_float("x", 0, 1)
    with beating(study, lost._trial_id), beating(study, kept._trial_id):
        time.sleep(1.5)
        fail_stale(study)  # both beat: nothing is stale
        assert {t.state.name for t in study.get_trials()} == {"RUNNING"}
    assert close_stale_trials(study, max_retry=2) == []  # the other host's worker cannot be judged by its pid
    with beating(study, kept._trial_id):  # `lost` has stopped beating: its worker died
        time.sleep(3.5)
        fail_stale(study)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "RUNNING", "WAITING"]
    assert trials[2].params == lost.params and trials[2].system_attrs["failed_trial"] == lost.number
