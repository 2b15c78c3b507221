from services.hypervisor_agent.main import build
from shared.service import main

main(build)
