"""Reports: tables, figures and pages rebuilt from the saved results of a run directory.

Imports without torch; figures use matplotlib's Agg backend (no display needed).
"""
