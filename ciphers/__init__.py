"""ppattack's built-in ciphers (installed as ``ppattack_ciphers``).

Each module holds one cipher class, registered in pyproject.toml under the entry-point group
``ppattack.ciphers`` exactly like a third-party plugin.
"""
