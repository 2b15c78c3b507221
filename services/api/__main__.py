from services.api.main import build
from shared.service import main

main(build)
