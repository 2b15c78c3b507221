"""Services as real processes (snapdeploy.local.processes)."""

from snapdeploy.local.processes import ROOT, ServiceProcess, service_of

__all__ = ["ROOT", "ServiceProcess", "service_of"]
