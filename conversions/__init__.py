"""Conversions back to the ad platforms: won sales as Yandex Metrika and Google Ads offline-conversion CSVs.

models.py — one export record per sale × platform (what makes exports incremental, and the upload state);
formats.py — the exact CSVs; services.py — which sales are due, and exporting them once;
metrika.py — the optional scheduled upload to Yandex Metrika's API; admin.py — the records and the download.
"""
