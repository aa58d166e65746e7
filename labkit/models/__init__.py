"""Model builders: U-Nets (`unet`), the course's classic classifiers (`classic`) and ImageNet encoders (`transfer`)."""

from labkit.models.unet import conv_block, conv_block_nd, get_unet, get_unet3d

__all__ = ["conv_block", "conv_block_nd", "get_unet", "get_unet3d"]
