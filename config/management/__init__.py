"""Management commands of the project (config/management/commands/)."""
