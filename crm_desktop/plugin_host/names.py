"""The one rule for plugin names and manifest size, used by the manifest, bundles and the scaffold.

A plugin's name is its identity everywhere: the folder, ``plugin.json``, the bundle file
(``<name>-<version>.crmplugin``), the table prefix (``-`` becomes ``_``), the keyring service
and the audit log's ``plugin:<name>``. So there is exactly one rule, here: lowercase letters
and digits in words joined by single hyphens, starting with a letter, at most
:data:`MAX_NAME_LENGTH` characters. No ``_``: ``my_plugin`` and ``my-plugin`` would share a
table prefix. A ``plugin.json`` may be at most :data:`MAX_MANIFEST_BYTES`, read from a folder
or from inside a bundle alike.
"""

from __future__ import annotations

import re
from typing import TypeGuard

#: lowercase words of letters and digits joined by single hyphens, starting with a letter
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
MAX_NAME_LENGTH = 64
#: the largest ``plugin.json`` accepted (folder or bundle)
MAX_MANIFEST_BYTES = 256 * 1024
#: what a valid name looks like, for error messages
NAME_RULE = (f"lowercase letters, digits and single hyphens, starting with a letter, "
             f"at most {MAX_NAME_LENGTH} characters, e.g. \"sample-plugin\"")


def is_valid_name(name: object) -> TypeGuard[str]:
    """True if ``name`` is a valid plugin name (:data:`NAME_RULE`)."""
    return isinstance(name, str) and len(name) <= MAX_NAME_LENGTH and NAME_RE.match(name) is not None
