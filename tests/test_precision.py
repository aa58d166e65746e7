"""Mixed precision: which policy --precision picks, float32 outputs/losses/metrics, Dice sums that cannot overflow."""

import json
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from labkit import dice_coef, dice_coef_loss, get_unet
from labkit.metrics import iou_coef, thresholded_dice
from labkit.runtime import cpu_has_bf16, resolve_precision, set_precision
from labkit.training import compile_model


def fake_machine(monkeypatch, gpu_capability=None, bf16_cpu=False):
    """Pretend to run on a machine with one GPU of `gpu_capability` (None: no GPU) and a CPU with/without bf16."""
    gpus = [SimpleNamespace(name="/physical_device:GPU:0")] if gpu_capability else []
    real_list = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: gpus if kind == "GPU" else real_list(kind))
    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda device: {"compute_capability": gpu_capability})
    monkeypatch.setattr("labkit.runtime.cpu_has_bf16", lambda: bf16_cpu)


@pytest.mark.parametrize(
    "gpu, bf16_cpu, expected",
    [(None, False, "float32"), (None, True, "mixed_bfloat16"), ((7, 5), False, "mixed_float16"),
     ((6, 0), True, "mixed_float16"), ((8, 0), False, "mixed_bfloat16"), ((9, 0), False, "mixed_bfloat16")],
)
def test_auto_policy_follows_the_hardware(monkeypatch, gpu, bf16_cpu, expected):
    fake_machine(monkeypatch, gpu, bf16_cpu)
    assert resolve_precision("auto") == expected


@pytest.mark.parametrize("gpu, bf16_cpu, expected", [(None, True, "float32"), ((8, 0), False, "float32"),
                                                     ((7, 5), False, "mixed_float16"), (None, False, "float32")])
def test_auto_does_not_pick_a_policy_the_lab_avoids(monkeypatch, gpu, bf16_cpu, expected):
    fake_machine(monkeypatch, gpu, bf16_cpu)
    assert resolve_precision("auto", avoid={"mixed_bfloat16": "measured worse"}) == expected
    assert resolve_precision("mixed_bfloat16", avoid={"mixed_bfloat16": "measured worse"}) == "mixed_bfloat16"


@pytest.mark.parametrize("name", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_explicit_policies_are_kept_and_set(monkeypatch, name):
    fake_machine(monkeypatch, (8, 0), True)  # auto would say mixed_bfloat16: an explicit name must win
    assert set_precision(name) == name
    assert keras.mixed_precision.global_policy().name == name


@pytest.mark.parametrize(
    "cpuinfo, expected",
    [("flags\t\t: fpu avx2 avx512f avx512_vnni\n", False), ("flags\t\t: avx512f avx512_bf16\n", True),
     ("flags\t\t: amx_bf16 amx_tile\n", True)],
)
def test_cpu_bf16_detection_reads_the_flags(monkeypatch, tmp_path, cpuinfo, expected):
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    monkeypatch.setattr("labkit.runtime.Path", lambda _: tmp_path / "cpuinfo")
    assert cpu_has_bf16() is expected


def machine_supports():
    """What this machine offers, found here without labkit: the CPU flags of /proc/cpuinfo (none elsewhere) and the
    first GPU's compute capability (None without a GPU); and the policy `auto` should pick from them."""
    cpuinfo = Path("/proc/cpuinfo")
    flags = set()
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.split(":")[0].strip() == "flags":
                flags.update(line.split(":", 1)[1].split())
    bf16_cpu = bool(flags & {"amx_bf16", "avx512_bf16"})
    gpus = tf.config.list_physical_devices("GPU")
    capability = tuple(tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))) \
        if gpus else None
    if capability is not None:
        expected = "mixed_bfloat16" if capability >= (8, 0) else "mixed_float16"
    else:
        expected = "mixed_bfloat16" if bf16_cpu else "float32"
    return bf16_cpu, capability, expected


