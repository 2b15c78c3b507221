"""The agent's vCenter layer: session, tasks, faults, inventory and operations (pyvmomi, blocking)."""

from services.hypervisor_agent.vsphere.faults import VsphereError, translate
from services.hypervisor_agent.vsphere.session import VsphereSession
from services.hypervisor_agent.vsphere.tasks import TaskOutcome

__all__ = ["TaskOutcome", "VsphereError", "VsphereSession", "translate"]
