from services.storage.main import build
from shared.service import main

main(build)