def test_auto_on_this_machine_picks_what_the_machine_really_supports():
    bf16_cpu, _, expected = machine_supports()
    assert cpu_has_bf16() is bf16_cpu
    assert resolve_precision("auto") == expected
    assert set_precision("auto") == expected and keras.mixed_precision.global_policy().name == expected


@pytest.mark.slow
def test_a_lab_run_with_auto_records_this_machines_policy(lab_runner, tmp_path):
    from labkit.data.synthetic import xray_dataset

    *_, expected = machine_supports()
    data = xray_dataset(n_images=8, size=32, root=tmp_path / "data")
    code, stdout, stderr = lab_runner("lab4_unet", ["--data-dir", data, "--out", tmp_path / "run", "--precision",
                                                    "auto", "--img-size", "16", "--epochs", "1", "--base", "2",
                                                    "--quiet"])
    assert code == 0, stderr
    assert f"precision policy: {expected}\n" in stdout
    assert json.loads((tmp_path / "run" / "config.json").read_text())["settings"]["precision"] == expected
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    hidden = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D) and layer.name != "mask"]
    assert {layer.dtype_policy.name for layer in hidden} == {expected}  # every hidden convolution in the policy
    assert model.get_layer("mask").dtype_policy.name == "float32"  # the probabilities stay float32 under any policy


def test_unknown_policy_is_named():
    with pytest.raises(ValueError, match="'fp8'.*auto, float32, mixed_bfloat16, mixed_float16"):
        resolve_precision("fp8")


@pytest.mark.parametrize("policy, compute", [("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")])
def test_mixed_unet_computes_low_but_outputs_loss_and_metrics_in_float32(policy, compute):
    keras.mixed_precision.set_global_policy(policy)
    model = compile_model(get_unet((32, 32, 1), base=2), 1e-3, "dice", metrics=[dice_coef])
    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert conv.compute_dtype == compute and conv.kernel.dtype == "float32"  # low-precision maths, float32 weights
    rng = np.random.default_rng(0)
    images = rng.random((4, 32, 32, 1), np.float32)
    masks = (images > 0.5).astype(np.float32)
    prediction = model(images)
    assert prediction.dtype == "float32"
    for value in (dice_coef(masks, prediction), dice_coef_loss(masks, prediction),
                  keras.losses.BinaryCrossentropy()(masks, prediction), thresholded_dice(masks, prediction)):
        assert value.dtype == "float32" and np.isfinite(float(value))
    logs = model.train_on_batch(images, masks, return_dict=True)
    assert np.isfinite(logs["loss"]) and 0 <= logs["dice_coef"] <= 1


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_dice_over_a_big_low_precision_batch_is_exact(dtype):
    # 8 × 256 × 256 = 524,288 pixels: a float16 sum overflows at 65,504; bfloat16 keeps only 8 significant bits.
    shape = (8, 256, 256, 1)
    ones = keras.ops.ones(shape, dtype=dtype)
    assert not np.isfinite(float(keras.ops.sum(keras.ops.ones((2**17,), "float16"))))  # the overflow is real
    assert float(dice_coef(ones, ones)) == pytest.approx(1.0, abs=1e-6)
    rng = np.random.default_rng(1)
    truth = (rng.random(shape) > 0.6).astype(np.float32)
    probabilities = keras.ops.convert_to_tensor(rng.random(shape).astype(np.float32), dtype=dtype)
    p = np.asarray(keras.ops.cast(probabilities, "float32"), np.float64)  # the values the metric really sees
    soft = 2 * (truth * p).sum() / (truth.sum() + p.sum())
    assert float(dice_coef(truth.astype(dtype), probabilities)) == pytest.approx(soft, rel=1e-5)
    assert float(dice_coef_loss(truth.astype(dtype), probabilities)) == pytest.approx(1 - soft, rel=1e-4)
    hard = p > 0.5
    expected = 2 * (truth * hard).sum() / (truth.sum() + hard.sum())
    assert float(thresholded_dice(truth, probabilities)) == pytest.approx(expected, rel=1e-5)
    assert float(iou_coef(truth, probabilities)) == pytest.approx(expected / (2 - expected), rel=1e-5)


