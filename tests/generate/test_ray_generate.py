"""`generate --executor ray` on a real two-node Ray cluster (tests.servers.ray_cluster), with the tiny
model on two CPU actors. The local runner is the reference: the same queue and seeds give the same
records and byte-identical MP4s (the tiny model's frames do not depend on torch's thread count, so a
1-CPU actor and a multi-threaded local run agree), each request is recorded exactly once, and the
resume rules are the local runner's.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import threading
import time

import pytest
from click.testing import CliRunner

from gen_helpers import read_records, write_queue
from tests.servers.ray_cluster import RayCluster, process_cmdline
from videoproc.common.errors import OptionsError
from videoproc.generate import GenerateOptions, run
from videoproc.generate.command import generate
from videoproc.generate.engines import open_engine
from videoproc.generate.lock import LOCK_NAME

# Fields that measure the run rather than describe its result.
TIMING = {"created", "url", "inference_time_s", "encode_time_s"}


def _rows() -> list[dict]:
    """Six quick seeded requests; the image-to-video one names its image by a relative path, which
    the actors must resolve against the driver's working folder."""
    rows = [dict(id=f"t2v-{i}", prompt=f"prompt number {i}", size="32x32", num_frames=5, num_inference_steps=2,
                 seed=10 + i, topic=f"topic {i}") for i in range(5)]
    rows.append(dict(id="i2v-0", prompt="the quadrants spin", size="32x32", num_frames=5, num_inference_steps=2,
                     seed=20, input_reference="ref.png", topic="image"))
    return rows


def _run(folder, output: str, *, log=None, engine_factory=open_engine, **values):
    opts = GenerateOptions(queue=str(folder / "q.parquet"), output=output, models=("tiny-random",),
                           progress="lines" if log else "off", **values)
    return run(opts, log=log or io.StringIO(), engine_factory=engine_factory)


def _meeting_factory(folder: str, *, actors: int):
    """Engines whose first call waits (up to a minute) until `actors` processes have made one: a
    tiny request takes a tenth of a second and an actor seconds to start, so without this the first
    actor would finish the queue alone. Each process leaves a file named by its pid in `folder`."""

    def factory(kind, **kwargs):
        engine = open_engine(kind, **kwargs)
        generate_frames = engine.generate

        def generate_after_meeting(call, **options):
            os.makedirs(folder, exist_ok=True)
            open(os.path.join(folder, str(os.getpid())), "w").close()
            deadline = time.monotonic() + 60
            while len(os.listdir(folder)) < actors and time.monotonic() < deadline:
                time.sleep(0.05)
            return generate_frames(call, **options)

        engine.generate = generate_after_meeting
        return engine

    return factory


def _on_ray(cluster: RayCluster) -> dict:
    return {"executor": "ray", "ray_address": cluster.address, "ray_actors": 2}


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def _assert_each_once(output, rows: list[dict]) -> list[dict]:
    """One completed record per request, one MP4 per request (no partial left), hashes matching."""
    ids = sorted(r["id"] for r in rows)
    records = read_records(output)
    assert sorted(r["id"] for r in records) == ids
    assert all(r["status"] == "completed" for r in records)
    assert sorted(os.listdir(os.path.join(output, "records"))) == [f"{i}.parquet" for i in ids]
    assert sorted(os.listdir(os.path.join(output, "videos"))) == [f"{i}.mp4" for i in ids]
    for record in records:
        assert record["sha256"] == _sha(os.path.join(output, "videos", f"{record['id']}.mp4"))
    return records


@pytest.fixture(scope="module")
def queue_folder(tmp_path_factory, reference_png):
    """The queue and its reference image, in a folder the tests run from."""
    folder = tmp_path_factory.mktemp("ray-queue")
    shutil.copy(reference_png, folder / "ref.png")
    write_queue(folder / "q.parquet", _rows())
    return folder


