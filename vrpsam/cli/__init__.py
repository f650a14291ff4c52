"""Entry points: one thin ``main`` per console script over a pure function of a lower layer.
Nothing imports this package."""
