"""labkit: Keras 3 / TensorFlow pieces for the medical-image deep-learning course labs.

The names below are the course-compatible API that lab scripts, notebooks and grading scripts import::

    from labkit import get_unet, dice_coef, dice_coef_loss, load_data, train_unet, loss_dice_plot
"""

from labkit.startup import import_tensorflow_quietly

import_tensorflow_quietly()  # before anything imports TensorFlow: its start-up INFO lines would bury error messages

__version__ = "0.1.0"

from labkit.data import (  # noqa: E402
    create_generator,
    get_length,
    image_mask_generator,
    load_data,
    load_image,
    load_mask,
)
from labkit.errors import LabkitInputError  # noqa: E402
from labkit.evaluation import asd, assd, evaluate_volumes, hd, hd95  # noqa: E402
from labkit.features import pretrain_data_label  # noqa: E402
from labkit.gradcam import grad_cam  # noqa: E402
from labkit.losses import BCEDiceLoss, CEFocalLoss, DiceLoss, dice_coef_loss  # noqa: E402
from labkit.metrics import dice_coef, iou_coef, thresholded_dice  # noqa: E402
from labkit.models import MLP_model, conv_block, get_unet, get_unet3d, vgg16_model  # noqa: E402
from labkit.plots import loss_accuracy_plot, loss_dice_plot  # noqa: E402
from labkit.training import train_unet  # noqa: E402

__all__ = [
    "BCEDiceLoss", "CEFocalLoss", "DiceLoss", "LabkitInputError", "MLP_model", "grad_cam", "pretrain_data_label", "vgg16_model", "asd", "assd", "evaluate_volumes", "hd", "hd95", "conv_block", "create_generator", "dice_coef", "dice_coef_loss",
    "get_length", "get_unet", "get_unet3d", "image_mask_generator", "iou_coef", "load_data", "load_image",
    "load_mask", "loss_accuracy_plot", "loss_dice_plot", "thresholded_dice", "train_unet",
]
