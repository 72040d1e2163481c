"""The compat modules hold for exactly the versions they were written for."""

from src import compat


def test_every_compat_module_names_its_package_and_version() -> None:
    """Each module declares PACKAGE and WRITTEN_FOR, so the check below covers it."""
    modules = compat.modules()
    assert modules, "src/compat has no modules"
    for module in modules:
        assert isinstance(module.PACKAGE, str) and isinstance(module.WRITTEN_FOR, str)


def test_installed_versions_are_the_ones_the_patches_were_written_for() -> None:
    """A dependency upgraded under a patch or a private-API use fails here, loudly."""
    assert compat.mismatches() == []
