"""Colour management of the model's input: document profile → model space → document profile.

`plan` decides the conversions of one render (engine.colour.manage), `profiles` builds the
standard working spaces by name, `lcms` is LittleCMS in float precision.
"""
from engine.colour.manage import ColourError, ColourPlan, blend_unclipped, model_space, plan
from engine.colour.profiles import SRGB, canonical, standard_profile_bytes

__all__ = ["ColourError", "ColourPlan", "SRGB", "blend_unclipped", "canonical", "model_space",
           "plan", "standard_profile_bytes"]
