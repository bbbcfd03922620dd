"""Volume generator: a database at real volume for the admin benchmark (1 M leads, 3 M sync-log rows, 1 M webhook
events with ~300 big deliveries, 100 k sales), filled server-side in a few minutes and reused between runs.

Run: `python -m bench.volume` (the admin benchmark calls it too). It creates `amocrm_bench_volume` (override with
`BENCH_VOLUME_DATABASE`) next to `BENCH_DATABASE_URL` (default the local server's `postgres` database), migrates
it and fills it once; a filled database is only migrated again. `--refill` drops and refills it, `--scale 0.01`
makes a small one (to prove the script runs). Never point it at a database that matters.

The small tables (accounts, their pipelines, stages and users, lead sources) go through the ORM; the big ones are
`INSERT … SELECT generate_series` with realistic spreads: 12 months of leads (more recent than old), Russian
phones in E.164 with the raw forms people type, e-mails on common domains, UTMs over ~200 campaigns of a
handful of sources, statuses (mostly sent; pending and sending only in the last day), a deal id and stage for
every sent lead; sync-log rows over the same 12 months with the product's operations and ~1 KB bodies;
webhook deliveries of one deal each plus ~300 deliveries of 250 deals (434 KiB) in the last day, where the
first page of the list meets them; sales for one in ten sent leads.
"""

import argparse
import json
import os
import sys
import time
from urllib.parse import urlencode

import psycopg

from bench._support import database_url

DATABASE = os.environ.get("BENCH_VOLUME_DATABASE", "amocrm_bench_volume")
ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
LEADS, SYNC_LOGS, WEBHOOK_EVENTS, BIG_DELIVERIES, SALES = 1_000_000, 3_000_000, 1_000_000, 300, 100_000
ACCOUNTS, SOURCES_PER_ACCOUNT, CAMPAIGNS = 3, 8, 200
DEAL_BASE, CONTACT_BASE = 20_000_000, 40_000_000
PIPELINE_BASE, STAGE_BASE, USER_BASE = 5_000_000, 60_000_000, 9_000_000

