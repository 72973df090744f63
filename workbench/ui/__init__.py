"""Widgets, Qt item models and pyqtgraph plots of the desktop window."""
