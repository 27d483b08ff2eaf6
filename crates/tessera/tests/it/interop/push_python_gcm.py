"""python-gcm (PyPI) as an independent GCM sender against a tessera server.

Argument: a JSON object with base, key, good, bad, gone (registration ids), down_base, down_key,
down_good (a server whose store fails). Prints a JSON object of what the library answered.
The library's sleeps are recorded instead of slept.
"""
import json
import sys

import gcm.gcm as library
from gcm import GCM

cfg = json.loads(sys.argv[1])
sleeps = []
library.time.sleep = lambda seconds: sleeps.append(seconds)


def client(base, key):
    sender = GCM(key)
    sender.url = base + "/gcm/send"
    return sender


out = {}
sender = client(cfg["base"], cfg["key"])
out["multicast"] = sender.json_request(
    registration_ids=[cfg["good"], cfg["bad"]], data={"text": "multicast"}, retries=1
)
out["plain"] = sender.plaintext_request(
    registration_id=cfg["good"], data={"text": "plain"}, retries=1
)
try:
    sender.plaintext_request(registration_id=cfg["gone"], data={"text": "gone"}, retries=1)
    out["plain_gone"] = "accepted"
except library.GCMNotRegisteredException:
    out["plain_gone"] = "NotRegistered"
out["topic"] = sender.send_topic_message(topic="news", data={"text": "topic"}, retries=1)
try:
    client(cfg["base"], "AIzaNotAKey").json_request(registration_ids=[cfg["good"]], retries=1)
    out["unauthorized"] = False
except library.GCMAuthenticationException:
    out["unauthorized"] = True
down = client(cfg["down_base"], cfg["down_key"])
try:
    down.json_request(registration_ids=[cfg["down_good"]], data={"text": "down"}, retries=2)
    out["unavailable"] = "accepted"
except IOError as error:
    out["unavailable"] = str(error)
out["sleeps"] = sleeps
print(json.dumps(out))
