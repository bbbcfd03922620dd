"""Template tags of the project: money and numbers per locale (config.formats)."""
