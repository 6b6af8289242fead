"""Stop reaches every job of a session, running or waiting, and no other session's."""

from __future__ import annotations

from studio import Jobs


def test_a_second_job_of_a_session_does_not_hide_the_first_from_stop():
    # The flag used to be replaced when a session queued again, so Stop missed the running job.
    jobs = Jobs()
    jobs.queued("a")
    first = jobs.start("a")
    jobs.queued("a")  # the same API client queues another while the first runs
    jobs.queued("b")
    assert jobs.stop("a")
    assert first.is_set()
    second = jobs.start("a")
    assert second.is_set()  # stopped while it waited: it never runs
    other = jobs.start("b")
    assert not other.is_set()
    jobs.finish("a", first)
    jobs.finish("a", second)
    assert not jobs.stop("a")  # nothing left of that session


def test_jobs_start_in_the_order_they_were_queued():
    jobs = Jobs()
    jobs.queued("a")
    jobs.queued("a")
    first = jobs.start("a")
    first.set()
    assert not jobs.start("a").is_set()  # the second job's own flag
    assert not Jobs().start("x").is_set()  # a job that did not pass through the queue gets one too