@pytest.mark.slow
def test_lab_records_the_resolved_policy_and_trains_in_it(lab_runner, monkeypatch, tmp_path):
    from labkit.data.synthetic import xray_dataset

    monkeypatch.setattr("labkit.runtime.cpu_has_bf16", lambda: True)  # a CPU with native bf16: auto → bf16
    data = xray_dataset(n_images=8, size=32, root=tmp_path / "data")
    out = tmp_path / "run"
    code, stdout, stderr = lab_runner("lab4_unet", ["--data-dir", data, "--out", out, "--precision", "auto",
                                                    "--img-size", "32", "--epochs", "1", "--base", "2",
                                                    "--batch-size", "3", "--quiet"])
    assert code == 0, stderr
    assert "precision policy: mixed_bfloat16" in stdout
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["precision"] == "mixed_bfloat16"
    assert settings["scale_lr"] is False and settings["learning_rate"] == settings["lr"]  # no --scale-lr: lr as given
    assert settings["replicas"] == 1 and settings["global_batch_size"] == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["final"]["loss"]) and 0 <= metrics["final"]["val_dice_coef"] <= 1
    model = keras.saving.load_model(out / "model.keras")
    assert model.layers[1].dtype_policy.name == "mixed_bfloat16" and model.output.dtype == "float32"


def _exact_inputs(kind, background_only=False):
    """Hand-made targets and predictions whose values bfloat16 and float16 hold exactly (multiples of 1/8, logits
    in steps of 1/2), over 8 × 32 × 32 = 8,192 pixels: a sum taken in bfloat16 (8 significant bits) could not be
    exact, so any low-precision reduction shows. `background_only`: no foreground pixel, or for one-hot classes a
    batch of one class only (the six others absent, as an all-background batch has no lung)."""
    rng = np.random.default_rng(3)
    if kind == "onehot":
        truth = np.eye(7, dtype=np.float32)[np.zeros(64, int) if background_only else rng.integers(0, 7, 64)]
        rows = np.array([0.5, 0.25, 0.125, 0.125, 0, 0, 0], np.float32)
        return truth, np.stack([rng.permutation(rows) for _ in range(64)])
    truth = np.zeros((8, 32, 32, 1), np.float32) if background_only else (rng.random((8, 32, 32, 1)) > 0.6)
    if kind == "logits":
        return truth.astype(np.float32), rng.integers(-8, 9, truth.shape).astype(np.float32) / 2
    return truth.astype(np.float32), rng.integers(0, 9, truth.shape).astype(np.float32) / 8


def _shipped_losses_and_metrics():
    """Every loss and metric labkit ships, with the kind of prediction it takes."""
    from labkit import losses, metrics

    return [
        ("dice_coef", metrics.dice_coef, "probabilities"),
        ("dice_coef_loss", losses.dice_coef_loss, "probabilities"),
        ("thresholded_dice", metrics.thresholded_dice, "probabilities"),
        ("iou_coef", metrics.iou_coef, "probabilities"),
        ("dice_from_logits", metrics.dice_from_logits, "logits"),
        ("iou_from_logits", metrics.iou_from_logits, "logits"),
        ("DiceLoss", losses.DiceLoss(), "probabilities"),
        ("DiceLoss(logits)", losses.DiceLoss(from_logits=True), "logits"),
        ("BCEDiceLoss", losses.BCEDiceLoss(), "probabilities"),
        ("BCEDiceLoss(logits)", losses.BCEDiceLoss(from_logits=True), "logits"),
        ("bce", losses.segmentation_loss("bce"), "probabilities"),
        ("pixel accuracy (logits)", metrics.logit_segmentation_metrics()[0], "logits"),
        ("ce", losses.classification_loss("ce"), "onehot"),
        ("focal", losses.classification_loss("focal"), "onehot"),
        ("ce+focal", losses.classification_loss("ce+focal"), "onehot"),
        ("hinge", losses.classification_loss("hinge"), "onehot"),
        ("sign_accuracy", metrics.sign_accuracy, "logits"),
        ("MultiClassDiceLoss", losses.MultiClassDiceLoss(), "onehot"),
        ("multiclass_dice", metrics.multiclass_dice, "onehot"),
        ("class_dice", metrics.class_dice, "onehot"),
    ]


