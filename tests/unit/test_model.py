from __future__ import annotations

import pytest
from pydantic import ValidationError

from hyperlab.core.model import Nic, Node, _node_name, format_size, parse_size


@pytest.mark.parametrize(("text", "size"), [("4GiB", 4 << 30), ("512MiB", 512 << 20), ("1.5GiB", 3 << 29),
                                            ("64KiB", 64 << 10), ("1TiB", 1 << 40), (" 2 GiB ", 2 << 30)])
def test_sizes_take_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["4GB", "4096", "4", "GiB", "0MiB", "-1GiB", "four GiB", "", "4gib"])
def test_sizes_without_a_binary_unit_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_a_bare_number_is_refused_because_its_unit_is_ambiguous() -> None:
    with pytest.raises(ValueError, match="needs a unit"):
        parse_size(4096)


def test_sizes_print_back_in_the_largest_exact_unit() -> None:
    assert [format_size(s) for s in (4 << 30, 768 << 20, 1536, 3 << 29)] == ["4GiB", "768MiB", "1536B", "1536MiB"]


@pytest.mark.parametrize("name", ["DC1", "SVR-1", "a", "win2003-1", "ABCDEFGHIJKLMNO"])
def test_valid_computer_names(name: str) -> None:
    assert _node_name(name) == name


@pytest.mark.parametrize("name", ["ABCDEFGHIJKLMNOP", "svr_1", "-a", "a-", "1234", "dc 1", ""])
def test_invalid_computer_names(name: str) -> None:
    with pytest.raises(ValueError):
        _node_name(name)


def test_unknown_fields_are_mistakes() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Node.model_validate({"image": "debian-12", "imgae": "x"})


def test_macs_are_normalised_and_must_be_unicast() -> None:
    assert Nic.model_validate({"network": "a", "mac": "52:54:00:AA:BB:CC"}).mac == "52:54:00:aa:bb:cc"
    with pytest.raises(ValidationError, match="multicast"):
        Nic.model_validate({"network": "a", "mac": "01:00:5e:00:00:01"})


def test_models_are_immutable() -> None:
    node = Node.model_validate({"image": "debian-12"})
    with pytest.raises(ValidationError):
        node.vcpus = 4  # type: ignore[misc]
