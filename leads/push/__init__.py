"""The push of stored leads into amoCRM — read in this order.

1. engine.py — `leads_push()` and `AccountPush`: one account's push, batch by batch, and its
   guarantees (one push per account, at most one deal per lead, no duplicate contacts, leases,
   backoff); `PushOutcome` tells the task what to do next.
2. adoption.py — before writing, find the deals of earlier writes whose answers were lost.
3. contacts.py — the contact for each deal: known locally, found by one verified search, or new.
4. writes.py — the batch requests: leads/complex, leads/unsorted/forms, leads/notes, and how a
   failed write is sorted out.
5. mark.py and schedule.py — queueing pushes: one queued per account, and the sweeper.
"""
