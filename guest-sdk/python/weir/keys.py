"""Keyed hashes through the host: the key is a secret the pipeline grants by name
(`grants.keys`) and never enters the plugin."""

from weir._host import call, needs, wit_keys


def hmac_sha256(name: str, messages: list[bytes]) -> list[bytes]:
    """HMAC-SHA256 of each message under the granted key `name`, in order. A name the
    grants do not hold raises ConfigError."""
    return call(needs(wit_keys, "keys").hmac_sha256, name, messages)
