"""Reads a live show's events and answers every question it hears (linly-push live --control)."""
import json, os, urllib.request

api = os.environ.get("LINLY_PUSH_CONTROL", "http://127.0.0.1:8750")
auth = {"Authorization": f"Bearer {os.environ['LINLY_PUSH_CONTROL_TOKEN']}"} if os.environ.get("LINLY_PUSH_CONTROL_TOKEN") else {}
for line in urllib.request.urlopen(urllib.request.Request(f"{api}/events", headers=auth)):
    event = json.loads(line[6:]) if line.startswith(b"data: ") else {}
    if event.get("event") == "sentence" and event["text"].endswith("?") and not event["text"].startswith("You asked"):
        body = json.dumps({"text": f"You asked: {event['text']} Good question.", "mode": "next"}).encode()
        urllib.request.urlopen(urllib.request.Request(f"{api}/say", body, {"Content-Type": "application/json", **auth}))
