"""QtCore bridges between the engine and the window: threads, processes, signals."""
