"""SSH executor (``TUNEYARD_EXECUTOR=ssh``): runners on GPU hosts reached with a stored SSH key.

The hosts are configured in ``TUNEYARD_SSH_HOSTS`` (see settings.py), each naming an ``/v1/ssh_keys``
key (decrypted only here, to connect). Per run, in ``~/<ssh_runner_dir>/runs/<job>/attempt-<n>/``:

* **set-up**: the host's Python must import the same tuneyard version; without a configured
  ``python`` a venv with the pinned tuneyard is created once (``venv-<version>``);
* **submit**: ``spec.json`` (inputs are blob URLs) and a 0600 ``env.sh`` (storage credentials, removed
  once the runner has started) are written over SFTP; the runner starts detached (``setsid``,
  ``nohup``-style) with stdout/stderr in files, its pid in ``pid`` and, when it ends, its exit code
  in ``exit_code``;
* **stream**: ``runner.jsonl`` is read over SFTP from the offset in the handle;
* **cancel**: SIGTERM to the runner (it checkpoints and reports ``cancelled``);
* **re-attach**: the handle names the host, folder and pid, so any worker can pick the run up.

Capacity is the sum of the hosts' ``gpus``; a run goes to the host with the most free units of its
type (counted from the running jobs' handles).
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import select

from tuneyard import __version__
from tuneyard.context import Context
from tuneyard.scheduler import workspace
from tuneyard.scheduler.executor import Handle
from tuneyard.scheduler.ray_executor import parse_line
from tuneyard.services import ssh_keys
from tuneyard.services.cluster import canonical_gpu_type
from tuneyard.store.models import SshKey, TrainingJob

log = logging.getLogger("tuneyard.scheduler.ssh")
POLL_SECONDS = 1.0
UNREACHABLE_GIVE_UP_SECONDS = 300.0


class SshError(RuntimeError):
    pass


class _Loop:
    """One event loop thread carrying every SSH connection of this process (asyncssh is async)."""

    _loop: asyncio.AbstractEventLoop | None = None
    _lock = threading.Lock()

    @classmethod
    def run(cls, coro, timeout: float | None = None):
        with cls._lock:
            if cls._loop is None:
                cls._loop = asyncio.new_event_loop()
                threading.Thread(target=cls._loop.run_forever, name="tuneyard-ssh", daemon=True).start()
        return asyncio.run_coroutine_threadsafe(coro, cls._loop).result(timeout)


class Host:
    def __init__(self, raw: dict):
        self.host = str(raw["host"])
        self.port = int(raw.get("port", 22))
        self.user = raw.get("user") or None
        self.key_id = str(raw.get("ssh_key", ""))
        self.name = str(raw.get("name") or f"{self.user + '@' if self.user else ''}{self.host}:{self.port}")
        self.gpus = {canonical_gpu_type(k): int(v) for k, v in (raw.get("gpus") or {"cpu": 1}).items()}
        self.python = raw.get("python") or None
        self.known_hosts = raw.get("known_hosts") or None  # the host's public key line(s), to pin it


class SshExecutor:
    name = "ssh"
    remote = True

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.settings = ctx.settings
        self.hosts = {h.name: h for h in (Host(raw) for raw in self.settings.ssh_hosts)}
        if not self.hosts:
            raise ValueError("TUNEYARD_EXECUTOR=ssh needs TUNEYARD_SSH_HOSTS (a JSON list of hosts)")
        self._conns: dict[str, object] = {}
        self._pythons: dict[str, str] = {}

    # -- capacity and placement -------------------------------------------------------------------
    def capacity(self, gpu_type: str) -> int:
        return sum(h.gpus.get(gpu_type, 0) for h in self.hosts.values())

    def _place(self, gpu_type: str, gpu_count: int, also_used: dict[str, int] | None = None) -> Host:
        """The host with the most free units of ``gpu_type``, counting the running training jobs (and
        ``also_used``: host name -> units, what the caller knows is busy besides)."""
        used: dict[str, int] = dict(also_used or {})
        with self.ctx.db.session(readonly=True) as s:
            for handle, count in s.execute(select(TrainingJob.executor_handle, TrainingJob.gpu_count).where(
                    TrainingJob.executor == self.name, TrainingJob.gpu_type == gpu_type,
                    TrainingJob.status.in_(("provisioning", "running")))):
                if handle and handle.get("host"):
                    used[handle["host"]] = used.get(handle["host"], 0) + count
        free = sorted(((h.gpus.get(gpu_type, 0) - used.get(h.name, 0), h.name) for h in self.hosts.values()),
                      reverse=True)
        if not free or free[0][0] < gpu_count:
            raise SshError(f"no SSH host has {gpu_count} free {gpu_type}")
        return self.hosts[free[0][1]]

    # -- connections ------------------------------------------------------------------------------
    def _private_key(self, host: Host) -> str:
        with self.ctx.db.session(readonly=True) as s:
            key = s.execute(select(SshKey).where(SshKey.id == host.key_id)).scalar()
            if key is None:
                raise SshError(f"SSH host {host.name}: no stored SSH key {host.key_id!r} (see /v1/ssh_keys)")
            return ssh_keys.private_key_of(self.settings, key)

    async def _connect(self, host: Host):
        import asyncssh

        conn = self._conns.get(host.name)
        if conn is not None and not conn.is_closed():
            return conn
        known = asyncssh.import_known_hosts(f"[{host.host}]:{host.port} {host.known_hosts}") \
            if host.known_hosts else None
        conn = await asyncio.wait_for(asyncssh.connect(
            host.host, port=host.port, username=host.user, known_hosts=known,
            client_keys=[asyncssh.import_private_key(self._private_key(host))], agent_path=None,
            keepalive_interval=30), self.settings.ssh_connect_timeout_seconds)
        self._conns[host.name] = conn
        return conn

    def _run(self, host: Host, command: str, *, check: bool = True, timeout: float = 600) -> str:
        async def go():
            conn = await self._connect(host)
            return await conn.run(command, check=False)

        result = _Loop.run(go(), timeout)
        if check and result.exit_status != 0:
            raise SshError(f"{host.name}: `{command[:120]}` failed ({result.exit_status}): "
                           f"{(result.stderr or result.stdout or '').strip()[-500:]}")
        return result.stdout or ""

    def _write(self, host: Host, path: str, data: bytes, mode: int = 0o644) -> None:
        async def go():
            conn = await self._connect(host)
            async with conn.start_sftp_client() as sftp, sftp.open(path, "wb", attrs=_attrs(mode)) as f:
                await f.write(data)

        _Loop.run(go(), 120)

    def _read(self, host: Host, path: str, offset: int) -> bytes | None:
        async def go():
            import asyncssh

            conn = await self._connect(host)
            async with conn.start_sftp_client() as sftp:
                try:
                    async with sftp.open(path, "rb") as f:
                        await f.seek(offset)
                        return await f.read(4 << 20)
                except asyncssh.SFTPNoSuchFile:
                    return None

        return _Loop.run(go(), 120)

    # -- set-up -----------------------------------------------------------------------------------
    def _python(self, host: Host) -> str:
        """An interpreter on the host with this tuneyard version, set up once per host."""
        if host.name in self._pythons:
            return self._pythons[host.name]
        base = self.settings.ssh_runner_dir.rstrip("/")
        python = host.python or f"{base}/venv-{__version__}/bin/python"
        probe = f"{shlex.quote(python)} -c 'import tuneyard; print(tuneyard.__version__)'"
        version = self._run(host, probe, check=False).strip()
        if version != __version__ and not host.python:
            spec = self.settings.ssh_install_spec or f"tuneyard=={__version__}"
            venv = f"{base}/venv-{__version__}"
            log.info("setting up %s on %s (%s)", venv, host.name, spec)
            self._run(host, f"mkdir -p {shlex.quote(base)} && python3 -m venv {shlex.quote(venv)} && "
                            f"{shlex.quote(venv)}/bin/pip install -q {shlex.quote(spec)}", timeout=3600)
            version = self._run(host, probe, check=False).strip()
        if version != __version__:
            raise SshError(f"{host.name}: {python} has tuneyard {version or 'not installed'}, "
                           f"this cluster runs {__version__}")
        self._pythons[host.name] = python
        return python

    # -- the four calls ---------------------------------------------------------------------------
    def submit(self, job_id: str, workdir: Path, spec_path: Path, *, gpu_type: str, gpu_count: int) -> Handle:
        host = self._place(gpu_type, gpu_count)
        python = self._python(host)
        rundir = f"{self.settings.ssh_runner_dir.rstrip('/')}/runs/{job_id}/{workdir.name}"
        q = shlex.quote(rundir)
        self._run(host, f"rm -rf {q} && mkdir -p {q}")
        self._write(host, f"{rundir}/spec.json", spec_path.read_bytes())
        env = {"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", **workspace.runner_env(self.ctx)}
        if gpu_type == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        self.write_env(host, rundir, env)
        pid = self.start_detached(host, rundir, f"{shlex.quote(python)} -m tuneyard.training spec.json "
                                                ">runner.jsonl 2>runner.stderr.log")
        log.info("started %s on %s (pid %s)", job_id, host.name, pid)
        return {"host": host.name, "dir": rundir, "pid": pid, "offset": 0}

    # -- shared with the deployment launcher (inference/ssh_launcher.py) ---------------------------
    def write_env(self, host: Host, rundir: str, env: dict[str, str]) -> None:
        """A 0600 ``env.sh`` in ``rundir``, sourced by ``start_detached`` and deleted once read."""
        self._write(host, f"{rundir}/env.sh",
                    "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()).encode(), 0o600)

    def start_detached(self, host: Host, rundir: str, command: str) -> int:
        """Run ``command`` (with its output redirected) in ``rundir`` after sourcing ``env.sh``, in its own
        session so that it outlives the connection; its pid goes to ``pid`` and, when it ends, its exit
        code to ``exit_code``. Returns the pid once it has started (``env.sh`` is then deleted)."""
        q = shlex.quote(rundir)
        inner = f"cd {q} || exit 1; . ./env.sh; {command} </dev/null & echo $! >pid; wait $!; echo $? >exit_code"
        # One simple command in the background with every stream redirected: nothing keeps the SSH
        # channel open, and the process (in its own session) outlives the connection.
        self._run(host, f"setsid sh -c {shlex.quote(inner)} >/dev/null 2>&1 </dev/null &")
        pid = None
        for _ in range(100):
            out = self._run(host, f"cat {q}/pid 2>/dev/null", check=False).strip()
            if out.isdigit():
                pid = int(out)
                break
            time.sleep(0.2)
        if pid is None:
            raise SshError(f"{host.name}: the process did not start")
        self._run(host, f"rm -f {q}/env.sh", check=False)  # the process has read it
        return pid

    def running(self, host: Host, rundir: str, pid: int, marker: str) -> bool:
        """Whether ``pid`` started in ``rundir`` still runs (and is still that process: ``marker`` is in
        its command line). Raises when the host cannot be reached."""
        q = shlex.quote(rundir)
        probe = (f"test ! -e {q}/exit_code && kill -0 {int(pid)} 2>/dev/null && "
                 f"tr '\\0' ' ' </proc/{int(pid)}/cmdline | grep -qF {shlex.quote(marker)}")
        return self._run(host, f"{probe} && echo yes", check=False).strip() == "yes"

    def alive(self, handle: Handle) -> bool:
        host = self.hosts.get(handle.get("host", ""))
        if host is None:
            return False
        try:
            return self.running(host, handle["dir"], int(handle["pid"]), "tuneyard.training")
        except Exception as exc:
            log.warning("cannot reach %s: %s", host.name, exc)
            raise

    def cancel(self, handle: Handle) -> None:
        if self.alive(handle):
            host = self.hosts[handle["host"]]
            self._run(host, f"kill -TERM {int(handle['pid'])}", check=False)

    def stream(self, handle: Handle) -> Iterator[dict]:
        host = self.hosts.get(handle.get("host", ""))
        offset = int(handle.get("offset", 0))
        if host is None:  # the host left the configuration: the run is out of reach
            yield {"type": "exit", "code": None, "_offset": offset}
            return
        path = f"{handle['dir']}/runner.jsonl"
        pos, buffer, unreachable_since = offset, b"", None
        while True:
            try:
                exited = not self.alive(handle)  # before reading: the file is complete once exited
                data = self._read(host, path, pos) or b""
            except Exception as exc:
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > UNREACHABLE_GIVE_UP_SECONDS:
                    log.error("%s unreachable for %s s: %s", host.name, UNREACHABLE_GIVE_UP_SECONDS, exc)
                    yield {"type": "exit", "code": None, "_offset": offset}
                    return
                self._conns.pop(host.name, None)
                time.sleep(POLL_SECONDS * 5)
                continue
            unreachable_since = None
            if data:
                buffer += data
                pos += len(data)
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    offset += len(raw) + 1
                    line = parse_line(raw.decode("utf-8", "replace"))
                    if line is not None:
                        line["_offset"] = offset
                        yield line
                continue
            if exited:
                code = self._run(host, f"cat {shlex.quote(handle['dir'])}/exit_code 2>/dev/null", check=False).strip()
                if code != "0":  # what it said on stderr, for the crash report
                    tail = self._run(host, f"tail -n 15 {shlex.quote(handle['dir'])}/runner.stderr.log 2>/dev/null",
                                     check=False)
                    for text in tail.splitlines():
                        yield {"type": "stderr", "message": text, "_offset": offset}
                yield {"type": "exit", "code": int(code) if code.lstrip("-").isdigit() else None, "_offset": offset}
                return
            time.sleep(POLL_SECONDS)


def _attrs(mode: int):
    import asyncssh

    return asyncssh.SFTPAttrs(permissions=mode)
