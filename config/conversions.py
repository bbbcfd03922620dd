"""Settings of the conversions export (conversions/), read from the environment by config/settings.py.

Kept apart so config/settings.py stays short; each setting is documented here, in .env.example and in the
README's settings table.
"""


def read(env) -> dict:
    """The conversions settings from django-environ's `env`."""
    return {
        # The Yandex Metrika goal (a JavaScript-event goal's identifier) a won sale is reported as.
        "CONVERSIONS_YANDEX_TARGET": env.str("CONVERSIONS_YANDEX_TARGET", default="crm_sale"),
        # The Google Ads conversion action's name a won sale is reported as (it must exist in Google Ads).
        "CONVERSIONS_GOOGLE_NAME": env.str("CONVERSIONS_GOOGLE_NAME", default="CRM sale"),
        # Also report leads that reached one of these amoCRM stages (ids, comma-separated; list every stage
        # from the qualified one on), once per lead and platform, as this goal. Empty: won sales only.
        "CONVERSIONS_QUALIFIED_STAGE_IDS": env.list("CONVERSIONS_QUALIFIED_STAGE_IDS", cast=int, default=[]),
        "CONVERSIONS_QUALIFIED_GOAL": env.str("CONVERSIONS_QUALIFIED_GOAL", default="crm_qualified"),
        # Both set: won sales are uploaded to this Metrika counter on a schedule (an OAuth token with
        # the metrika:write scope). Either empty: no upload, the CSV download and command still work.
        "YANDEX_METRIKA_COUNTER": env.str("YANDEX_METRIKA_COUNTER", default=""),
        "YANDEX_METRIKA_TOKEN": env.str("YANDEX_METRIKA_TOKEN", default=""),
        # How often beat uploads to Yandex Metrika, minutes.
        "YANDEX_METRIKA_UPLOAD_MINUTES": env.int("YANDEX_METRIKA_UPLOAD_MINUTES", default=60),
    }
