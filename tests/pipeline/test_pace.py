"""pipeline.pace: a thread that opted in lets a thread waiting for the GIL have it, without waiting for the switch
interval; one that did not (an event loop's) keeps it."""
import sys
import threading
import time

from ml_dash.client.pipeline.pace import pace, pace_this_thread


def _spin_until_stopped(opt_in: bool, give_up_after: float) -> bool:
    """Spin in Python calling pace() while the main thread tries to stop it; True if the main thread got to."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(30.0)  # without a voluntary release, the main thread would wait 30 s for the GIL
    try:
        started, stop, result = threading.Event(), [], {}

        def spin():
            if opt_in:
                pace_this_thread()
            started.set()
            deadline = time.monotonic() + give_up_after
            while not stop and time.monotonic() < deadline:
                sum(range(50))
                pace()
            result["stopped"] = bool(stop)

        thread = threading.Thread(target=spin)
        thread.start()
        started.wait()  # from here on the main thread needs the GIL back, which only pace() can give it
        stop.append(True)
        thread.join()
    finally:
        sys.setswitchinterval(old)
    return result["stopped"]


def test_pace_hands_the_gil_to_a_waiting_thread():
    """A writer thread calling pace() between pieces of work lets a waiting thread run long before the switch interval."""
    assert _spin_until_stopped(opt_in=True, give_up_after=10.0)


def test_pace_does_nothing_on_a_thread_that_did_not_opt_in():
    """On a thread that never called pace_this_thread (an event loop's), pace() keeps the GIL."""
    assert not _spin_until_stopped(opt_in=False, give_up_after=0.3)
