"""Training and test stacks: scenes (image + depth) and the two renderers."""

from stackmff.data.faithful import render_faithful
from stackmff.data.physical import PhysicalOptions, render_physical
from stackmff.data.scenes import Scene, dead_leaves, procedural_depth
from stackmff.data.sources import SceneSampler, SourceWeights

__all__ = ["PhysicalOptions", "Scene", "SceneSampler", "SourceWeights", "dead_leaves",
           "procedural_depth", "render_faithful", "render_physical"]
