"""ppattack's built-in attacks, registered in pyproject.toml under ``ppattack.attacks``."""
