"""Data that do not arrive as one array: the streaming accumulator (``NormalEquations``) and out-of-core readers."""