def _value(function, truth, prediction):
    if isinstance(function, keras.metrics.Metric):
        function.reset_state()
        function.update_state(truth, prediction)
        return float(function.result())
    return float(function(truth, prediction))


@pytest.mark.parametrize("background_only", [False, True], ids=["lungs", "all-background"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("name, function, kind", _shipped_losses_and_metrics(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_loss_and_metric_gives_the_float32_value_on_low_precision_inputs(name, function, kind, dtype,
                                                                                background_only):
    truth, prediction = _exact_inputs(kind, background_only)
    reference = _value(function, truth, prediction)
    low = _value(function, keras.ops.cast(truth, dtype), keras.ops.cast(prediction, dtype))
    assert np.isfinite(reference)
    assert low == pytest.approx(reference, rel=1e-6, abs=1e-7), name


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("kind", ["bce", "dice", "bce+dice"])
def test_pixel_weighted_losses_give_the_float32_value_on_low_precision_inputs(kind, dtype):
    from labkit.losses import PixelWeightedLoss

    truth, prediction = _exact_inputs("probabilities")
    weights = np.random.default_rng(5).choice([1.0, 1.5, 2.5], truth.shape[:-1]).astype(np.float32)  # exact in both
    loss = PixelWeightedLoss(kind)
    reference = float(loss(truth, prediction, sample_weight=weights))
    truth_low, prediction_low, weights_low = (keras.ops.cast(v, dtype) for v in (truth, prediction, weights))
    low = float(loss(truth_low, prediction_low, sample_weight=weights_low))
    assert np.isfinite(reference) and reference > 0
    assert low == pytest.approx(reference, rel=1e-6, abs=1e-7), kind


def test_dice_of_an_all_background_batch_is_one_whatever_the_precision():
    truth = np.zeros((4, 32, 32, 1), np.float32)
    for dtype in ("float32", "bfloat16", "float16"):
        empty = keras.ops.zeros(truth.shape, dtype)
        assert float(dice_coef(keras.ops.cast(truth, dtype), empty)) == pytest.approx(1.0)
        assert float(dice_coef_loss(keras.ops.cast(truth, dtype), empty)) == pytest.approx(0.0, abs=1e-7)


#: Largest difference of the Dice loss between float32 and a mixed policy over the 30 steps below. Measured: 0.0015
#: (mixed_bfloat16) and 0.0008 (mixed_float16, with Keras's automatic loss scaling) on an AMD EPYC with native bf16.
MIXED_LOSS_TOLERANCE = 0.01


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_like_float32_from_the_same_weights(policy):
    from labkit.data.synthetic.xray import chest_xray

    pairs = [chest_xray(np.random.default_rng([0, i]), 32) for i in range(16)]
    images = np.stack([p[0] for p in pairs])[..., None].astype(np.float32) / 255
    masks = (np.stack([p[1] for p in pairs])[..., None] > 127).astype(np.float32)
    batches = [(images[i % 2 * 8:][:8], masks[i % 2 * 8:][:8]) for i in range(30)]

    def losses_under(name, weights):
        keras.mixed_precision.set_global_policy(name)
        model = get_unet((32, 32, 1), base=4)
        model.set_weights(weights)
        compile_model(model, 1e-3, "dice")
        if name == "mixed_float16":
            assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)  # loss scaling where needed
        return np.array([model.train_on_batch(x, y) for x, y in batches])

    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(0)
    weights = get_unet((32, 32, 1), base=4).get_weights()
    reference, mixed = losses_under("float32", weights), losses_under(policy, weights)
    assert reference[-1] < reference[0] - 0.02  # it learns, so the comparison means something
    assert np.abs(mixed - reference).max() < MIXED_LOSS_TOLERANCE
