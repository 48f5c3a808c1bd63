"""Config validation: unknown keys, wrong types, allowed values, overrides and round trips."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import yaml

from edgekd.config import EvalConfig, apply_overrides, from_dict, load_config, to_dict
from edgekd.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    name: str = "x"
    ratio: float = 0.5


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    items: tuple[int, ...] = ()


def test_yaml_and_overrides(tmp_path):
    cfg_file = tmp_path / "eval.yaml"
    cfg_file.write_text("model: [a.onnx]\npairs: synthetic\nfolds: 6-10\n")
    cfg = load_config(EvalConfig, cfg_file, overrides=["flip=true", "batch_size=8"], threads=2)
    assert cfg == EvalConfig(
        model=("a.onnx",), pairs="synthetic", folds="6-10", flip=True, threads=2, batch_size=8
    )


def test_unknown_key_names_file_path_and_suggestion(tmp_path):
    cfg_file = tmp_path / "eval.yaml"
    cfg_file.write_text("modle: a.onnx\n")
    with pytest.raises(ConfigError) as exc:
        load_config(EvalConfig, cfg_file)
    msg = str(exc.value)
    assert '"modle"' in msg and str(cfg_file) in msg and "Did you mean 'model'?" in msg


def test_nested_unknown_key_has_dotted_path():
    with pytest.raises(ConfigError, match=r'"inner\.nmae".*Did you mean \'name\''):
        from_dict(Outer, {"inner": {"nmae": "y"}}, source="cfg.yaml")


def test_literal_lists_allowed_values():
    with pytest.raises(ConfigError, match=r"allowed: 'raw255', 'arcface', 'imagenet'.*'arcface'"):
        from_dict(EvalConfig, {"preprocess": "arcfce"})


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"batch_size": "big"}, r'expected int \(<config>, key "batch_size"\)'),
        ({"flip": "yes"}, "expected true/false"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"inner": {"ratio": True}}, "expected float"),
    ],
)
def test_type_errors(data, pattern):
    cls = Outer if "inner" in data else EvalConfig
    with pytest.raises(ConfigError, match=pattern):
        from_dict(cls, data)


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(EvalConfig, bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(EvalConfig, tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="use key=value"):
        apply_overrides({}, ["flip"])


def test_round_trip_through_yaml():
    cfg = Outer(inner=Inner("y", 0.25), items=(1, 2))
    again = from_dict(Outer, yaml.safe_load(yaml.safe_dump(to_dict(cfg))))
    assert again == cfg


def test_scalar_becomes_one_element_tuple():
    assert from_dict(EvalConfig, {"model": "a.onnx"}).model == ("a.onnx",)


def test_shipped_distill_configs_load():
    """The recipes in edgekd/configs/ are valid configs (names, options, types)."""
    from pathlib import Path

    from edgekd.train.config import DistillConfig

    root = Path(__file__).resolve().parents[1] / "edgekd" / "configs"
    faces = load_config(DistillConfig, root / "distill_faces.yaml")
    assert faces.optim.head_only_steps == 100 and len(faces.data) == 2 and faces.exclude_names
    qat = load_config(DistillConfig, root / "qat_self_kd.yaml", ["qat.target=onnx"])
    assert qat.qat.target == "onnx" and qat.student_init == qat.teacher


def test_exponent_without_a_dot_is_a_float():
    """``-o optim.lr=1e-5``: YAML 1.1 reads it as a string; a float field takes it as the number."""
    from edgekd.train.config import DistillConfig

    assert load_config(DistillConfig, None, ["optim.lr=1e-5"]).optim.lr == 1e-5
    with pytest.raises(ConfigError, match=r"optim\.lr"):
        load_config(DistillConfig, None, ["optim.lr=fast"])
