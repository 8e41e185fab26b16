from __future__ import annotations

import pytest

from musiclens.errors import MusicLensError, RegistryError
from musiclens.registry import Registry


def test_register_get_and_list() -> None:
    reg: Registry[int] = Registry("thing")
    reg.register("one", 1, help="the first")

    @reg.register("two")
    def two() -> int:
        """Second thing."""
        return 2

    assert reg.get("one") == 1
    assert reg.get("two")() == 2
    assert reg.names() == ["one", "two"]
    assert reg.describe() == {"one": "the first", "two": "Second thing."}
    assert "one" in reg and len(reg) == 2


def test_unknown_name_lists_valid_names_and_suggests() -> None:
    reg: Registry[int] = Registry("model RDM")
    reg.register("pitch_height", 1)
    reg.register("chroma", 2)
    with pytest.raises(RegistryError) as err:
        reg.get("chorma")
    msg = str(err.value)
    assert "unknown model RDM 'chorma'" in msg and "Did you mean 'chroma'" in msg and "pitch_height" in msg
    assert isinstance(err.value, MusicLensError) and isinstance(err.value, KeyError)


def test_duplicate_needs_overwrite_and_bad_names_rejected() -> None:
    reg: Registry[int] = Registry("thing")
    reg.register("a", 1)
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("a", 2)
    reg.register("a", 3, overwrite=True)
    assert reg.get("a") == 3
    with pytest.raises(RegistryError):
        reg.register("has space", 1)
    reg.unregister("a")
    assert "a" not in reg
