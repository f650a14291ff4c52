"""Figures and tables for people: training curves, overlays, evaluation and fold tables, method
comparisons."""
