"""Pictures of HRNet: matplotlib figures and graphviz module graphs, drawn from :mod:`hrnet_teach.inspect`.

``from hrnet_teach import viz`` then e.g. ``viz.plot_fuse_matrix("w18", "stage4")``.
Each ``plot_*`` returns a matplotlib Figure (a cell ending in the call shows it
once; ``fig.savefig(path)`` saves it); ``theme="dark"`` draws on a dark
background. ``module_graph`` returns a graphviz Digraph. ``class_legend(fig)`` adds the key to
the mask colours of :func:`hrnet_teach.data.colorize` under a figure of your own.
``use_chinese_font()`` lets a figure of your own show Chinese words (the Chinese lessons call it).
"""
from .graphs import DotUnavailableError, has_dot, module_graph, render_svg
from .heatmaps import plot_heatmap_target
from .language import use_chinese_font
from .masks import class_legend
from .plots import (
    plot_architecture,
    plot_costs,
    plot_feature_maps,
    plot_fuse_matrix,
    plot_new_branch,
    plot_odd_sizes,
    plot_pixel_attention,
    plot_resolution_over_depth,
    plot_transition,
)
from .style import THEMES, Theme, enable_notebook_display

enable_notebook_display()  # in a notebook, a cell ending in a figure shows it

__all__ = [
    "plot_architecture", "plot_resolution_over_depth", "plot_fuse_matrix", "plot_transition", "plot_new_branch",
    "plot_odd_sizes", "plot_pixel_attention", "plot_heatmap_target", "plot_feature_maps", "plot_costs", "module_graph", "has_dot", "render_svg", "DotUnavailableError",
    "THEMES", "Theme", "enable_notebook_display", "class_legend", "use_chinese_font",
]
