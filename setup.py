"""Package-list computation for the repository layout of DESIGN.md.

The top-level folders kernels/, server/, edge/ and proto/ install as subpackages of stc
(stc.kernels, ...), so nothing generic like ``server`` lands at the top of site-packages.
All other metadata lives in pyproject.toml.
"""

from setuptools import find_packages, setup

MAPPED = {"stc": "stc", "stc.kernels": "kernels", "stc.server": "server",
          "stc.edge": "edge", "stc.proto": "proto"}

packages: list[str] = []
package_dir: dict[str, str] = {}
for name, folder in MAPPED.items():
    package_dir[name] = folder
    packages.append(name)
    packages.extend(f"{name}.{sub}" for sub in find_packages(where=folder))

setup(packages=packages, package_dir=package_dir,
      package_data={"stc.proto": ["*.proto"]})
