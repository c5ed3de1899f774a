"""
Runs moto server (same arguments as `python3 -m moto.server`) with four changes to what it costs
(three in SQS, one in its request dispatch), no change to what any API returns, and one fix of a
race that the faster clock made likely (the last paragraph but one).

Why: moto's SQS reads the clock through moto.core.utils.unix_time, which builds two datetimes and
subtracts them, once per message per visibility check. Every SendMessage on a FIFO queue computes
the queue's attributes (ApproximateNumberOfMessages and its siblings: a visibility check of every
message) three times, and every ReceiveMessage checks every message. Measured on moto 5.2.1 with
1,000 messages in a FIFO queue: a SendMessageBatch of 10 took about 1 s and a ReceiveMessage about
0.8 s, where SQS answers in milliseconds whatever the depth. In the sandbox that made a burst of
refresh events slow itself down (the deeper the queue, the slower every send and receive).

The change: moto.sqs.models' own references to unix_time / unix_time_millis read time.time(),
the same clock (seconds since the Unix epoch, as a float) without the datetime arithmetic. moto's
logic is untouched.

Second, a long poll that cannot be answered yet no longer spins. moto's ReceiveMessage loop, when
a scan found nothing to deliver, waits on the queue's condition with the predicate "the queue has
visible messages" (moto/sqs/models.py Queue.wait_for_messages). On a FIFO queue whose visible
messages all belong to a message group with messages in flight, that predicate is already true:
the wait returns at once and the loop rescans every message, on one CPU core, for the whole
WaitTimeSeconds. The sandbox's reconcile queue is exactly that queue while a run holds its one
message group (measured in the 20 x 1,000 rollout: moto busy 17.7 s of 26.8 s, the handlers'
Secrets Manager and SQS calls waiting behind it). The change: the wait returns when a message is
added (moto notifies the condition then) or after RESCAN_SECONDS, and the loop rescans as before,
so a message that becomes deliverable another way (its group's in-flight messages deleted, a
visibility timeout running out) is delivered within RESCAN_SECONDS, and the long poll still ends
at WaitTimeSeconds (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-short-and-long-polling.html).

Third, the per-request dispatch costs less. For every request, under one lock shared by all of
the server's threads, moto's DomainDispatcherApplication.get_backend_for_host lists moto's package
folders (a listdir and a stat per folder) and then tries every service's URL patterns against the
host (moto/moto_server/werkzeug_app.py). The answer depends on the host alone, so it is kept per
host (measured: 1,000 DescribeSecret calls cost moto 4.5 s of CPU as shipped, 3.0 s with these
changes). And the request log line werkzeug writes to stderr for every request (which nobody reads: the
sandbox keeps stderr only to find the bound port and to report a failed start) is not written;
werkzeug's start-up lines, the bound port among them, still are.

Fourth, a queue's attributes are computed when they are read, one at a time. moto's
Queue.attributes property builds every attribute, ApproximateNumberOfMessages and its two siblings
(each a visibility check of every message) among them, and a FIFO SendMessage reads it four times
only to look at ContentBasedDeduplication; every message ReceiveMessage delivers reads it again for
MessageRetentionPeriod (moto/sqs/models.py). So each send and each delivery scanned the whole
queue several times: measured in the 20 x 1,000 rollout, SendMessageBatch cost moto 20 ms a call
with about a thousand refresh reports queued, and moto was busy 100 % while the last reports went
in. The attributes are now a read-only mapping over the same keys, each value computed by moto's
own properties when it is read; GetQueueAttributes "All" still returns a plain dict, as moto does.
With it, the rollout's moto CPU went from 8.4 s to 4.4 s.

The race: ChangeMessageVisibility with VisibilityTimeout 0 (the API's minimum; the new timeout
counts from the call, https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html)
makes a message visible at once on AWS. moto sets its visible_at to "now" and then asks whether it
is visible, which is "now > visible_at": false whenever the clock reads the same value twice, and
then the message stays marked in flight. With time.time() that happens often (here 3 of 4 pairs of
consecutive reads are equal: a float's step at today's epoch is about 0.24 us), and a FIFO batch the
event source stand-in released came back split ([z] instead of [y, z], seen in CI). A timeout of 0
now sets visible_at just before now, so the message is visible, and out of flight, at once.

Fifth, connections are kept alive. Werkzeug's development server (3.1, which moto 5.2.1 runs on)
answers every request with "Connection: close", because http.server cannot find where a request's
unread body ends and the next request begins (werkzeug/serving.py WSGIRequestHandler.run_wsgi).
So every SDK call opened a TCP connection and moto a thread for it: 2,226 connections from the
sandbox's own clients in the 20 x 1,000 rotation, where AWS endpoints keep a connection for many
requests. The change: a request that names its Content-Length (or has no body) gets a body
stream of exactly that many bytes; what the application leaves unread is read off after the
response, so the next request on the connection starts where it should; and the connection stays
open unless the client asked to close it. Chunked or HTTP/1.0 requests are handled as shipped.
The answers are the same; the test that proves it sends several requests on one connection, one of
them with a body moto never reads.

On any other moto version nothing is patched, and moto runs as shipped.
"""
import io
import json
import sys
import threading
import time
from collections.abc import Mapping

