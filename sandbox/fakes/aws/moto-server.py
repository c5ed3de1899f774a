"""
Runs moto server (same arguments as `python3 -m moto.server`) with one change that makes its SQS
cost independent of the queue's depth, and no change to what any API returns.

Why: moto's SQS reads the clock through moto.core.utils.unix_time, which builds two datetimes and
subtracts them, once per message per visibility check. Every SendMessage on a FIFO queue computes
the queue's attributes (ApproximateNumberOfMessages and its siblings: a visibility check of every
message) three times, and every ReceiveMessage checks every message. Measured on moto 5.2.1 with
1,000 messages in a FIFO queue: a SendMessageBatch of 10 took about 1 s and a ReceiveMessage about
0.8 s, where SQS answers in milliseconds whatever the depth. In the sandbox that made a burst of
refresh events slow itself down (the deeper the queue, the slower every send and receive).

The change: moto.sqs.models' own references to unix_time / unix_time_millis read time.time(),
the same clock (seconds since the Unix epoch, as a float) without the datetime arithmetic. moto's
logic is untouched. On any other moto version nothing is patched, and moto runs as shipped.
"""
import sys
import time

import moto
import moto.sqs.models as sqs_models
from moto.server import main

PATCHED_VERSIONS = {"5.2.1"}


def _unix_time(dt=None):
    # moto passes a datetime only to convert that one; keep its conversion for those calls.
    return time.time() if dt is None else _original_unix_time(dt)


def _unix_time_millis(dt=None):
    return time.time() * 1000.0 if dt is None else _original_unix_time_millis(dt)


_original_unix_time = sqs_models.unix_time
_original_unix_time_millis = sqs_models.unix_time_millis

if moto.__version__ in PATCHED_VERSIONS:
    sqs_models.unix_time = _unix_time
    sqs_models.unix_time_millis = _unix_time_millis

if __name__ == "__main__":
    main(sys.argv[1:])
