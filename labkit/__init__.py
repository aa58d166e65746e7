"""labkit: Keras 3 / TensorFlow pieces for the medical-image deep-learning course labs.

The names below are the course-compatible API that lab scripts, notebooks and grading scripts import: course code
written against the handout modules of Labs 1–6 (``Utils.py``, ``Models.py``, ``DataLoader.py``) runs with only its
import lines changed::

    from labkit import get_unet, dice_coef, dice_coef_loss, load_data, train_unet, loss_dice_plot
"""

from labkit.startup import import_tensorflow_quietly

import_tensorflow_quietly()  # before anything imports TensorFlow: its start-up INFO lines would bury error messages

from labkit.version import __version__  # noqa: E402,F401

from labkit.course_training import train_unet  # noqa: E402
from labkit.data import (  # noqa: E402
    binarize_mask,
    create_generator,
    gen_labels,
    gen_labels_multiclass,
    get_data,
    get_data_arrays,
    get_data_multiclass,
    get_length,
    get_train_test_arrays,
    get_train_test_arrays_multiclass,
    image_mask_generator,
    load_data,
    load_image,
    load_mask,
    load_partial_data,
)
from labkit.data.layouts.tractography import load_streamlines  # noqa: E402
from labkit.data.sequences import MyBatchGenerator  # noqa: E402
from labkit.errors import LabkitInputError  # noqa: E402
from labkit.evaluation import asd, assd, evaluate_volumes, hd, hd95  # noqa: E402
from labkit.features import pretrain_data_label  # noqa: E402
from labkit.gradcam import grad_cam  # noqa: E402
from labkit.losses import BCEDiceLoss, CEFocalLoss, DiceLoss, dice_coef_loss  # noqa: E402
from labkit.metrics import dice_coef, iou_coef, thresholded_dice  # noqa: E402
from labkit.models import (  # noqa: E402
    MLP_model,
    alexnet_model,
    conv_block,
    get_unet,
    get_unet3d,
    lab1_mlp_model,
    lenet_model,
    model,
    vgg16_model,
)
from labkit.plots import loss_accuracy_plot, loss_dice_plot, loss_dice_precision_recall_plot  # noqa: E402
from labkit.trained import TrainedRun, load_run  # noqa: E402

__all__ = [
    # losses, metrics and evaluation
    "BCEDiceLoss", "CEFocalLoss", "DiceLoss", "asd", "assd", "dice_coef", "dice_coef_loss", "evaluate_volumes", "hd",
    "hd95", "iou_coef", "thresholded_dice",
    # models (course names: Lab 1 `model`, Lab 2–3 `lenet_model`/`alexnet_model`, Lab 3–4 `vgg16_model`, …)
    "MLP_model", "alexnet_model", "conv_block", "get_unet", "get_unet3d", "lab1_mlp_model", "lenet_model", "model",
    "vgg16_model",
    # data (course names of Labs 1–5)
    "binarize_mask", "create_generator", "gen_labels", "gen_labels_multiclass", "get_data", "get_data_arrays",
    "get_data_multiclass", "get_length", "get_train_test_arrays", "get_train_test_arrays_multiclass",
    "image_mask_generator", "load_data", "load_image", "load_mask", "load_partial_data", "pretrain_data_label",
    # Lab 6 (the handout's streamline loader and batch generator)
    "MyBatchGenerator", "load_streamlines",
    # training, plots, explanations, errors
    "LabkitInputError", "grad_cam", "loss_accuracy_plot", "loss_dice_plot", "loss_dice_precision_recall_plot",
    "train_unet",
    # using a finished run (predict, evaluate, grade)
    "TrainedRun", "load_run",
]
