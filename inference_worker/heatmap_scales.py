"""How a stored heatmap PNG's grey levels read: named once, for the worker that writes the maps
(`heatmap.SCALE`, sent with each prediction) and the portal that stores the name
(`Prediction.HeatmapScale`). Plain Python: the portal imports it."""

# Issue 17: no contribution at level 128, pushes of the age up above it and down below it.
SIGNED = "signed"
# Workers before issue 17: 0..255 Grad-CAM heat with the negative part cut off.
POSITIVE = "positive"
