"""Helpers for running tuneyard the way a cluster does: ``serve`` replicas and ``worker`` processes
as real subprocesses on one Postgres database (a fresh one per module), with helpers shared by the
multi-worker, object-storage, Ray and SSH tests."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import BOOTSTRAP_KEY, ServeProcess, fresh_postgres_database

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
MASTER_KEY = "4mRZ0bCqo8f3c2nXo0m8VqkO2a4cY7yE9mH1t5bQ6zs="  # a Fernet key shared by every process
SFT_ROWS = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                          {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]} for i in range(8)]
TINY = {"max_steps": 2, "batch_size": 2, "learning_rate": 5e-4, "max_length": 48, "lora_r": 4, "seed": 1}
TERMINAL = ("completed", "failed", "cancelled")


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A fresh, empty Postgres database for one test module, dropped afterwards."""
    yield from fresh_postgres_database("tuneyard_scale")


class WorkerProcess:
    """``tuneyard worker`` as a real subprocess: the scheduler alone, beside stateless replicas."""

    def __init__(self, data_dir: Path, env: dict[str, str]):
        self.data_dir = data_dir
        self.env = {**os.environ, "TUNEYARD_DATA_DIR": str(data_dir), **env}
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir / "worker.log"

    def start(self) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "tuneyard", "worker"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:  # it prints its id once its scheduler is running
            if self.proc.poll() is not None:
                raise RuntimeError(f"tuneyard worker exited: {self.log_path.read_text()}")
            if "running (executor" in self.log_path.read_text(errors="replace"):
                return self
            time.sleep(0.2)
        raise RuntimeError(f"tuneyard worker did not start: {self.log_path.read_text()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Cluster:
    """Processes started by one test, all stopped (and their runners killed) at the end."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root = root
        self.env = {"TUNEYARD_MASTER_KEY": MASTER_KEY, "TUNEYARD_BOOTSTRAP_KEY": BOOTSTRAP_KEY,
                    "TUNEYARD_STORAGE_URL": str(root / "shared-blobs"), **env}
        self.servers: list[ServeProcess] = []
        self.workers: list[WorkerProcess] = []

    def serve(self, **env: str) -> ServeProcess:
        data = self.root / f"serve-{len(self.servers)}"
        data.mkdir(parents=True, exist_ok=True)
        srv = ServeProcess(data, env={**self.env, "TUNEYARD_EMBEDDED_WORKER": "false", **env})
        self.servers.append(srv)
        return srv.start(timeout=120)

    def worker(self, **env: str) -> WorkerProcess:
        w = WorkerProcess(self.root / f"worker-{len(self.workers)}", {**self.env, **env})
        self.workers.append(w)
        return w.start()

    def close(self) -> None:
        for p in self.workers + self.servers:
            p.kill()
        kill_runners(self.root)


def kill_runners(root: Path) -> None:
    """Never leave a runner behind: kill every process whose command line mentions ``root``."""
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if str(root).encode() in (d / "cmdline").read_bytes() or \
                        os.readlink(d / "cwd").startswith(str(root)):
                    os.kill(int(d.name), signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture
def cluster(tmp_path, pg_database) -> Iterator[Cluster]:
    c = Cluster(tmp_path, {"TUNEYARD_DATABASE_URL": pg_database})
    yield c
    c.close()


def upload(c: httpx.Client, rows=SFT_ROWS, name: str = "sft") -> str:
    data = "\n".join(json.dumps(r) for r in rows).encode()
    r = c.post("/v1/datasets", files={"file": (f"{name}.jsonl", io.BytesIO(data), "application/jsonl")},
               data={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def create_job(c: httpx.Client, ds: str, hp: dict | None = None, **extra) -> str:
    r = c.post("/v1/training_jobs", json={"base_model": MODEL, "dataset_id": ds, "method": "sft",
                                          "hyperparameters": hp or TINY, **extra})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def poll(c: httpx.Client, job_id: str, predicate, timeout: float = 600) -> dict:
    deadline = time.time() + timeout
    job: dict = {}
    while time.time() < deadline:
        job = c.get(f"/v1/training_jobs/{job_id}").json()
        if predicate(job):
            return job
        time.sleep(1)
    raise AssertionError(f"timed out waiting on {job_id}: {job}")


def wait_done(c: httpx.Client, job_id: str, timeout: float = 600) -> dict:
    return poll(c, job_id, lambda j: j["status"] in TERMINAL, timeout)


def events(c: httpx.Client, job_id: str) -> list[dict]:
    return c.get(f"/v1/training_jobs/{job_id}/events", params={"limit": 100}).json()["data"]


def download_checkpoint(c: httpx.Client, job_id: str, dest: Path) -> dict[str, bytes]:
    """Fetch every file of the job's final model through its download URLs (no Authorization)."""
    manifest = c.get(f"/v1/training_jobs/{job_id}/model")
    assert manifest.status_code == 200, manifest.text
    out = {}
    dest.mkdir(parents=True, exist_ok=True)
    for f in manifest.json()["files"]:
        r = httpx.get(f["url"], timeout=60)
        assert r.status_code == 200, (f["path"], r.status_code, r.text[:200])
        assert len(r.content) == f["bytes"]
        (dest / f["path"]).parent.mkdir(parents=True, exist_ok=True)
        (dest / f["path"]).write_bytes(r.content)
        out[f["path"]] = r.content
    return out


def checkpoint_shapes(folder: Path) -> dict[str, tuple]:
    """Tensor name -> shape of a downloaded adapter."""
    from safetensors import safe_open

    with safe_open(str(folder / "adapter_model.safetensors"), framework="pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


# -- a local S3 (moto's server mode) ------------------------------------------------------------
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class S3:
    endpoint: str
    bucket: str

    @property
    def env(self) -> dict[str, str]:
        """What every tuneyard process needs to keep its blobs in this bucket."""
        return {**S3_ENV, "TUNEYARD_STORAGE_URL": f"s3://{self.bucket}/tuneyard",
                "TUNEYARD_S3_ENDPOINT_URL": self.endpoint}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """moto's S3 server on a loopback port, for the whole module."""
    import logging

    from moto.server import ThreadedMotoServer

    from tests.conftest import free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch) -> S3:
    """A fresh bucket; this process's AWS_* point at the same fake account."""
    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    bucket = f"tuneyard-{uuid.uuid4().hex[:10]}"
    store = S3(s3_server, bucket)
    store.client().create_bucket(Bucket=bucket)
    return store


# -- a local Ray head ---------------------------------------------------------------------------
@dataclass
class RayHead:
    address: str  # the Jobs API (dashboard)
    temp_dir: Path

    def client(self):
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.address)

    def jobs_of(self, job_id: str) -> list:
        return [d for d in self.client().list_jobs() if (d.metadata or {}).get("tuneyard_job") == job_id]


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    """A one-node Ray cluster (1 CPU, dashboard + job server on loopback) for the session (training and
    deployment tests share it: starting one costs ~20 s), stopped after."""
    pytest.importorskip("ray.job_submission", reason="the Ray executor tests need the 'ray' extra "
                                                     "(pip install -e '.[ray]'); ray is not installed")
    import tempfile

    from tests.conftest import free_port

    temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths have a limit
    dash = free_port()
    ray = Path(sys.executable).parent / "ray"
    cmd = [str(ray), "start", "--head", "--block", "--num-cpus=1", "--num-gpus=0", "--node-ip-address=127.0.0.1",
           f"--port={free_port()}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
           f"--dashboard-port={dash}", f"--ray-client-server-port={free_port()}",
           f"--dashboard-agent-listen-port={free_port()}", "--object-store-memory=80000000",
           f"--temp-dir={temp_dir}", "--disable-usage-stats"]
    log = open(temp_dir / "head.log", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    head = RayHead(f"http://127.0.0.1:{dash}", temp_dir)
    deadline = time.time() + 180
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited: {(temp_dir / 'head.log').read_text()[-3000:]}")
        try:
            head.client().list_jobs()  # the job server answers
            break
        except Exception:
            if time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"Ray head did not come up: {(temp_dir / 'head.log').read_text()[-3000:]}")
            time.sleep(1)
    yield head
    proc.terminate()  # `ray start --block` stops the processes it started
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
    kill_runners(temp_dir)  # whatever is left of this head (its processes name the temp dir)
    import shutil

    shutil.rmtree(temp_dir, ignore_errors=True)


