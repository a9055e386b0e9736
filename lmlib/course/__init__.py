"""The course layer: what the chapters run on top of lmlib (the recipes behind its checkpoints, the
chapters' longer experiments, and their plots and widgets). Nothing in lmlib outside this folder imports it."""
