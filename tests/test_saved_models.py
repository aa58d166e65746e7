"""A run's model.keras loads with Keras alone: no compile state (labkit losses and metrics) and no optimizer state
in the file, so a grading machine that never imports labkit reloads it and predicts the same."""

import json
import subprocess
import sys
import zipfile

import h5py
import keras
import numpy as np

from labkit import dice_coef, get_unet, vgg16_model
from labkit.data import array_dataset
from labkit.models.transfer import GrayscaleToRGB
from labkit.run_folder import RunFolder
from labkit.training import compile_model, fit

KERAS_ONLY = """
import json, sys
import numpy as np
import keras
folder = sys.argv[1]
x = np.load(f"{folder}/x.npy")
out = {}
for name in ("unet", "classifier"):
    model = keras.saving.load_model(f"{folder}/{name}/model.keras")  # plain Keras: no custom_objects
    np.save(f"{folder}/{name}_again.npy", model.predict(x, verbose=0))
out["labkit_imported"] = "labkit" in sys.modules
import labkit  # a network with labkit layers needs this import, nothing more
model = keras.saving.load_model(f"{folder}/adapter/model.keras")
np.save(f"{folder}/adapter_again.npy", model.predict(x, verbose=0))
print(json.dumps(out))
"""


def trained(model, folder, x, y, loss, metrics):
    compile_model(model, 1e-2, loss, metrics=metrics)
    run = RunFolder.create(folder)
    fit(model, array_dataset(x, y, 4), array_dataset(x, y, 4), 1, run=run, monitor="val_loss", verbose=0)
    return model.predict(x, verbose=0)


def test_a_run_model_loads_and_predicts_with_keras_alone(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((8, 32, 32, 1)).astype(np.float32)
    masks, labels = (x > 0.5).astype(np.float32), np.eye(2, dtype=np.float32)[np.arange(8) % 2]
    np.save(tmp_path / "x.npy", x)
    keras.utils.set_random_seed(0)
    expected = {
        "unet": trained(get_unet((32, 32, 1), base=2), tmp_path / "unet", x, masks, "dice", [dice_coef]),
        "classifier": trained(vgg16_model(32, 32, 1, n_base=2), tmp_path / "classifier", x, labels, "ce+focal",
                              ["accuracy"]),
        "adapter": trained(keras.Sequential([keras.Input((32, 32, 1)), GrayscaleToRGB(),
                                             keras.layers.Conv2D(1, 1, activation="sigmoid")]),
                           tmp_path / "adapter", x, masks, "bce+dice", [dice_coef]),
    }
    for name in expected:
        with zipfile.ZipFile(tmp_path / name / "model.keras") as archive:
            assert not json.loads(archive.read("config.json")).get("compile_config")
            archive.extract("model.weights.h5", tmp_path / name)
        with h5py.File(tmp_path / name / "model.weights.h5") as weights:
            assert "optimizer" not in weights  # Adam's moments stay out: a third of the size

    result = subprocess.run([sys.executable, "-c", KERAS_ONLY, str(tmp_path)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"labkit_imported": False}
    for name, predictions in expected.items():
        np.testing.assert_allclose(np.load(tmp_path / f"{name}_again.npy"), predictions, rtol=1e-5, atol=1e-6)