# Spreads used by the SQL below: g is the row number, r a random() per row.
FILL_LEADS = """
INSERT INTO leads_lead (id, account_id, source_id, name, phone_raw, phone, email, message, utm_source, utm_medium,
    utm_campaign, utm_term, utm_content, referrer, page_url, fields, ip, user_agent, idempotency_key, fingerprint,
    submission_hash, status, attempts, last_error, created_at, sent_at, amocrm_deal_id, amocrm_contact_id,
    amocrm_unsorted_uid, pipeline_id, stage_id, responsible_user_id, stage_changed_at, note_pending)
SELECT gen_random_uuid(), src.account_id, src.id,
       (ARRAY['Анна','Иван','Мария','Сергей','Ольга','Дмитрий','Елена','Алексей','Наталья','Павел'])[1 + g %% 10]
           || ' '
           || (ARRAY['Иванова','Петров','Смирнова','Кузнецов','Попова','Соколов','Лебедева','Козлов'])[1 + g %% 8],
       CASE WHEN ph.has THEN (ARRAY['+7 (', '8 (', '8', '+7'])[1 + g %% 4] || ph.d3 || CASE WHEN g %% 4 < 2
            THEN ') ' || ph.d7 ELSE ph.d7 END ELSE '' END,
       CASE WHEN ph.has THEN '+7' || ph.d3 || ph.d7 ELSE '' END,
       CASE WHEN g %% 10 < 6 THEN 'client' || g || '@'
            || (ARRAY['mail.ru','yandex.ru','gmail.com','bk.ru','inbox.ru','list.ru','rambler.ru',
                      'company.ru'])[1 + g %% 8]
            ELSE '' END,
       CASE WHEN g %% 3 = 0 THEN 'Перезвоните, пожалуйста, интересует доставка и цена' ELSE '' END,
       utm.source, utm.medium, CASE WHEN utm.source = '' THEN '' ELSE 'campaign_' || utm.campaign END,
       CASE WHEN utm.source = '' THEN '' ELSE 'term ' || (g %% 50) END, '',
       CASE WHEN g %% 2 = 0 THEN 'https://yandex.ru/' ELSE '' END,
       'https://shop.example.ru/landing-' || (g %% 40) || '?utm_source=' || utm.source,
       CASE WHEN g %% 5 = 0 THEN '{"city": "Москва", "product": "Тариф Бизнес"}'::jsonb ELSE '{}'::jsonb END,
       ('10.' || (g %% 250) || '.' || (g / 250 %% 250) || '.' || (g %% 199 + 1))::inet,
       'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120 Safari/537.36', '',
       md5(g::text), '', st.status, CASE WHEN st.status = 'failed' THEN 5 ELSE 1 END,
       CASE WHEN st.status = 'failed' THEN 'ValidationError: 400 {"title": "Bad Request"}' ELSE '' END,
       t.created, CASE WHEN st.status = 'sent' THEN t.created + interval '20 seconds' END,
       CASE WHEN st.status = 'sent' THEN %(deal_base)s + g END,
       CASE WHEN st.status = 'sent' THEN %(contact_base)s + g %% 700000 END, '',
       CASE WHEN st.status = 'sent' THEN %(pipeline_base)s + src.account_id * 10 END,
       CASE WHEN st.status = 'sent' THEN %(stage_base)s + src.account_id * 100 + g %% 8 END,
       CASE WHEN st.status = 'sent' THEN %(user_base)s + src.account_id * 10 + g %% 6 END,
       CASE WHEN st.status = 'sent' THEN t.created + interval '2 days' END, false
FROM generate_series(1, %(rows)s) AS g
CROSS JOIN LATERAL (SELECT now() - make_interval(secs => 365 * 86400 * power(random() + g * 0, 1.3)) AS created) AS t
CROSS JOIN LATERAL (SELECT g %% 10 < 9 AS has, (900 + g %% 100)::text AS d3,
                           lpad(((g::bigint * 7919) %% 10000000)::text, 7, '0') AS d7) AS ph
CROSS JOIN LATERAL (SELECT (ARRAY['yandex','yandex','google','vk','vk','telegram','email','',''])[1 + g %% 9] AS source,
                           (ARRAY['cpc','cpc','cpc','social','social','messenger','email','',''])[1 + g %% 9] AS medium,
                           floor(%(campaigns)s * power(random() + g * 0, 2))::int AS campaign) AS utm
CROSS JOIN LATERAL (SELECT CASE WHEN t.created > now() - interval '1 day' AND g %% 10 = 0 THEN 'pending'
                                WHEN t.created > now() - interval '1 hour' AND g %% 10 = 1 THEN 'sending'
                                WHEN g %% 50 = 3 THEN 'failed' WHEN g %% 33 = 4 THEN 'spam'
                                ELSE 'sent' END AS status) AS st
JOIN (SELECT id, account_id, row_number() OVER (ORDER BY id) - 1 AS n FROM leads_leadsource) AS src
  ON src.n = (g * 31) %% %(sources)s
"""
OPERATIONS = [  # (operation, method, path, share in %)
    ("leads.complex", "POST", "/api/v4/leads/complex", 30), ("contacts.search", "GET", "/api/v4/contacts", 25),
    ("notes.create", "POST", "/api/v4/leads/notes", 15), ("leads.get", "GET", "/api/v4/leads/{id}", 12),
    ("webhook.process", "", "", 8), ("leads.list", "GET", "/api/v4/leads", 4),
    ("unsorted.create", "POST", "/api/v4/leads/unsorted/forms", 3), ("reconcile.deal", "", "", 1),
    ("oauth.refresh", "POST", "/oauth2/access_token", 1), ("pipelines.list", "GET", "/api/v4/leads/pipelines", 1),
]
FILL_SYNC_LOG = """
INSERT INTO amocrm_synclog (account_id, created_at, operation, direction, status, method, path, http_status,
                            duration_ms, amocrm_request_id, request_body, response_body, error, context)
SELECT 1 + g %% %(accounts)s, now() - make_interval(secs => 365 * 86400 * power(random() + g * 0, 1.3)),
       op.operation, CASE WHEN op.operation LIKE 'webhook%%' THEN 'inbound' ELSE 'outbound' END,
       CASE WHEN g %% 40 = 0 THEN 'error' ELSE 'ok' END, op.method, replace(op.path, '{id}', (%(deal_base)s + g)::text),
       CASE WHEN op.method = '' THEN NULL WHEN g %% 40 = 0 THEN (ARRAY[429, 502, 400, 401])[1 + g %% 4] ELSE 200 END,
       80 + g %% 400, md5(g::text),
       CASE WHEN op.method = 'POST' THEN '[{"name": "' || repeat('Заявка с сайта ', 25) || '", "price": ' || g || '}]'
            ELSE '' END,
       '{"_embedded": {"leads": [{"id": ' || (%(deal_base)s + g) || ', "request_id": ["' || g || '"]}]}, "_pad": "'
           || repeat('x', 300) || '"}',
       CASE WHEN g %% 40 = 0 THEN 'HTTPError: 429 Too Many Requests' ELSE '' END,
       jsonb_build_object('leads', jsonb_build_array(md5(g::text)))
FROM generate_series(1, %(rows)s) AS g
JOIN (SELECT * FROM (VALUES {operations}) AS v(operation, method, path, lo, hi)) AS op
  ON (g * 37) %% 100 >= op.lo AND (g * 37) %% 100 < op.hi
"""
FILL_SYNC_LOG_LINKS = """
INSERT INTO leads_lead_sync_logs (lead_id, synclog_id)
SELECT lead.id, log.id FROM (SELECT id, row_number() OVER (ORDER BY created_at) AS n FROM leads_lead) AS lead
JOIN amocrm_synclog AS log ON log.id = lead.n
"""
FILL_WEBHOOKS = """
INSERT INTO amocrm_webhookevent (account_id, received_at, remote_ip, headers, content_type, body, body_sha256, parsed,
                                 state, error, attempts, processed_at, items_total, items_done, items_failed,
                                 item_errors)
SELECT 1 + g %% %(accounts)s, t.received, '185.4.65.10',
       '{"User-Agent": "amoCRM-Webhooks/3.0", "Content-Type": "application/x-www-form-urlencoded"}'::jsonb,
       'application/x-www-form-urlencoded',
       convert_to('leads[status][0][id]=' || (%(deal_base)s + g) || '&leads[status][0][status_id]=142'
           || '&leads[status][0][pipeline_id]=5000010&leads[status][0][old_status_id]=60000101'
           || '&leads[status][0][old_pipeline_id]=5000010&leads[status][0][last_modified]=1733000000'
           || '&account[id]=3100' || (g %% 3) || '&account[subdomain]=shop' || (g %% 3), 'UTF8'),
       md5(g::text) || md5((-g)::text),
       jsonb_build_object('leads', jsonb_build_object('status', jsonb_build_array(jsonb_build_object(
           'id', (%(deal_base)s + g)::text, 'status_id', '142', 'pipeline_id', '5000010',
           'old_status_id', '60000101', 'last_modified', '1733000000'))),
           'account', jsonb_build_object('id', '3100' || (g %% 3), 'subdomain', 'shop' || (g %% 3))),
       (ARRAY['processed','processed','processed','processed','processed','processed','ignored','duplicate','failed',
              'processed'])[1 + g %% 10], '', 1, t.received + interval '2 seconds', 1, 1, 0, '[]'::jsonb
FROM generate_series(1, %(rows)s) AS g
CROSS JOIN LATERAL (SELECT now() - make_interval(secs => 365 * 86400 * power(random() + g * 0, 1.3)) AS received) AS t
"""
FILL_BIG_WEBHOOKS = """
INSERT INTO amocrm_webhookevent (account_id, received_at, remote_ip, headers, content_type, body, body_sha256, parsed,
                                 state, error, attempts, processed_at, items_total, items_done, items_failed,
                                 item_errors)
SELECT 1 + g %% %(accounts)s, now() - make_interval(secs => g * 200), '185.4.65.10',
       '{"Content-Type": "application/x-www-form-urlencoded"}'::jsonb, 'application/x-www-form-urlencoded',
       %(body)s, md5(g::text || 'big') || md5(g::text), %(parsed)s::jsonb, 'processed', '', 1,
       now() - make_interval(secs => g * 200 - 5), 250, 250, 0, '[]'::jsonb
FROM generate_series(1, %(rows)s) AS g
"""
FILL_SALES = """
INSERT INTO sales_sale (account_id, amocrm_deal_id, lead_id, attribution, amocrm_contact_id, name, amount, currency,
                        pipeline_id, stage_id, responsible_user_id, won_at, state, state_changed_at, deal_updated_at,
                        created_at, updated_at)
SELECT l.account_id, l.amocrm_deal_id, l.id, CASE WHEN l.n %% 7 = 0 THEN 'contact' ELSE 'deal' END,
       l.amocrm_contact_id, 'Заявка с сайта: ' || l.name, (1000 + (l.n * 7919) %% 300000)::numeric / 1 + 0.5, 'RUB',
       l.pipeline_id, 142, l.responsible_user_id, least(now(), l.created_at + make_interval(days => (l.n %% 20)::int)),
       CASE WHEN l.n %% 25 = 0 THEN 'reverted' ELSE 'won' END, now(), now(), now(), now()
FROM (SELECT *, row_number() OVER (ORDER BY amocrm_deal_id) AS n FROM leads_lead
      WHERE status = 'sent' AND amocrm_deal_id %% 8 = 0) AS l
WHERE l.n <= %(rows)s
"""


