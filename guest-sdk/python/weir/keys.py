"""Keyed hashes through the host: the key is a secret the pipeline grants by name
(`grants.keys`) and never enters the plugin."""

from weir._host import wit_keys


def hmac_sha256(name: str, messages: list[bytes]) -> list[bytes]:
    """HMAC-SHA256 of each message under the granted key `name`, in order."""
    if wit_keys is None:
        raise RuntimeError("weir.keys needs the host: it is not available in plain CPython")
    return wit_keys.hmac_sha256(name, messages)
