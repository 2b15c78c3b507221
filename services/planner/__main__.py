from services.planner.main import build
from shared.service import main

main(build)