import moto
import moto.sqs.models as sqs_models
from moto.core.utils import camelcase_to_underscores
from moto.moto_server import werkzeug_app
from moto.server import main
import werkzeug.serving as werkzeug_serving
from werkzeug.serving import WSGIRequestHandler

PATCHED_VERSIONS = {"5.2.1"}
RESCAN_SECONDS = 0.02


def _unix_time(dt=None):
    # moto passes a datetime only to convert that one; keep its conversion for those calls.
    return time.time() if dt is None else _original_unix_time(dt)


def _unix_time_millis(dt=None):
    return time.time() * 1000.0 if dt is None else _original_unix_time_millis(dt)


def _wait_for_messages(self, timeout):
    # Woken by add_message's notify_all, or after a short pause: never a busy loop.
    with self._messages_lock:
        self._messages_lock.wait(timeout=min(timeout, RESCAN_SECONDS))


def _get_backend_for_host(self, host):
    # The answer depends on the host alone (moto's package folders and its URL patterns are fixed
    # while the server runs): computed once per host. The caller holds the dispatcher's lock.
    cache = self.__dict__.setdefault("_backend_for_host", {})
    if host not in cache:
        cache[host] = _original_get_backend_for_host(self, host)
    return cache[host]


def _log_request(self, code="-", size="-"):
    return None


def _change_visibility(self, visibility_timeout):
    if int(visibility_timeout) == 0:
        # Visible from the moment of the call, whatever the clock's resolution (see above).
        self.visible_at = sqs_models.unix_time_millis() - 1
        return None
    return _original_change_visibility(self, visibility_timeout)


class _QueueAttributes(Mapping):
    """
    Queue.attributes as moto computes it (moto/sqs/models.py Queue.attributes), one key at a time
    when it is read: the same keys, and each value as moto's property gives it at that moment.
    """

    def __init__(self, queue):
        self._queue = queue
        keys = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            keys += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            keys += queue.KMS_ATTRIBUTES
        self._keys = keys

    def __getitem__(self, key):
        if key not in self._keys:
            raise KeyError(key)
        queue = self._queue
        if key == "Policy" and queue.policy:
            value = queue.policy
        elif key == "RedrivePolicy" and queue.redrive_policy:
            value = json.dumps(queue.redrive_policy)
        else:
            value = getattr(queue, camelcase_to_underscores(key))
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self):
        return iter(self._keys)

    def __len__(self):
        return len(self._keys)


def _get_queue_attributes(self, queue_name, attribute_names):
    # "All" hands moto's own mapping to the response: give it a plain dict, as moto does.
    attributes = _original_get_queue_attributes(self, queue_name, attribute_names)
    return dict(attributes) if isinstance(attributes, _QueueAttributes) else attributes


