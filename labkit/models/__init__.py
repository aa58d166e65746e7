"""Model builders: U-Nets (`unet`), the course's classic classifiers (`classic`: VGG16, MLP heads, the Lab 1 MLP),
LeNet and AlexNet (`lenet_alexnet`), ImageNet encoders (`transfer`) and Lab 6's recurrent networks (`lstm`)."""

from labkit.models.classic import MLP_model, lab1_mlp_model, model, vgg16_model
from labkit.models.lenet_alexnet import alexnet_model, lenet_model
from labkit.models.lstm import lstm_regressor, streamline_classifier
from labkit.models.unet import conv_block, conv_block_nd, get_unet, get_unet3d

__all__ = ["MLP_model", "alexnet_model", "conv_block", "conv_block_nd", "get_unet", "get_unet3d", "lab1_mlp_model",
           "lenet_model", "lstm_regressor", "model", "streamline_classifier", "vgg16_model"]