# -- a real sshd on a loopback port ---------------------------------------------------------------
@dataclass
class Sshd:
    port: int
    host_key: str  # the server's public key line, to pin it
    authorized_keys: Path
    user: str


def new_ssh_key_pair() -> tuple[str, str]:
    """(private key in OpenSSH format, public key line): an ed25519 pair, as a user would upload."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode() + " tuneyard-test"


@pytest.fixture(scope="session")
def sshd(tmp_path_factory) -> Iterator[Sshd]:
    """OpenSSH's sshd on 127.0.0.1 with a throw-away host key; logins by the keys in ``authorized_keys``."""
    import getpass

    from tests.conftest import free_port

    binary = Path("/usr/sbin/sshd")
    if not binary.exists():
        pytest.fail("the SSH executor test needs OpenSSH's sshd: apt-get install openssh-server "
                    "(scripts/install.sh --test does it)")
    d = tmp_path_factory.mktemp("sshd")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    authorized = d / "authorized_keys"
    authorized.touch(mode=0o600)
    port = free_port()
    (d / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d / 'host_key'}
PidFile {d / 'sshd.pid'}
AuthorizedKeysFile {authorized}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
LogLevel ERROR
""")
    Path("/run/sshd").mkdir(exist_ok=True)  # its privilege-separation folder
    log = open(d / "sshd.log", "ab")
    proc = subprocess.Popen([str(binary), "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=log)
    deadline = time.time() + 30
    while True:
        try:
            import socket

            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(4).startswith(b"SSH-"):
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"sshd did not start: {(d / 'sshd.log').read_text()}")
        time.sleep(0.2)
    host_key = " ".join((d / "host_key.pub").read_text().split()[:2])
    yield Sshd(port, host_key, authorized, getpass.getuser())
    proc.terminate()
    proc.wait(10)
