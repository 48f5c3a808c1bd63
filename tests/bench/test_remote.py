"""``--remote`` for real: an OpenSSH server on 127.0.0.1 with throw-away keys, benchmarked through."""

from __future__ import annotations

import dataclasses
import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekd.bench import bench
from edgekd.bench.remote import RemoteError, RemoteTarget
from edgekd.data import load_verification_set
from edgekd.errors import ConfigError
from edgekd.eval import evaluate
from edgekd.runtime import load_embedder

SSHD = Path("/usr/sbin/sshd")
SFTP_SERVERS = (Path("/usr/lib/openssh/sftp-server"), Path("/usr/libexec/openssh/sftp-server"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _skip_unless_tools() -> None:
    if not SSHD.is_file():
        pytest.skip(f"{SSHD} not installed (apt-get install openssh-server; `make test` tries that)")
    for tool in ("ssh", "scp", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (OpenSSH client)")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A non-daemon sshd on 127.0.0.1:<free port> that accepts one throw-away key; always killed."""
    _skip_unless_tools()
    d = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "user_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True, timeout=30
        )
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    user = getpass.getuser()
    sftp = next((p for p in SFTP_SERVERS if p.is_file()), None)
    config = d / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                f"HostKey {d / 'host_key'}",
                f"PidFile {d / 'sshd.pid'}",
                f"AuthorizedKeysFile {d / 'authorized_keys'}",
                f"AllowUsers {user}",
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                *([f"Subsystem sftp {sftp}"] if sftp else []),
                "LogLevel ERROR",
            ]
        )
        + "\n"
    )
    if os.geteuid() == 0 and not Path("/run/sshd").is_dir():
        Path("/run/sshd").mkdir(mode=0o755, parents=True)  # sshd's privilege-separation dir (tmpfs)
    port = free_port()
    log = open(d / "sshd.log", "w")  # noqa: SIM115 -- closed in the finalizer
    proc = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(config), "-p", str(port)], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.skip(f"sshd could not start: {(d / 'sshd.log').read_text().strip()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.skip("sshd did not listen within 10 s")
                time.sleep(0.05)
        host_key = " ".join((d / "host_key.pub").read_text().split()[:2])
        (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key}\n")
        yield {"user": user, "port": port, "key": d / "user_key", "known_hosts": d / "known_hosts", "dir": d}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def _remote(sshd, **extra) -> dict:
    return {
        "remote": f"{sshd['user']}@127.0.0.1:{sshd['port']}",
        "ssh_key": str(sshd["key"]),
        "known_hosts": str(sshd["known_hosts"]),
        "remote_python": sys.executable,  # the "device" python: numpy + onnxruntime, no edgekd needed
        "connect_timeout_s": 5,
        "timeout_s": 120,
        **extra,
    }


def test_remote_bench_matches_local_accuracy(sshd, tiny):
    run = bench([str(tiny)], "x86", pairs="synthetic", runs=5, warmup=1, batch=2, **_remote(sshd))
    (res,) = run.results
    assert run.where == f"ssh {sshd['user']}@127.0.0.1:{sshd['port']}"
    assert res["latency"]["runs"] == 5 and res["throughput"]["images_per_s"] > 0
    assert res["threads"] == 4  # the profile's threads on the device, not capped by this host
    assert "embeddings" not in res and res["estimate"]["latency_ms"] > 0
    vset = load_verification_set("synthetic")
    local = evaluate(load_embedder(tiny, threads=1), vset, progress=False).metrics
    remote = res["accuracy"]["metrics"]
    assert remote["fold_accuracies"] == local.fold_accuracies
    assert remote["accuracy"] == pytest.approx(local.accuracy, abs=1e-12)
    leftovers = [p for p in Path("/tmp").glob("edgekd-bench.*") if p.stat().st_mtime > time.time() - 60]
    assert not leftovers, "the remote work folder was not removed"


def test_unknown_host_key_is_refused_with_a_hint(sshd, tiny, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(RemoteError, match=r"Host key verification failed.*ssh-keyscan -p \d+ 127.0.0.1"):
        bench([str(tiny)], "x86", runs=1, **_remote(sshd, known_hosts=str(empty)))


def test_missing_remote_python_is_named(sshd, tiny):
    with pytest.raises(RemoteError, match=r"'/nonexistent/python3' not found on .*--remote-python"):
        bench([str(tiny)], "x86", runs=1, **_remote(sshd, remote_python="/nonexistent/python3"))


def test_unreachable_host_fails_fast_and_clearly(tiny, tmp_path):
    _skip_unless_tools()
    port = free_port()  # nothing listens there
    start = time.monotonic()
    with pytest.raises(RemoteError, match=rf"cannot create a work folder on root@127.0.0.1:{port} over SSH"):
        bench(
            [str(tiny)],
            "x86",
            runs=1,
            remote=f"root@127.0.0.1:{port}",
            known_hosts=str(tmp_path / "kh"),
            connect_timeout_s=3,
        )
    assert time.monotonic() - start < 30


@pytest.mark.parametrize(
    "spec", ["-oProxyCommand=touch@x", "pi@-oProxyCommand=x", "pi@host;rm", "pi@host:99999", "a b@host", ""]
)
def test_destinations_that_could_inject_are_rejected(spec):
    with pytest.raises(ConfigError, match="bad --remote"):
        RemoteTarget.parse(spec)


def test_ssh_arguments_are_a_checked_list():
    t = RemoteTarget.parse("pi@raspberrypi.local:2222", known_hosts=Path("/k"), identity=Path("/id"))
    args = t.ssh_args("true")
    for opt in ("BatchMode=yes", "StrictHostKeyChecking=yes", "UserKnownHostsFile=/k", "ConnectTimeout=10"):
        assert opt in args
    assert args[args.index("-p") + 1] == "2222" and args[-3:] == ["--", "pi@raspberrypi.local", "true"]
    assert t.scp_args(["a"], t.remote_path("/tmp/x/"))[-1] == "pi@raspberrypi.local:/tmp/x/"
    v6 = RemoteTarget.parse("me@[::1]:22")
    assert (v6.host, v6.port, v6.remote_path("/t")) == ("::1", 22, "me@[::1]:/t")


def test_remote_openvino_ir_travels_with_its_bin_and_is_checked_there(sshd, tiny, tmp_path):
    """An IR needs its .bin beside the .xml on the device; its hash and golden faces are checked there."""
    import openvino as ov

    from edgekd.convert.golden import artifact_sha256, write_golden
    from edgekd.convert.images import face_images
    from edgekd.convert.manifest import Manifest, write_manifest
    from edgekd.data.preprocess import PreprocessSpec

    folder = tmp_path / "ir"
    folder.mkdir()
    ov.save_model(ov.convert_model(str(tiny)), str(folder / "model.xml"), compress_to_fp16=False)
    manifest = Manifest("openvino", "model.xml", PreprocessSpec.preset("arcface"), 8)
    write_manifest(manifest, folder)  # the loaders read the preprocessing from it
    faces = face_images(None, count=6, seed=1)
    golden = write_golden(folder, faces, load_embedder(folder / "model.xml").embed(faces), "openvino here")
    sha = artifact_sha256(folder / "model.xml")
    assert set(sha) == {"model.xml", "model.bin"}
    write_manifest(dataclasses.replace(manifest, artifact_sha256=sha, golden=golden), folder)
    run = bench([str(folder / "model.xml")], "x86", runs=3, warmup=1, batch=1, **_remote(sshd))
    parity = run.results[0]["device_parity"]
    assert run.failures == [] and parity["passed"] and parity["num_images"] == 6


@pytest.mark.slow  # ~1 min: a TFLite conversion in a child process, then six small benches
def test_one_call_benches_onnx_ir_and_tflite_here_and_over_ssh(sshd, tiny, tmp_path):
    """`edgekd bench -a a.onnx -a b.xml -a c.tflite --profile rpi4 -p ...`: every format measured in one
    run, with accuracy, latency statistics and the roofline estimate read from its own op list; the same
    over --remote (the device python has the three runtimes)."""
    import openvino as ov

    from edgekd.convert.manifest import Manifest, write_manifest
    from edgekd.data.preprocess import PreprocessSpec
    from tests.convert.artifacts import EMBEDDING, tflite_in_subprocess

    spec = PreprocessSpec.preset("arcface")
    ir, tfl = tmp_path / "ir", tmp_path / "tfl"
    ir.mkdir(), tfl.mkdir()
    ov_model = ov.convert_model(str(tiny))
    ov_model.reshape({0: [1, 3, 112, 112]})
    ov.save_model(ov_model, str(ir / "model.xml"), compress_to_fp16=False)
    write_manifest(Manifest("openvino", "model.xml", spec, 8), ir)
    tflite_in_subprocess(0, tfl / "model.tflite")
    write_manifest(Manifest("tflite", "model.tflite", spec, EMBEDDING), tfl)
    artifacts = [str(tiny), str(ir / "model.xml"), str(tfl / "model.tflite")]
    for where in ({}, _remote(sshd)):
        run = bench(artifacts, "rpi4", pairs="synthetic", runs=4, warmup=1, batch=1, **where)
        assert [Path(r["artifact"]).suffix for r in run.results] == [".onnx", ".xml", ".tflite"]
        for res in run.results:
            assert res["accuracy"]["metrics"]["accuracy"] > 0.4
            assert res["latency"]["runs"] == 4 and res["latency"]["p50_ms"] > 0
            assert res["estimate"]["latency_ms"] > 0, res["artifact"]
        assert run.failures == []
