"""Round-robin across processes: two worker processes taking turns on one source stay fair (state in the DB)."""

import json
import subprocess
import sys
from collections import Counter

from amocrm.models import AmoUser
from leads.models import LeadSource
from tests.leads.conftest import USER

TAKES_PER_PROCESS = 40
# Each process waits for a start file, so both take their turns at the same time, then prints what it got.
SCRIPT = """
import json, os, sys, time
import django
django.setup()
from leads.push.routing import round_robin_take
start = sys.argv[2]
while not os.path.exists(start):
    time.sleep(0.01)
print(json.dumps([round_robin_take(int(sys.argv[1]), 1)[0] for _ in range({takes})]))
"""


def test_two_processes_taking_turns_give_each_user_counts_within_one(source, subprocess_env, tmp_path):
    AmoUser.objects.create(account=source.account, amocrm_id=7, name="Vera")
    AmoUser.objects.create(account=source.account, amocrm_id=8, name="Gleb", is_active=False)
    LeadSource.objects.filter(pk=source.pk).update(responsible_mode=LeadSource.ResponsibleMode.ROUND_ROBIN,
                                                   responsible_user_ids=[USER, 6, 7, 8])
    start = tmp_path / "start"
    script = SCRIPT.format(takes=TAKES_PER_PROCESS)
    workers = [subprocess.Popen([sys.executable, "-c", script, str(source.pk), str(start)], env=subprocess_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        start.touch()
        outputs = [worker.communicate(timeout=120) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert [worker.returncode for worker in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    taken = [user for out, _ in outputs for user in json.loads(out.strip().splitlines()[-1])]
    counts = Counter(taken)
    assert len(taken) == 2 * TAKES_PER_PROCESS
    assert set(counts) == {USER, 6, 7}  # Gleb is inactive in amoCRM: skipped
    assert max(counts.values()) - min(counts.values()) <= 1
    assert LeadSource.objects.get(pk=source.pk).responsible_turn == 2 * TAKES_PER_PROCESS
