"""The two models of the source article, as torchvision builds them (random init, no download):
ResNet50 and VGG16 with 120 classes (Stanford Dogs). Convert with
``aimgen convert examples/torchvision_models.py:resnet50 --input-shape 1,3,224,224 -o OUT.py``."""
import torchvision


def resnet50():
    return torchvision.models.resnet50(weights=None, num_classes=120)


def vgg16():
    return torchvision.models.vgg16(weights=None, num_classes=120)


def mobilenet_v2():
    return torchvision.models.mobilenet_v2(weights=None, num_classes=120)
