"""Models beyond the generic cascade roofline; each is one module."""
