"""ppattack: a security benchmark for learnable (perceptual) image encryption.

    import ppattack
    cipher = ppattack.create_cipher("proposed", block_size=16)
    key = cipher.generate_key((3, 224, 224), seed=0)
    y = cipher.encrypt(x, key); x2 = cipher.decrypt(y, key)
"""
from .version import __version__  # noqa: E402,F401

import os as _os  # noqa: E402
import sys as _sys  # noqa: E402

# OpenMP threads that spin while waiting slow every CPU run down on a busy machine (measured:
# `ppattack run` 6.5 s -> 4.6 s on two cores). Only a default: it applies when torch is not yet
# imported and the user has not chosen a policy.
if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .attack import Attack, AttackResult  # noqa: E402
from .cipher import BlockCipher, Cipher, KeyField, UnitTransforms  # noqa: E402
from .errors import (DataError, KeyFileError, ParameterError, PluginError,  # noqa: E402
                     PPAttackError, ShapeError, UnknownComponentError)
from .key_parsing import load_key  # noqa: E402
from .keys import Key, save_key  # noqa: E402
from .registry import create_attack, create_cipher, list_attacks, list_ciphers  # noqa: E402
from .threat import THREAT_MODELS, ThreatView  # noqa: E402

__all__ = [
    "UnitTransforms",
    "Attack", "AttackResult", "BlockCipher", "Cipher", "DataError", "Key", "KeyField", "KeyFileError",
    "PPAttackError", "ParameterError", "PluginError", "ShapeError", "THREAT_MODELS",
    "ThreatView", "UnknownComponentError", "create_attack", "create_cipher", "list_attacks",
    "list_ciphers", "load_key", "save_key", "__version__",
]
