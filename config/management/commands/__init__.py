"""`manage.py compile_catalogues`."""
