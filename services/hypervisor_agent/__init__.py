"""The hypervisor agent: the only code that talks to vCenter (one zone = one datacenter)."""
