"""Device profiles: every shipped file loads, round-trips and says where its numbers come from."""

from __future__ import annotations

import pytest
import yaml

from edgekd.bench.profiles import Profile, list_profiles, load_profile, profiles_dir
from edgekd.config import from_dict, to_dict
from edgekd.errors import ConfigError, UnsupportedTargetError

EXPECTED = ["jetson-nano", "jetson-orin-nano", "rpi4", "rpi5", "x86", "x86-vnni"]


def test_the_issue_profiles_exist():
    assert list_profiles() == EXPECTED


@pytest.mark.parametrize("name", list_profiles())
def test_profile_loads_round_trips_and_cites_sources(name, tmp_path):
    profile = load_profile(name)
    assert profile.name == name and 1 <= profile.threads <= profile.cpu.cores
    again = tmp_path / f"{name}.yaml"
    again.write_text(yaml.safe_dump(to_dict(profile), allow_unicode=True))
    assert load_profile(again) == profile == from_dict(Profile, to_dict(profile))
    text = (profiles_dir() / f"{name}.yaml").read_text()
    assert "Sources:" in text  # peaks and bandwidth come with their source
    for key in ("fp32_gops", "int8_gops", "memory_gbs"):
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(key))
        assert "#" in line, f"{name}: {key} has no comment saying where it comes from"
    assert profile.runtime_for("onnxruntime") is not None


def test_isa_facts_of_the_issue():
    assert "asimddp" not in load_profile("rpi4").cpu.isa  # Cortex-A72: no dot product
    assert "asimddp" in load_profile("rpi5").cpu.isa  # Cortex-A76: SDOT
    assert load_profile("rpi4").cpu.memory_gbs == 12.8
    nano, orin = load_profile("jetson-nano"), load_profile("jetson-orin-nano")
    assert nano.gpu.int8_gops <= nano.gpu.fp32_gops  # Maxwell: no fast int8
    assert orin.gpu.int8_gops > 10 * orin.gpu.fp32_gops  # Ampere int8 tensor cores
    assert "avx512_vnni" in load_profile("x86-vnni").cpu.isa
    assert "avx512_vnni" not in load_profile("x86").cpu.isa
    assert load_profile("jetson-nano").runtime_for("onnxruntime").providers[:2] == (
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
    )


def test_unknown_profile_lists_known_and_suggests():
    with pytest.raises(UnsupportedTargetError, match=r"unknown profile 'rpi'; known: .*rpi4.*Did you mean"):
        load_profile("rpi")


def _write(tmp_path, stem: str, **changes) -> str:
    data = to_dict(load_profile("rpi4"))
    data["name"] = stem
    for key, value in changes.items():
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    path = tmp_path / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return str(path)


def test_bad_profiles_are_rejected_with_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r'unknown key "cpu\.fp32_gflops"'):
        load_profile(_write(tmp_path, "typo", **{"cpu.fp32_gflops": 1.0}))
    with pytest.raises(ConfigError, match=r"threads must be between 1 and cpu\.cores"):
        load_profile(_write(tmp_path, "many", threads=16))
    with pytest.raises(ConfigError, match="no gpu"):
        load_profile(_write(tmp_path, "gpuless", runtimes=[{"runtime": "onnxruntime", "unit": "gpu"}]))
    with pytest.raises(ConfigError, match="must match its file name"):
        load_profile(_write(tmp_path, "other", name="rpi4"))
    with pytest.raises(ConfigError, match="memory_gbs must be > 0"):
        load_profile(_write(tmp_path, "nobw", **{"cpu.memory_gbs": 0}))
    with pytest.raises(ConfigError, match="bad value 'tensorflow'"):
        load_profile(_write(tmp_path, "rt", runtimes=[{"runtime": "tensorflow"}]))


def test_a_runtime_can_override_the_units_efficiency(tmp_path):
    """On x86 without VNNI XNNPACK's int8 is no faster than its fp32 (issue #15): the profile says so per
    runtime, the roofline uses it, and bench can say it plainly."""
    runtimes = [{"runtime": "tflite", "int8_efficiency": 0.1}, {"runtime": "onnxruntime"}]
    profile = load_profile(_write(tmp_path, "slowint8", runtimes=runtimes))
    tflite, ort = (profile.unit_for(profile.runtime_for(r)) for r in ("tflite", "onnxruntime"))
    assert tflite.int8_efficiency == 0.1 and tflite.fp32_efficiency == profile.cpu.fp32_efficiency
    assert ort == profile.cpu
    # rpi4: int8 peak 2× fp32; 0.1 × 96 < 1.1 × 0.31 × 48, while the fitted 0.52 is 3.4× faster
    assert "not faster than its float ones" in profile.int8_not_faster("tflite")
    assert profile.int8_not_faster("onnxruntime") is None and profile.int8_not_faster("openvino") is None
    with pytest.raises(ConfigError, match=r"int8_efficiency must be in \(0, 1\]"):
        load_profile(_write(tmp_path, "bad", runtimes=[{"runtime": "tflite", "int8_efficiency": 1.5}]))


def test_x86_profile_knows_xnnpack_int8_is_not_faster_without_vnni():
    assert load_profile("x86").int8_not_faster("tflite") is not None
    assert load_profile("x86").int8_not_faster("onnxruntime") is None
    assert all(
        load_profile("x86-vnni").int8_not_faster(r) is None for r in ("tflite", "onnxruntime", "openvino")
    )
