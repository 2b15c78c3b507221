"""A succeeded job's result object is read again after a failed read, within a bound."""

from __future__ import annotations

from services.api.jobs import result_object


class Flaky:
    """A renderer that fails ``failures`` times, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    async def __call__(self, job, payload):
        self.calls += 1
        if self.calls <= self.failures:
            raise TimeoutError("no answer from the planner")
        return {"virtualmachine": {"id": payload["vm_id"]}}


async def test_a_failed_read_is_tried_again_and_the_job_gets_its_object():
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    render = Flaky(failures=2)
    result = await result_object(render, None, {"vm_id": "v1"}, sleep=sleep)

    assert result == {"virtualmachine": {"id": "v1"}}
    assert render.calls == 3 and waits == [0.5, 1.0]


async def test_past_the_last_attempt_the_job_still_ends_succeeded():
    async def sleep(seconds: float) -> None:
        pass

    render = Flaky(failures=100)
    result = await result_object(render, None, {"vm_id": "v1"}, attempts=4, sleep=sleep)

    assert result == {"success": True} and render.calls == 4
