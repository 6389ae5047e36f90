"""scenellm: an experiment platform for dynamic scene graph generation with SceneLLM."""

__version__ = "0.1.0"