# A zero value per column type, for NOT NULL columns the fill does not name (fields added to the models later).
ZERO_BY_TYPE = {"character varying": "''", "text": "''", "integer": "0", "bigint": "0", "smallint": "0",
                "numeric": "0", "boolean": "false", "jsonb": "'{}'::jsonb", "timestamp with time zone": "now()",
                "uuid": "gen_random_uuid()", "date": "current_date", "double precision": "0"}
BIG_TABLES = ["leads_lead", "amocrm_synclog", "amocrm_webhookevent", "sales_sale"]


def _unnamed_columns(cursor, table: str) -> list[tuple[str, str]]:
    """NOT NULL columns of `table` without a database default: (name, type)."""
    cursor.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s "
                   "AND is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO'", [table])
    return cursor.fetchall()


def set_zero_defaults(cursor) -> list[tuple[str, str]]:
    """Give every NOT NULL column of the big tables that has no default a zero one, so the fill's INSERTs keep
    working when the models gain fields (the columns the fill names are unaffected); the (table, column)s."""
    changed = []
    for table in BIG_TABLES:
        for column, data_type in _unnamed_columns(cursor, table):
            zero = ZERO_BY_TYPE.get(data_type, "''")
            cursor.execute(f'ALTER TABLE {table} ALTER COLUMN "{column}" SET DEFAULT {zero}')
            changed.append((table, column))
    return changed


