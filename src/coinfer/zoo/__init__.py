"""The models the papers use, written from their architecture papers (random init, nothing is
downloaded): ``names()``, ``create(name, **kw)``, ``example_inputs(name)``."""

from coinfer.zoo import alexnet, branchy, googlenet, mlp, mobilenet, resnet, vgg, yolo
from coinfer.zoo.branchy import BranchyAlexNet
from coinfer.zoo.registry import (
    ModelEntry,
    ModelNotFoundError,
    create,
    create_deployed,
    entry,
    example_inputs,
    names,
    register,
    resolve,
    ships_weights,
)

__all__ = [
    "BranchyAlexNet",
    "ModelEntry",
    "ModelNotFoundError",
    "create",
    "create_deployed",
    "entry",
    "example_inputs",
    "names",
    "register",
    "resolve",
    "ships_weights",
]

_MODEL_MODULES = (alexnet, branchy, googlenet, mlp, mobilenet, resnet, vgg, yolo)
