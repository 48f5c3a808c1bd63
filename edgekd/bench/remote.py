"""Benchmark on a device over SSH: copy the runner bundle, the artifact and the images, run, fetch the JSON.

Only the system's ``ssh``/``scp`` are used, with argument lists (no shell on this side); the one remote
command line is built with :func:`shlex.quote`. Host keys are checked (``StrictHostKeyChecking=yes``
against ``known_hosts``, default ``~/.ssh/known_hosts``), ``BatchMode=yes`` never prompts, and every
step has a bounded timeout (``ConnectTimeout`` for connecting, ``timeout_s`` per step).

>>> target = RemoteTarget.parse("pi@raspberrypi.local")  # doctest: +SKIP
>>> result = run_remote(target, job, files, artifact, images)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgekd.bench.bundle import runner_outcome
from edgekd.convert.golden import artifact_files
from edgekd.errors import ConfigError, RemoteError

log = logging.getLogger(__name__)

_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9._-]*)$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_REMOTE_DIR = re.compile(r"^/[A-Za-z0-9_./-]+$")


@dataclass(frozen=True)
class RemoteTarget:
    """A device reachable over SSH; ``python`` is the interpreter (with numpy + the runtime) to use there."""

    host: str
    user: str | None = None
    port: int | None = None
    identity: Path | None = None
    known_hosts: Path | None = None
    python: str = "python3"
    connect_timeout_s: int = 10
    timeout_s: float = 1800.0

    @classmethod
    def parse(cls, spec: str, **options) -> RemoteTarget:
        """``[USER@]HOST[:PORT]`` (IPv6 as ``[::1]:2222``) → target; rejects anything ssh could read as
        an option or a shell word."""
        user, _, hostport = spec.rpartition("@")
        host, port = hostport, None
        m = re.match(r"^(\[[^\]]+\]|[^:]+):(\d+)$", hostport)
        if m:
            host, port = m.group(1), int(m.group(2))
        if (
            not _HOST.match(host)
            or (user and not _USER.match(user))
            or (port is not None and not 0 < port < 65536)
        ):
            raise ConfigError(
                f"bad --remote {spec!r}: expected USER@HOST or USER@HOST:PORT (e.g. pi@192.168.1.20)"
            )
        return cls(host=host.strip("[]"), user=user or None, port=port, **options)

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def label(self) -> str:
        return self.destination + (f":{self.port}" if self.port else "")

    def _options(self) -> list[str]:
        known = self.known_hosts or Path.home() / ".ssh" / "known_hosts"
        opts = [
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known}",
            "-o", f"ConnectTimeout={self.connect_timeout_s}",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=3",
        ]  # fmt: skip
        if self.identity:
            opts += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        return opts

    def ssh_args(self, command: str) -> list[str]:
        port = ["-p", str(self.port)] if self.port else []
        return ["ssh", *self._options(), *port, "--", self.destination, command]

    def scp_args(self, sources: list[str], dest: str) -> list[str]:
        port = ["-P", str(self.port)] if self.port else []
        return ["scp", "-q", *self._options(), *port, "--", *sources, dest]

    def remote_path(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{path}" if self.user else f"{host}:{path}"


def _call(args: list[str], what: str, target: RemoteTarget, timeout_s: float) -> subprocess.CompletedProcess:
    """Run ssh/scp; connection problems (ssh's exit status 255) and timeouts become :class:`RemoteError`."""
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError:
        raise RemoteError(f"'{args[0]}' not found: install the OpenSSH client to use --remote") from None
    except subprocess.TimeoutExpired:
        raise RemoteError(f"{what} on {target.label} timed out after {timeout_s:.0f} s") from None
    if proc.returncode == 255 or (args[0] == "scp" and proc.returncode != 0):
        detail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        port = f"-p {target.port} " if target.port else ""
        if "host key" in detail.lower():
            hint = (
                f"check the device's fingerprint, then add its key: ssh-keyscan {port}{target.host} "
                ">> ~/.ssh/known_hosts (or pass --known-hosts FILE)"
            )
        else:
            hint = f"check the address and that sshd accepts your key: ssh {port}{target.destination} true"
        raise RemoteError(f"cannot {what} on {target.label} over SSH: {detail}. Next: {hint}")
    return proc


def run_remote(
    target: RemoteTarget,
    job: dict,
    files: list[Path],
    artifact: Path,
    images: Path | None,
    module: str,
) -> dict:
    """Copy bundle + artifact (+ images) to a fresh remote temp folder, run the job there, fetch the result,
    and remove the folder. ``job`` is rewritten to name the copies by their remote file names."""
    connect = float(target.connect_timeout_s) + 20
    made = _call(
        target.ssh_args("mktemp -d /tmp/edgekd-bench.XXXXXX"), "create a work folder", target, connect
    )
    remote_dir = made.stdout.strip()
    if not _REMOTE_DIR.match(remote_dir):
        raise RemoteError(f"unexpected answer from mktemp on {target.label}: {remote_dir!r}")
    try:
        with tempfile.TemporaryDirectory(prefix="edgekd-remote-") as tmp:
            local = Path(tmp)
            artifacts = artifact_files(artifact)  # an IR's .bin travels with its .xml
            remote_job = {
                **job,
                "artifact": "model" + artifact.suffix,
                "images": "images.npy" if images else None,
                "golden": "golden.npy" if job.get("golden") else None,
                "hash": {p.name: "model" + p.suffix for p in artifacts} if job.get("hash") else None,
            }
            (local / "job.json").write_text(json.dumps(remote_job))
            sources = [str(f) for f in files] + [str(local / "job.json")]
            staged = {"model" + p.suffix: p for p in artifacts}
            if images:
                staged["images.npy"] = images
            if job.get("golden"):
                staged["golden.npy"] = Path(job["golden"])
            for name, source in staged.items():  # scp follows the links: the copies get these names
                (local / name).symlink_to(source.resolve())
                sources.append(str(local / name))
            _call(
                target.scp_args(sources, target.remote_path(remote_dir + "/")),
                "copy the bundle",
                target,
                target.timeout_s,
            )
            command = " ".join(
                ["cd", shlex.quote(remote_dir), "&&"]
                + [shlex.quote(part) for part in shlex.split(target.python)]
                + ["runner_script.py", "--config", "job.json", "--out", "result.json"]
            )
            proc = _call(target.ssh_args(command), "run the benchmark", target, target.timeout_s)
            out = local / "result.json"
            if proc.returncode == 0:
                _call(
                    target.scp_args([target.remote_path(remote_dir + "/result.json")], str(out)),
                    "fetch the result",
                    target,
                    connect + 60,
                )
            if proc.returncode == 127:
                raise RemoteError(
                    f"'{target.python}' not found on {target.label}: pass --remote-python with an "
                    f"interpreter that has numpy and {module}"
                )
            return runner_outcome(proc.returncode, proc.stderr, out, target.label, module)
    finally:
        try:
            _call(target.ssh_args(f"rm -rf {shlex.quote(remote_dir)}"), "clean up", target, connect)
        except RemoteError as exc:  # the result is already here; a leftover temp folder is not fatal
            log.warning("could not remove %s on %s: %s", remote_dir, target.label, exc)
