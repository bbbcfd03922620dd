"""The lead intake, POST /api/leads/: validate, count, store, answer — read in this order.

1. api.py — the endpoint: the body size cap, the input serializer (its fields built once per
   thread: DRF's per-request deep copy cost more than the INSERT), the Origin check, the answer
   (201, 303 for a plain HTML form, 400/403/413/415/422/429).
2. cors.py — which browser Origin may post to which source, and the CORS headers that agree with it.
3. hook.py — POST /api/leads/hook/<secret>/ for form builders and backends: the source from the
   secret, a per-source rate instead of the per-IP one, and hook_fields.py turning the sender's
   field names into the intake's input; html_errors.py — refused plain HTML form posts get HTML.
4. admission.py — why a post is refused or collapsed: the per-IP throttle window (the 429), the
   double click, the Idempotency-Key, and the "push queued" mark, all in ONE Redis round trip
   (a Lua script) before exactly one INSERT; and what happens when Redis is down or hung.

The request never calls amoCRM: the stored lead is the outbox the push (leads/push/) works from.
"""
