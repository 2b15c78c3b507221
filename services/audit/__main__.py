from services.audit.main import build
from shared.service import main

main(build)
