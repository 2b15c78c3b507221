"""snapdeploy's services; each runs with ``python -m services.<name>``."""
