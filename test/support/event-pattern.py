"""
Matches EventBridge event patterns against events with moto's implementation of EventBridge's
pattern matching (moto.events.models.EventPattern; moto's server-side TestEventPattern is a stub).

stdin: JSON list of {"pattern": {...}, "event": {...}}; stdout: JSON list of booleans.
"""
import json
import sys

from moto.events.models import EventPattern

cases = json.load(sys.stdin)
print(json.dumps([EventPattern.load(json.dumps(c["pattern"])).matches_event(c["event"]) for c in cases]))
