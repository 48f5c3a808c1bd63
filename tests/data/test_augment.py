"""Pose views: the cylinder turn's geometry, determinism, and what the teacher cache relies on."""

from __future__ import annotations

import numpy as np
import pytest

from edgekd.data.augment import PoseView, turn_face, turn_source_columns, view_yaw
from edgekd.data.synthetic import SyntheticFaces


def _columns(width: int = 112) -> np.ndarray:
    """An image whose every pixel holds its column index: the warp can be read off its values."""
    return np.broadcast_to(np.arange(width, dtype=np.uint8)[None, :, None], (8, width, 3)).copy()


def test_zero_yaw_is_the_identity():
    image = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    np.testing.assert_array_equal(turn_face(image, 0.0), image)
    np.testing.assert_allclose(turn_source_columns(112, 0.0), np.arange(112), atol=1e-9)


@pytest.mark.parametrize("yaw", [20.0, 45.0, 70.0])
def test_the_far_side_is_hidden_as_a_turned_cylinder_hides_it(yaw):
    """Turned by theta, the last visible source point is at sin(90° - theta) = cos(theta) of the half
    width: the strip beyond it is behind the head; the other edge replicates the first column."""
    src = turn_source_columns(112, yaw)
    expected_last = (np.cos(np.deg2rad(yaw)) + 1) / 2 * 112 - 0.5
    x_out = 1 - 1 / 112  # normalised centre of the last output column
    exact = (np.sin(np.arcsin(x_out) - np.deg2rad(yaw)) + 1) / 2 * 112 - 0.5
    assert src[-1] == pytest.approx(exact, abs=1e-9)
    assert src.max() <= expected_last  # nothing beyond the occluding contour is shown
    assert src[0] == 0.0  # the unseen strip takes the edge column
    assert np.all(np.diff(src) >= 0)  # a turn never folds the image over itself
    # the near (left) side is stretched, the far (right) side squeezed
    assert np.diff(src)[:56].mean() < np.diff(src)[56:].mean()


def test_mirrored_turns_are_mirror_images():
    """turn(mirror(x), -yaw) == mirror(turn(x, yaw)): the model has no handedness."""
    image = np.random.default_rng(1).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    a = turn_face(image[:, ::-1], -30.0)
    b = turn_face(image, 30.0)[:, ::-1]
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # rounding of .5 ties only


def test_turned_columns_read_back_as_the_formula_says():
    out = turn_face(_columns(), 45.0)
    src = turn_source_columns(112, 45.0)
    np.testing.assert_allclose(out[0, :, 0], src, atol=0.51)  # values are the source columns, rounded


def test_views_are_deterministic_bounded_and_take_both_directions():
    yaws = [view_yaw(i, v, 40.0) for i in range(200) for v in range(3)]
    assert yaws == [view_yaw(i, v, 40.0) for i in range(200) for v in range(3)]
    assert all(20.0 <= abs(y) <= 40.0 for y in yaws)
    assert 0.35 < np.mean(np.array(yaws) > 0) < 0.65
    assert view_yaw(0, 0, 40.0) != view_yaw(0, 1, 40.0)


def test_a_pose_view_dataset_is_keyed_by_view_and_max_yaw():
    base = SyntheticFaces(2, 2, seed=0)
    a, b, c = PoseView(base, 0, 45.0), PoseView(base, 1, 45.0), PoseView(base, 0, 30.0)
    assert len({a.fingerprint(), b.fingerprint(), c.fingerprint()}) == 3
    assert a.fingerprint() == PoseView(SyntheticFaces(2, 2, seed=0), 0, 45.0).fingerprint()
    sample = a[3]
    np.testing.assert_array_equal(sample.image, turn_face(base[3].image, view_yaw(3, 0, 45.0)))
    assert sample.label == base[3].label and sample.source.endswith("#view0")
    with pytest.raises(ValueError, match="view must be >= 0"):
        PoseView(base, -1, 45.0)