def drop_defaults(cursor, columns: list[tuple[str, str]]) -> None:
    for table, column in columns:
        cursor.execute(f'ALTER TABLE {table} ALTER COLUMN "{column}" DROP DEFAULT')


def _operations_sql() -> str:
    rows, low = [], 0
    for operation, method, path, share in OPERATIONS:
        rows.append(f"('{operation}', '{method}', '{path}', {low}, {low + share})")
        low += share
    return ", ".join(rows)


def big_delivery(deals: int = 250) -> tuple[bytes, str]:
    """A bulk stage change of `deals` deals in amoCRM's full form-encoded shape (~434 KiB), and its parsed JSON."""
    pairs, parsed = [], []
    for i in range(deals):
        deal = {"id": str(DEAL_BASE + 900_000 + i), "name": "Заявка с сайта: " + "Клиент " * 8, "status_id": "142",
                "old_status_id": "60000101", "price": "45000", "responsible_user_id": "9000011",
                "last_modified": "1733000000", "modified_user_id": "9000011", "created_user_id": "0",
                "date_create": "1732000000", "pipeline_id": "5000010", "account_id": "31000",
                "custom_fields": [{"id": str(700000 + k), "name": f"Поле {k}", "values": [{"value": "Значение " * 6}]}
                                  for k in range(2)]}
        parsed.append(deal)
        for key, value in deal.items():
            if key == "custom_fields":
                for k, field in enumerate(value):
                    prefix = f"leads[status][{i}][custom_fields][{k}]"
                    pairs += [(f"{prefix}[id]", field["id"]), (f"{prefix}[name]", field["name"]),
                              (f"{prefix}[values][0][value]", field["values"][0]["value"])]
            else:
                pairs.append((f"leads[status][{i}][{key}]", value))
    pairs += [("account[id]", "31000"), ("account[subdomain]", "shop0")]
    body = urlencode(pairs).encode()
    return body, json.dumps({"leads": {"status": parsed}, "account": {"id": "31000", "subdomain": "shop0"}})


