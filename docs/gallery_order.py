"""The order of the gallery's examples: from the tutorial's examples to the specialised ones."""

import os

EXAMPLE_ORDER = [
    "plot_tutorial.py",
    "plot_noisy_multichannel.py",
    "plot_underdetermined.py",
    "plot_long_impulse_response.py",
    "plot_room_impulse_response.py",
    "plot_regularized_short_record.py",
    "plot_tracking.py",
    "plot_estimator_grid_search.py",
    "plot_streaming.py",
    "plot_export.py",
    "plot_keras_conv2d.py",
    "plot_image_blur.py",
    "plot_complex_channel.py",
    "plot_custom_solver.py",
]


class ExampleOrder:
    """Sort key for sphinx-gallery's ``within_subsection_order``: the list above, then the rest by name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = os.path.basename(filename)
        return (EXAMPLE_ORDER.index(name) if name in EXAMPLE_ORDER else len(EXAMPLE_ORDER), name)
