"""Every process of the planner, by its saga kind, and how a saga row becomes its flow's state."""

from __future__ import annotations

from services.planner import adoption, deploy, lifecycle, saga, snapshots, steps

# Every process of the planner, by its saga kind.
FLOWS = {
    flow.kind: flow
    for flow in (
        deploy.FLOW,
        snapshots.TAKE_FLOW,
        snapshots.REMOVE_FLOW,
        snapshots.REVERT_FLOW,
        adoption.FLOW,
        lifecycle.START_FLOW,
        lifecycle.STOP_FLOW,
        lifecycle.REBOOT_FLOW,
        lifecycle.DESTROY_FLOW,
    )
}


def load(process: saga.Saga) -> tuple[steps.Flow, saga.Saga]:
    """The process's flow, and its typed state (read the old way for rows from before)."""
    flow = FLOWS[process.kind]
    if process.legacy:
        return flow, flow.legacy(process)
    process.model = flow.state.model_validate(process.raw["state"])
    if process.error is not None:
        process.error = steps.Failure(**process.error)
    return flow, process
