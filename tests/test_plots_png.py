"""plots.png_bytes: figures (or functions making them) drawn in forked workers give the same PNG bytes as drawn
here, in order, and are closed."""
import matplotlib.pyplot as plt
import numpy as np

from analysis import plots


def _figure(k):
    fig, ax = plt.subplots(figsize=(2.5, 2), dpi=60)
    x = np.linspace(1, 10, 20)
    ax.plot(x, x ** (0.3 + 0.1 * k))
    ax.set(title=f"figure {k}")
    return fig


def _figures():
    return [_figure(k) for k in range(3)]


def test_forked_drawing_gives_the_same_bytes_in_order():
    serial = plots.png_bytes(_figures(), processes=1)
    figs = _figures()
    parallel = plots.png_bytes(figs, processes=2)
    assert parallel == serial
    assert len(set(serial)) == 3 and all(b.startswith(b"\x89PNG") for b in serial)
    assert not any(plt.fignum_exists(f.number) for f in figs)      # closed


def test_functions_making_figures_are_made_where_they_are_drawn():
    serial = plots.png_bytes(_figures(), processes=1)
    open_before = plt.get_fignums()
    made = [lambda k=k: _figure(k) for k in range(3)]
    assert plots.png_bytes(made, processes=2) == serial
    assert plots.png_bytes(made, processes=1) == serial
    assert plt.get_fignums() == open_before           # made and closed in the workers, or closed here