@pytest.fixture(scope="module")
def local_output(queue_folder, tmp_path_factory) -> str:
    """The local runner's output for the queue: the reference every Ray run must match."""
    output = str(tmp_path_factory.mktemp("local") / "out")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(queue_folder)
        summary = _run(queue_folder, output)
    assert (summary.completed, summary.failed) == (6, 0)
    return output


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_cluster_completes_each_request_once_like_local(ray_cluster, queue_folder, local_output, tmp_path, monkeypatch):
    output = str(tmp_path / "ray")
    log = io.StringIO()
    monkeypatch.chdir(queue_folder)
    met = tmp_path / "met"
    summary = _run(queue_folder, output, log=log, engine_factory=_meeting_factory(str(met), actors=2),
                   **_on_ray(ray_cluster))

    assert (summary.total, summary.completed, summary.failed, summary.not_run) == (6, 6, 0, 0)
    assert f"on the Ray cluster at {ray_cluster.address}, 2 actors of one CPU" in log.getvalue()
    assert len(os.listdir(met)) == 2, "both actors ran requests"
    records = _assert_each_once(output, _rows())
    assert _comparable(records) == _comparable(read_records(local_output))
    assert [r["device"] for r in records] == ["cpu"] * 6
    assert not os.path.exists(os.path.join(output, LOCK_NAME))


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_rerun_on_the_cluster_redoes_only_what_is_missing(ray_cluster, queue_folder, local_output, tmp_path,
                                                          monkeypatch):
    """A local output with two requests lost (one record and video gone, one video written but its
    record never committed) is finished by the CLI on the cluster; a second re-run has nothing to do."""
    output = tmp_path / "out"
    shutil.copytree(local_output, output)
    for name in ("records/t2v-1.parquet", "videos/t2v-1.mp4", "records/i2v-0.parquet"):
        os.remove(output / name)
    untouched = {n: os.stat(output / "records" / n).st_mtime_ns for n in os.listdir(output / "records")}
    monkeypatch.chdir(queue_folder)
    args = ["q.parquet", "--output", str(output), "--model", "tiny-random", "--progress", "off",
            "--executor", "ray", "--ray-address", ray_cluster.address, "--ray-actors", "2"]

    first = CliRunner().invoke(generate, args)
    assert first.exit_code == 0, first.output
    assert "2 completed, 0 failed, 4 already done of 6 requests" in first.output
    assert {n: os.stat(output / "records" / n).st_mtime_ns for n in untouched} == untouched
    assert _comparable(_assert_each_once(output, _rows())) == _comparable(read_records(local_output))

    again = CliRunner().invoke(generate, args)
    assert again.exit_code == 0, again.output
    assert "0 completed, 0 failed, 6 already done of 6 requests" in again.output


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_request_of_a_killed_actor_is_run_again_once(ray_cluster, queue_folder, local_output, tmp_path, monkeypatch):
    """SIGKILL an actor while it runs a request: the request goes to another actor, and the output is
    still one record and one MP4 per request, equal to the local run's."""
    output = str(tmp_path / "ray")
    killed: list[int] = []
    watcher = threading.Thread(target=_kill_busy_actor, args=(ray_cluster, killed), daemon=True)
    monkeypatch.chdir(queue_folder)
    log = io.StringIO()
    watcher.start()
    try:
        summary = _run(queue_folder, output, log=log, **_on_ray(ray_cluster))
    finally:
        watcher.join(timeout=60)

    assert killed, "no actor was ever seen running a request, so nothing was killed"
    assert "was lost" in log.getvalue() and "attempt 1 of 3" in log.getvalue()
    assert (summary.completed, summary.failed, summary.not_run) == (6, 0, 0)
    assert _comparable(_assert_each_once(output, _rows())) == _comparable(read_records(local_output))


def _kill_busy_actor(cluster: RayCluster, killed: list[int]) -> None:
    """Kill the first actor process seen running a request (Ray titles it `ray::RequestActor.run`)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for pid in cluster.all_pids():
            if process_cmdline(pid).startswith(b"ray::RequestActor.run"):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.05)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_request_that_kills_every_actor_fails_alone(ray_cluster, queue_folder, tmp_path, monkeypatch):
    """A request whose engine call kills its process is tried MAX_ATTEMPTS times on fresh actors,
    then gets a failed record naming the loss; the other requests complete."""
    def crashing_factory(kind, **kwargs):
        engine = open_engine(kind, **kwargs)
        generate_frames = engine.generate

        def crash_on_poison(call, **options):
            if call.prompt == "poison":
                os._exit(1)
            return generate_frames(call, **options)

        engine.generate = crash_on_poison
        return engine

    rows = [dict(_rows()[0]), dict(id="poison", prompt="poison", size="32x32", num_frames=5, num_inference_steps=2,
                                   seed=1, topic="x"), dict(_rows()[1])]
    write_queue(tmp_path / "q.parquet", rows)
    monkeypatch.chdir(tmp_path)
    opts = GenerateOptions(queue="q.parquet", output="out", models=("tiny-random",), progress="off",
                           **_on_ray(ray_cluster))
    summary = run(opts, log=io.StringIO(), engine_factory=crashing_factory)

    assert (summary.completed, summary.failed, summary.not_run) == (2, 1, 0)
    records = {r["id"]: r for r in read_records(tmp_path / "out")}
    assert records["poison"]["status"] == "failed"
    assert records["poison"]["error"].startswith("the Ray actor running this request died 3 times")
    assert records["poison"]["topic"] == "x"
    assert sorted(os.listdir(tmp_path / "out" / "videos")) == ["t2v-0.mp4", "t2v-1.mp4"]


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_models_that_load_on_no_actor_are_refused(ray_cluster, tmp_path):
    """As a bad model folder stops a local run at the start, actors that all fail to open the
    engine stop the run with the engine's own message, and nothing is recorded."""
    from videoproc.generate.engines import EngineError

    def broken_factory(kind, **kwargs):
        raise EngineError("torch is missing on this node")

    write_queue(tmp_path / "q.parquet", _rows()[:2])
    with pytest.raises(EngineError, match=r"no Ray actor could load the models: .*torch is missing on this node"):
        _run(tmp_path, str(tmp_path / "out"), engine_factory=broken_factory, **_on_ray(ray_cluster))
    assert not os.path.exists(tmp_path / "out" / "records")
    assert not os.path.exists(tmp_path / "out" / LOCK_NAME)


