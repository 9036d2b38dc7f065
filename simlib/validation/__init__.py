"""Model predictions set against published measurements shipped with the package."""
