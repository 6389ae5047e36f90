"""The pyfunc model's code, logged as MLflow "models from code": loading a registered
model runs this file instead of unpickling a Python object."""

from mlflow.models import set_model

from scenellm.tracking.registry import SceneLLMModel

set_model(SceneLLMModel())