def test_ray_flags_need_the_ray_executor():
    with pytest.raises(OptionsError, match=r"--ray-address and --ray-actors only apply to --executor ray "
                                         r"\(got executor='local'\); add --executor ray or drop them"):
        GenerateOptions(queue="q", output="o", models=("tiny-random",), ray_address="auto", ray_actors=2)
    with pytest.raises(OptionsError, match=r"ray_actors must be a positive integer \(got 0\)"):
        GenerateOptions(queue="q", output="o", models=("tiny-random",), executor="ray", ray_actors=0)
    with pytest.raises(OptionsError, match=r"executor must be one of local, ray \(got 'dask'\)"):
        GenerateOptions(queue="q", output="o", models=("tiny-random",), executor="dask")


def test_missing_ray_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    write_queue(tmp_path / "q.parquet", [dict(prompt="p")])
    with pytest.raises(OptionsError, match=r"--executor ray needs Ray, which is not installed here .*"
                                           r"pip install 'videoproc\[ray\]'"):
        _run(tmp_path, str(tmp_path / "out"), executor="ray")
    assert not (tmp_path / "out").exists()


def test_unreachable_cluster_is_refused_before_any_work(tmp_path):
    write_queue(tmp_path / "q.parquet", [dict(prompt="p")])
    result = CliRunner().invoke(generate, [str(tmp_path / "q.parquet"), "--output", str(tmp_path / "out"), "--model",
                                           "tiny-random", "--executor", "ray", "--ray-address", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in result.output
    assert not (tmp_path / "out").exists()


class _FakeRay:
    """What _plan reads of a cluster: its resources and nodes."""

    def __init__(self, cpus: int, gpus: int, nodes: int) -> None:
        self.resources = {"CPU": float(cpus), **({"GPU": float(gpus)} if gpus else {})}
        self.node_list = [{"Alive": True, "Resources": {"CPU": cpus / nodes}} for _ in range(nodes)]

    def cluster_resources(self) -> dict:
        return self.resources

    def nodes(self) -> list[dict]:
        return self.node_list


@pytest.mark.parametrize("cpus,gpus,nodes,values,expected", [
    (16, 4, 2, {}, ("cuda", 4)),  # one actor per GPU
    (16, 4, 2, {"ray_actors": 2}, ("cuda", 2)),
    (16, 4, 2, {"device": "cpu"}, ("cpu", 2)),  # one CPU actor per node
    (6, 0, 3, {}, ("cpu", 3)),
    (2, 0, 2, {"ray_actors": 2}, ("cpu", 2)),
])
def test_actors_per_cluster(cpus, gpus, nodes, values, expected):
    from videoproc.generate.executor_ray import _plan

    opts = GenerateOptions(queue="q", output="o", models=("tiny-random",), executor="ray", **values)
    cluster = _plan(_FakeRay(cpus, gpus, nodes), opts, log=io.StringIO())
    assert (cluster.device, cluster.actors) == expected


@pytest.mark.parametrize("values,message", [
    ({"ray_actors": 3}, r"--ray-actors 3 needs 3 CPUs \(one per actor\) but the Ray cluster at 127.0.0.1:9 has 2; "
                        r"pass --ray-actors 2 or fewer, or add nodes"),
    ({"device": "cuda"}, r"--device cuda needs GPUs but the Ray cluster at 127.0.0.1:9 has none; add GPU nodes"),
])
def test_impossible_placements_are_refused(values, message):
    from videoproc.generate.executor_ray import _plan

    opts = GenerateOptions(queue="q", output="o", models=("tiny-random",), executor="ray", ray_address="127.0.0.1:9",
                           **values)
    with pytest.raises(OptionsError, match=message):
        _plan(_FakeRay(2, 0, 2), opts, log=io.StringIO())