class _RequestBody(io.RawIOBase):
    """A request's body: exactly Content-Length bytes of the connection, never more."""

    def __init__(self, rfile, length):
        self._rfile = rfile
        self._left = length

    def readable(self):
        return True

    def readinto(self, buffer):
        if self._left <= 0:
            return 0
        view = memoryview(buffer)
        count = self._rfile.readinto(view[: min(len(view), self._left)])
        if not count:
            self._left = 0
            return 0
        self._left -= count
        return count

    def drain(self):
        """Reads what the application left of the body; False when the client went away first."""
        while self._left > 0:
            if not self.read(min(self._left, 65536)):
                return False
        return True


# Set while a kept-alive request runs, so that werkzeug's after-response drain (which reads
# everything the socket holds: on a kept-alive connection, the client's next request) reads nothing.
_keeping_alive = threading.local()


class _DrainSelectors:
    """werkzeug.serving's `selectors`, whose select finds nothing to drain on a kept-alive request."""

    class DefaultSelector:
        def __init__(self):
            self._selector = _selectors.DefaultSelector()

        def register(self, *args, **kwargs):
            return self._selector.register(*args, **kwargs)

        def select(self, timeout=None):
            if getattr(_keeping_alive, "on", False):
                return []
            return self._selector.select(timeout)

        def close(self):
            self._selector.close()

    def __getattr__(self, name):
        return getattr(_selectors, name)


def _make_environ(self):
    environ = _original_make_environ(self)
    body = None
    length = self.headers.get("Content-Length")
    chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
    wants_close = self.headers.get("Connection", "").lower() == "close"
    if self.request_version == "HTTP/1.1" and not chunked and not wants_close:
        try:
            size = 0 if length is None else int(length)
        except ValueError:
            size = -1
        if size >= 0:
            body = _RequestBody(self.rfile, size)
            environ["wsgi.input"] = body
    self._request_body = body
    _keeping_alive.on = body is not None
    return environ


def _send_header(self, keyword, value):
    if (
        keyword.lower() == "connection"
        and value.lower() == "close"
        and getattr(self, "_request_body", None) is not None
    ):
        return None  # http.server keeps the connection open unless a header says otherwise
    return _original_send_header(self, keyword, value)


def _run_wsgi(self):
    try:
        _original_run_wsgi(self)
    finally:
        _keeping_alive.on = False
    # Cleared before the next request line is read: an error http.server answers itself (a bad
    # request line) must close the connection as shipped.
    body, self._request_body = self._request_body, None
    if body is None or self.close_connection or not body.drain():
        self.close_connection = True


_selectors = werkzeug_serving.selectors
_original_make_environ = WSGIRequestHandler.make_environ
_original_send_header = WSGIRequestHandler.send_header
_original_run_wsgi = WSGIRequestHandler.run_wsgi
_original_get_backend_for_host = werkzeug_app.DomainDispatcherApplication.get_backend_for_host
_original_change_visibility = sqs_models.Message.change_visibility
_original_get_queue_attributes = sqs_models.SQSBackend.get_queue_attributes
_original_unix_time = sqs_models.unix_time
_original_unix_time_millis = sqs_models.unix_time_millis

if moto.__version__ in PATCHED_VERSIONS:
    sqs_models.unix_time = _unix_time
    sqs_models.unix_time_millis = _unix_time_millis
    sqs_models.Queue.wait_for_messages = _wait_for_messages
    werkzeug_app.DomainDispatcherApplication.get_backend_for_host = _get_backend_for_host
    WSGIRequestHandler.log_request = _log_request
    sqs_models.Queue.attributes = property(_QueueAttributes)
    sqs_models.SQSBackend.get_queue_attributes = _get_queue_attributes
    sqs_models.Message.change_visibility = _change_visibility
    WSGIRequestHandler.make_environ = _make_environ
    WSGIRequestHandler.send_header = _send_header
    WSGIRequestHandler.run_wsgi = _run_wsgi
    werkzeug_serving.selectors = _DrainSelectors()
    # A response goes out in two writes (headers, then body): with Nagle's algorithm on, a kept-alive
    # connection holds the body back until the client's delayed ACK, about 40 ms a request here.
    WSGIRequestHandler.disable_nagle_algorithm = True

if __name__ == "__main__":
    main(sys.argv[1:])
