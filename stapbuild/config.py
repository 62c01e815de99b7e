"""Project settings from ``[tool.stapbuild]`` in pyproject.toml."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from stapbuild.store import project_root


@dataclass(frozen=True)
class Settings:
    # Named kernel sets from [tool.stapbuild.kernels]; "default" is what a
    # build without kernels= uses.
    kernel_sets: dict[str, list[str]] = field(
        default_factory=lambda: {"default": ["6.1", "6.12"]})
    default_kernel: str = "6.1"
    # Where the heavy per-kernel work runs: "" (here) or dask://HOST:PORT
    # (see stapbuild.executor); the doit variable executor= overrides it.
    executor: str = ""

    @property
    def kernels(self) -> list[str]:
        return self.kernel_sets.get("default", ["6.1", "6.12"])

    def expand(self, specs: list[str]) -> list[str]:
        """kernels=fleet,6.12-rt: set names expand to their members, in order,
        without repeats; anything else is a release or a series."""
        out: list[str] = []
        for spec in specs:
            for item in self.kernel_sets.get(spec, [spec]):
                if item not in out:
                    out.append(item)
        return out


def load_settings(root: Path | None = None) -> Settings:
    path = (root or project_root()) / "pyproject.toml"
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return Settings()
    table = data.get("tool", {}).get("stapbuild", {})
    defaults = Settings()
    sets = table.get("kernels", defaults.kernel_sets)
    if isinstance(sets, list):          # the older form: kernels = [...]
        sets = {"default": sets}
    return Settings(kernel_sets={str(k): [str(x) for x in v] for k, v in sets.items()},
                    default_kernel=str(table.get("default_kernel", defaults.default_kernel)),
                    executor=str(table.get("executor", defaults.executor)))


def probes_dir(root: Path | None = None) -> Path:
    """probes/ of the checkout, or ``$STAPBUILD_PROBES`` (a directory)."""
    env = os.environ.get("STAPBUILD_PROBES")
    if env and root is None:
        return Path(env).resolve()
    return (root or project_root()) / "probes"


def probe_script(spec: str, root: Path | None = None) -> tuple[str, Path]:
    """``probe=`` names probes/NAME.stp, or is a path to a .stp file.
    Returns (probe name, script path)."""
    as_path = Path(spec)
    if spec.endswith(".stp") or "/" in spec:
        return as_path.stem, as_path.resolve()
    return spec, probes_dir(root) / f"{spec}.stp"


def all_probes(root: Path | None = None) -> list[str]:
    return sorted(p.stem for p in probes_dir(root).glob("*.stp"))
