"""Matplotlib figures built from the models; each function returns a Figure."""
