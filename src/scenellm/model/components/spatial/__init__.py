"""Spatial aggregators: ``(tokens (N, D), boxes (N, 4), frame_of_obj (N,), F, text=None)`` →
frame tokens (F, out_dim) and object states (N, out_dim). ``text`` is the LLM prompt's
embedding (T, text_dim), read by components whose ``reads_text`` is True."""

from scenellm.model.components.registry import Registry
from scenellm.model.components.spatial.rgt import RelationalGraphTransformer, RGTConfig
from scenellm.model.components.spatial.sge import SceneGraphExpression, SGEConfig
from scenellm.model.components.spatial.sia import SIA, SIAConfig

SPATIAL = Registry("spatial")
SPATIAL.register("sia", SIA, SIAConfig)
SPATIAL.register("rgt", RelationalGraphTransformer, RGTConfig)
SPATIAL.register("sge", SceneGraphExpression, SGEConfig)
