from shared.service import main
from tests.integration.probe import build

main(build)
