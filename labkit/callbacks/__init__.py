"""Keras callbacks of labkit's fit (`labkit.training.fit`) and the labs: one module each.

* `recorder`: `RunRecorder`, the resume checkpoint, ``history.csv`` and the best ``model.keras`` after every epoch;
* `dead_run`: `DeadRunWatch`, stopping a network that has died;
* `precise_bn`: `PreciseBatchNorm`, BatchNorm statistics that match the weights being validated (``--precise-bn``);
* `tensorboard_images`: `SegmentationImages`, validation images with their masks in TensorBoard (``--tensorboard``).
"""

from labkit.callbacks.dead_run import DeadRunWatch
from labkit.callbacks.precise_bn import PRECISE_BN_BATCHES, PreciseBatchNorm
from labkit.callbacks.recorder import RunRecorder
from labkit.callbacks.tensorboard_images import IMAGES_RUN, SegmentationImages

__all__ = ["IMAGES_RUN", "PRECISE_BN_BATCHES", "DeadRunWatch", "PreciseBatchNorm", "RunRecorder", "SegmentationImages"]