def _django(db_url: str):
    os.environ.update({"DJANGO_SETTINGS_MODULE": "config.settings", "ENV_FILE": "", "DEBUG": "false",
                       "SECRET_KEY": "bench-" + "x" * 50, "ALLOWED_HOSTS": "127.0.0.1,testserver",
                       "FIELD_ENCRYPTION_KEY": "ZGV2ZWxvcG1lbnQtb25seS1rZXktMzItYnl0ZXMtISE=", "DATABASE_URL": db_url,
                       "REDIS_URL": "", "LOG_LEVEL": "WARNING"})
    import django

    django.setup()


def fill_small_tables() -> None:
    """Accounts (connected), their cached pipelines, stages, users and deal fields, and the lead sources."""
    from amocrm.models import Account, AmoUser, Pipeline, Stage
    from leads.models import LeadSource

    for a in range(1, ACCOUNTS + 1):
        account = Account.objects.create(
            name=f"Магазин {a}", host=f"https://shop{a}.amocrm.ru", client_id=f"bench-{a}", client_secret="secret",
            redirect_uri="https://crm-bridge.example.com/amocrm/oauth/callback/", state=Account.State.CONNECTED,
            amocrm_account_id=31000 + a, amocrm_name=f"shop{a}", subdomain=f"shop{a}", currency="RUB",
            default_pipeline_id=PIPELINE_BASE + a * 10)
        pipeline = Pipeline.objects.create(account=account, amocrm_id=PIPELINE_BASE + a * 10, name="Воронка продаж",
                                           is_main=True)
        names = ["Неразобранное", "Новая заявка", "Квалификация", "Переговоры", "Счёт выставлен", "Оплата",
                 "Доставка", "Повторная продажа"]
        Stage.objects.bulk_create([Stage(pipeline=pipeline, amocrm_id=STAGE_BASE + a * 100 + i, name=name, sort=i * 10)
                                   for i, name in enumerate(names)]
                                  + [Stage(pipeline=pipeline, amocrm_id=142, name="Успешно реализовано", sort=10000),
                                     Stage(pipeline=pipeline, amocrm_id=143, name="Закрыто и не реализовано",
                                           sort=11000)])
        AmoUser.objects.bulk_create([AmoUser(account=account, amocrm_id=USER_BASE + a * 10 + i, name=f"Менеджер {i}")
                                     for i in range(6)])
        for s in range(SOURCES_PER_ACCOUNT):
            LeadSource.objects.create(account=account, name=f"Форма {s + 1} ({account.name})",
                                      is_default=s == 0, mode="deal" if s % 3 else "unsorted")


