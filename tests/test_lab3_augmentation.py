"""Lab 3 Task 7: the scikit-image transforms against hand-made arrays, and the preview script end to end."""

import json
import re

import cv2
import numpy as np
import pytest

from labkit.data.augment import PREVIEW_AUGMENT
from labkit.data.image_transforms import (SKIMAGE_TRANSFORMS, apply_transforms, embedded_preview_image,
                                          flipped_horizontally, flipped_vertically, intensity_rescaled, rescaled,
                                          rotated)
from labkit.errors import LabkitInputError

#: An asymmetric array: no flip or quarter turn maps it onto itself.
ASYMMETRIC = np.array([[0.0, 0.1, 0.2, 0.3],
                       [0.4, 0.5, 0.6, 0.7],
                       [0.8, 0.9, 1.0, 0.0],
                       [0.2, 0.0, 0.0, 0.6]])


def test_flips_mirror_rows_and_columns():
    np.testing.assert_array_equal(flipped_horizontally(ASYMMETRIC)[0], [0.3, 0.2, 0.1, 0.0])
    np.testing.assert_array_equal(flipped_vertically(ASYMMETRIC)[0], [0.2, 0.0, 0.0, 0.6])
    rgb = np.stack([ASYMMETRIC, 1 - ASYMMETRIC, ASYMMETRIC / 2], axis=-1)
    np.testing.assert_array_equal(flipped_horizontally(rgb)[:, 0], rgb[:, 3])  # whole pixels move, channels stay


def test_rotation_by_90_degrees_turns_counter_clockwise():
    # Counter-clockwise: the top row becomes the left column, read bottom to top.
    expected = np.array([[0.3, 0.7, 0.0, 0.6],
                         [0.2, 0.6, 1.0, 0.0],
                         [0.1, 0.5, 0.9, 0.0],
                         [0.0, 0.4, 0.8, 0.2]])
    np.testing.assert_allclose(rotated(ASYMMETRIC, 90), expected, atol=1e-9)
    np.testing.assert_allclose(rotated(ASYMMETRIC, 0), ASYMMETRIC, atol=1e-9)


def test_rescale_shrinks_the_array_and_keeps_flat_grey():
    assert rescaled(np.full((10, 20), 0.5)).shape == (2, 4)  # course scale 0.2
    np.testing.assert_allclose(rescaled(np.full((10, 20), 0.5)), 0.5, atol=1e-9)
    assert rescaled(np.zeros((10, 10, 3)), 0.5).shape == (5, 5, 3)  # RGB: channels are not rescaled


def test_intensity_rescaling_stretches_between_the_5th_and_95th_percentile():
    ramp = np.linspace(0.0, 1.0, 101)  # percentiles 5 and 95 are exactly 0.05 and 0.95
    out = intensity_rescaled(ramp)
    np.testing.assert_allclose(out[5:96], (ramp[5:96] - 0.05) / 0.9, atol=1e-9)
    assert np.all(out[:6] == 0.0) and np.all(out[95:] == 1.0)
    with pytest.raises(LabkitInputError, match="more than one grey level"):
        intensity_rescaled(np.full((4, 4), 0.3))


def test_every_course_transform_is_applied_and_stays_in_range():
    image = embedded_preview_image("xray", 32)
    out = apply_transforms(image)
    assert list(out) == list(SKIMAGE_TRANSFORMS)
    assert all(0.0 <= v.min() and v.max() <= 1.0 for v in out.values())
    assert embedded_preview_image("skin", 32).shape == (32, 32, 3) and embedded_preview_image("bone", 32).shape == (32, 32)


@pytest.fixture(scope="module")
def preview_run(tmp_path_factory):
    """One tiny run of the script on the embedded X-ray image."""
    from conftest import load_lab

    out = tmp_path_factory.mktemp("lab3_augmentation") / "run"
    load_lab("lab3_augmentation").main(["--out", str(out), "--img-size", "32", "--count", "3"])
    return out


def test_preview_writes_the_figure_and_records_the_course_settings(preview_run):
    figure = cv2.imread(str(preview_run / "augmentation_preview.png"))
    assert figure is not None and figure.shape[0] > 300 and figure.shape[1] > 600
    config = json.loads((preview_run / "config.json").read_text())
    assert config["source"] == "embedded xray image" and config["count"] == 3
    assert config["augment"] == {**PREVIEW_AUGMENT, "height_shift_range": 0.0}  # rotation 20, width shift 0.2, flip


def test_a_real_image_file_is_previewed(lab_runner, tmp_path):
    image = tmp_path / "C4_0001.png"
    cv2.imwrite(str(image), (ASYMMETRIC.repeat(8, 0).repeat(8, 1) * 255).astype(np.uint8))
    code, stdout, stderr = lab_runner("lab3_augmentation", ["--image", image, "--out", tmp_path / "run",
                                                            "--img-size", "32", "--count", "1", "--no-flip"])
    assert code == 0, stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["source"] == str(image)
    assert (tmp_path / "run" / "augmentation_preview.png").is_file()


@pytest.mark.parametrize("flags, message", [
    (["--image", "missing.png"], r"^error: image not found: .*missing\.png$"),
    (["--data-dir", "no_such_folder"], r"^error: folder not found: .*no_such_folder$"),
    (["--data-dir", "."], r"^error: no image files in "),
    (["--shift", "1.5"], r"^error: argument --shift: 1.5 is not in \[0, 1\)"),
])
def test_bad_input_is_one_error_line_and_exit_2(lab_runner, tmp_path, monkeypatch, flags, message):
    monkeypatch.chdir(tmp_path)
    code, _, stderr = lab_runner("lab3_augmentation", [*flags, "--out", tmp_path / "run"])
    lines = [line for line in stderr.strip().splitlines() if line]
    assert code == 2 and len(lines) == 1, stderr
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "run").exists()
