"""What pyproject.toml packages exists: every package-data pattern matches a file, and every
C extension's source and module path are where the packages are."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
    "setuptools"
]


@pytest.mark.parametrize(
    ("package", "pattern"),
    [(p, pattern) for p, patterns in SETUPTOOLS["package-data"].items() for pattern in patterns],
)
def test_every_package_data_pattern_names_a_file(package: str, pattern: str) -> None:
    assert any((ROOT / package.replace(".", "/")).glob(pattern)), f"{package}: {pattern}"


@pytest.mark.parametrize("ext", SETUPTOOLS["ext-modules"], ids=lambda e: e["name"])
def test_every_extension_builds_from_its_package(ext: dict[str, object]) -> None:
    package = Path(*str(ext["name"]).split(".")[:-1])
    assert (ROOT / package / "__init__.py").is_file()
    for source in ext["sources"]:  # type: ignore[attr-defined]
        assert (ROOT / source).is_file() and Path(source).parent == package