def fill(db_url: str, scale: float) -> dict:
    """Fill an empty, migrated database; the seconds each table took."""
    _django(db_url)
    from django.db import connection, transaction

    timings = {}
    with transaction.atomic():
        fill_small_tables()
    body, parsed = big_delivery()
    steps = [
        ("leads", FILL_LEADS, {"rows": int(LEADS * scale)}),
        ("sync log", FILL_SYNC_LOG.replace("{operations}", _operations_sql()), {"rows": int(SYNC_LOGS * scale)}),
        ("sync-log links", FILL_SYNC_LOG_LINKS, {}),
        ("webhook events", FILL_WEBHOOKS, {"rows": int(WEBHOOK_EVENTS * scale) - int(BIG_DELIVERIES * scale)}),
        ("big deliveries", FILL_BIG_WEBHOOKS, {"rows": max(1, int(BIG_DELIVERIES * scale)), "body": body,
                                               "parsed": parsed}),
        ("sales", FILL_SALES, {"rows": int(SALES * scale)}),
    ]
    common = {"accounts": ACCOUNTS, "sources": ACCOUNTS * SOURCES_PER_ACCOUNT, "campaigns": CAMPAIGNS,
              "deal_base": DEAL_BASE, "contact_base": CONTACT_BASE, "pipeline_base": PIPELINE_BASE,
              "stage_base": STAGE_BASE, "user_base": USER_BASE}
    with connection.cursor() as cursor:
        defaulted = set_zero_defaults(cursor)
    for name, sql, params in steps:
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute(sql, {**common, **params})
        timings[name] = round(time.monotonic() - started, 1)
        print(f"  {name}: {timings[name]} s", flush=True)
    with connection.cursor() as cursor:
        drop_defaults(cursor, defaulted)
    connection.close()
    return timings


def _manage_migrate(db_url: str) -> None:
    from amocrm_sandbox.harness import ROOT

    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "DJANGO_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", "ENV_FILE": "", "DEBUG": "false",
                "SECRET_KEY": "bench-" + "x" * 50, "ALLOWED_HOSTS": "127.0.0.1",
                "FIELD_ENCRYPTION_KEY": "ZGV2ZWxvcG1lbnQtb25seS1rZXktMzItYnl0ZXMtISE=", "DATABASE_URL": db_url,
                "REDIS_URL": "", "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)})
    from bench._support import manage

    manage(env, "migrate", "--noinput")


def ensure(*, refill: bool = False, scale: float = 1.0) -> str:
    """The volume database's URL: created, migrated and filled if it was not (or if `refill`)."""
    db_url = database_url(ADMIN_URL, DATABASE)
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        if refill:
            admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{DATABASE}"')
    _manage_migrate(db_url)  # also applies migrations added since the fill (new indexes)
    with psycopg.connect(db_url) as db:
        started_fill, filled = db.execute("SELECT EXISTS (SELECT 1 FROM amocrm_account), "
                                          "EXISTS (SELECT 1 FROM sales_sale)").fetchone()
    if started_fill and not filled:  # an interrupted fill (sales are its last step): start again
        return ensure(refill=True, scale=scale)
    if not filled:
        print(f"Filling {DATABASE} (scale {scale}); this takes a few minutes of both cores…", flush=True)
        started = time.monotonic()
        from subprocess import run

        run([sys.executable, "-m", "bench.volume", "--child-fill", "--scale", str(scale)], check=True,
            env={**os.environ, "BENCH_VOLUME_URL": db_url})
        with psycopg.connect(db_url, autocommit=True) as db:
            db.execute("VACUUM ANALYZE")
        print(f"Filled in {time.monotonic() - started:.0f} s.", flush=True)
    return db_url


def counts(db_url: str) -> dict:
    """Row counts (planner estimates, exact enough after VACUUM ANALYZE) and the database size."""
    tables = ["leads_lead", "amocrm_synclog", "amocrm_webhookevent", "sales_sale", "leads_leadsource"]
    with psycopg.connect(db_url) as db:
        rows = dict(db.execute("SELECT relname, reltuples::bigint FROM pg_class WHERE relname = ANY(%s)",
                               [tables]).fetchall())
        rows["size_mb"] = db.execute("SELECT pg_database_size(current_database()) / 1048576").fetchone()[0]
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.volume")
    parser.add_argument("--refill", action="store_true", help="drop the database and fill it again")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full volume (default 1)")
    parser.add_argument("--child-fill", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_fill:
        fill(os.environ["BENCH_VOLUME_URL"], args.scale)
        return 0
    db_url = ensure(refill=args.refill, scale=args.scale)
    print(json.dumps(counts(db_url)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
