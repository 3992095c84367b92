"""The model: one configuration, the canonical problem, the design operator, the forward model and the result types.

The lowest layer: it imports nothing else of the package (the result types reach the plotting and export shell
lazily, for their convenience methods).
"""
