"""Model builders: U-Nets (`unet`), the course's classic classifiers (`classic`) and ImageNet encoders (`transfer`)."""

from labkit.models.classic import MLP_model, vgg16_model
from labkit.models.unet import conv_block, conv_block_nd, get_unet, get_unet3d

__all__ = ["MLP_model", "conv_block", "conv_block_nd", "get_unet", "get_unet3d", "vgg16_model"]
