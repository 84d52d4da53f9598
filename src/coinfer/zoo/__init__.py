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
    shipped_exit_accuracy,
    ships_weights,
)
from coinfer.zoo.spec import InputSpec, ModelSpec, ModelSpecError, model_spec
from coinfer.zoo.weights import WeightsError, load_weights

__all__ = [
    "BranchyAlexNet",
    "InputSpec",
    "ModelEntry",
    "ModelNotFoundError",
    "ModelSpec",
    "ModelSpecError",
    "WeightsError",
    "create",
    "create_deployed",
    "entry",
    "example_inputs",
    "load_weights",
    "model_spec",
    "names",
    "register",
    "resolve",
    "shipped_exit_accuracy",
    "ships_weights",
]

_MODEL_MODULES = (alexnet, branchy, googlenet, mlp, mobilenet, resnet, vgg, yolo)
