"""Data for the report benchmark: leads, sales, losses and ad spend at real volumes, generated inside PostgreSQL.

Not a benchmark itself (bench/run.py skips modules that only provide data: see NOT_BENCHMARKS). Every
table is filled with one `INSERT … SELECT generate_series` so a million leads take seconds, not the
minutes row-by-row inserts would. Lead ids are derived from their number (`md5('lead' || n)::uuid`)
so sales and losses can point at their lead without a join. A lead's campaign is `(n + n / 10) mod
campaigns`, so the won tenth (n divisible by 10) and the lost tenth spread over every campaign.
"""

from bench.volume import drop_defaults, set_zero_defaults

STAGES = [(10, "Новая", 10), (20, "Квалификация", 20), (30, "Переговоры", 30), (40, "Счёт", 40),
          (142, "Успешно", 10000), (143, "Закрыто и не реализовано", 11000)]
SOURCES = ["yandex", "google", "vk", "telegram", "email"]
MEDIUMS = ["cpc", "cpm", "social", "newsletter"]
USERS = 10
PIPELINE = 7001

LEADS_SQL = """
INSERT INTO leads_lead (
    id, source_id, account_id, name, phone_raw, phone, email, message,
    utm_source, utm_medium, utm_campaign, utm_term, utm_content, referrer, page_url,
    first_utm_source, first_utm_medium, first_utm_campaign, first_utm_term, first_utm_content,
    first_referrer, first_landing_page, first_touch_at,
    fields, user_agent, idempotency_key, fingerprint, submission_hash, status, attempts, last_error,
    note_pending, created_at, sent_at, amocrm_deal_id, amocrm_unsorted_uid, pipeline_id, stage_id,
    responsible_user_id, stage_changed_at)
SELECT md5('lead' || g)::uuid, %(source)s, %(account)s, 'Клиент ' || g, '', '+7913' || lpad(g::text, 7, '0'), '', '',
       (ARRAY%(sources)s)[1 + ((g + g / 10) %% %(campaigns)s) %% 5],
       (ARRAY%(mediums)s)[1 + ((g + g / 10) %% %(campaigns)s) %% 4],
       'campaign-' || ((g + g / 10) %% %(campaigns)s), '', '', '', '',
       (ARRAY%(sources)s)[1 + ((g * 7 + g / 10) %% %(campaigns)s) %% 5],
       (ARRAY%(mediums)s)[1 + ((g * 7 + g / 10) %% %(campaigns)s) %% 4],
       'campaign-' || ((g * 7 + g / 10) %% %(campaigns)s), '', '', '', '', NULL,
       '{}'::jsonb, '', '', '', '', CASE WHEN g %% 50 = 0 THEN 'spam' ELSE 'sent' END, 1, '', false,
       now() - make_interval(days => g %% %(days)s, secs => g %% 86400), NULL,
       CASE WHEN g %% 10 < 8 THEN g END, '',
       CASE WHEN g %% 10 < 8 THEN %(pipeline)s END,
       CASE WHEN g %% 10 >= 8 THEN NULL WHEN g %% 10 = 0 THEN 142 WHEN g %% 10 = 1 THEN 143
            ELSE (ARRAY[10, 20, 30, 40])[1 + g %% 4] END,
       CASE WHEN g %% 10 < 8 THEN 9000 + g %% %(users)s END, NULL
FROM generate_series(1, %(leads)s) AS g
"""

# Every tenth lead (g % 10 = 0) is won: one sale each, won 0–29 days after the lead came in.
SALES_SQL = """
INSERT INTO sales_sale (account_id, amocrm_deal_id, lead_id, attribution, amocrm_contact_id, name, amount, currency,
                        pipeline_id, stage_id, responsible_user_id, won_at, state, state_changed_at, deal_updated_at,
                        created_at, updated_at)
SELECT %(account)s, g, md5('lead' || g)::uuid, 'deal', NULL, 'Сделка ' || g, 1000 + (g * 37) %% 200000, 'RUB',
       %(pipeline)s, 142, 9000 + g %% %(users)s,
       LEAST(now(), now() - make_interval(days => g %% %(days)s, secs => g %% 86400) + make_interval(days => g %% 30)),
       CASE WHEN g %% 1000 = 0 THEN 'reverted' ELSE 'won' END, now(), now(), now(), now()
FROM generate_series(10, %(leads)s, 10) AS g
"""

LOSSES_SQL = """
INSERT INTO sales_dealloss (account_id, amocrm_deal_id, lead_id, pipeline_id, loss_reason_id, loss_reason, lost_at,
                            updated_at)
SELECT %(account)s, g, md5('lead' || g)::uuid, %(pipeline)s, 500 + g %% 4,
       (ARRAY['Дорого', 'Выбрали конкурента', 'Не дозвонились', 'Неактуально'])[1 + g %% 4], now(), now()
FROM generate_series(1, %(leads)s) AS g WHERE g %% 10 = 1
"""

SPEND_SQL = """
INSERT INTO sales_adspend (day, utm_source, utm_medium, utm_campaign, cost, currency, updated_at)
SELECT current_date - d, (ARRAY%(sources)s)[1 + c %% 5], (ARRAY%(mediums)s)[1 + c %% 4], 'campaign-' || c,
       100 + (c * 13 + d * 7) %% 5000, 'RUB', now()
FROM generate_series(0, %(days)s - 1) AS d CROSS JOIN generate_series(0, %(campaigns)s - 1) AS c
"""


def fill(cursor, *, account: int, source: int, leads: int, campaigns: int, days: int) -> None:
    """Leads (and, in the same proportions, sales, losses), spend of every campaign for every day."""
    params = {"account": account, "source": source, "leads": leads, "campaigns": campaigns, "days": days,
              "pipeline": PIPELINE, "users": USERS, "sources": SOURCES, "mediums": MEDIUMS}
    # The arrays are SQL literals (ARRAY['a', 'b']), the rest query parameters.
    literal = {"sources": "[" + ", ".join(f"'{s}'" for s in SOURCES) + "]",
               "mediums": "[" + ", ".join(f"'{m}'" for m in MEDIUMS) + "]"}
    # Columns the models gained after these INSERTs were written get a zero default for the fill only.
    zeroed = set_zero_defaults(cursor)
    try:
        for sql in (LEADS_SQL, SALES_SQL, LOSSES_SQL, SPEND_SQL):
            text = sql.replace("ARRAY%(sources)s", "ARRAY" + literal["sources"]).replace(
                "ARRAY%(mediums)s", "ARRAY" + literal["mediums"])
            cursor.execute(text, params)
    finally:
        drop_defaults(cursor, zeroed)


def metadata(*, account) -> None:
    """The pipeline with its stages and the managers, as 'Sync metadata' would cache them."""
    from amocrm.models import AmoUser, Pipeline, Stage

    pipeline = Pipeline.objects.create(account=account, amocrm_id=PIPELINE, name="Продажи", is_main=True)
    Stage.objects.bulk_create([Stage(pipeline=pipeline, amocrm_id=amocrm_id, name=name, sort=sort)
                               for amocrm_id, name, sort in STAGES])
    AmoUser.objects.bulk_create([AmoUser(account=account, amocrm_id=9000 + n, name=f"Менеджер {n + 1}")
                                 for n in range(USERS)])
