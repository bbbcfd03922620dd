"""Website lead intake and the push of leads into amoCRM."""
