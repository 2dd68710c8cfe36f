"""Re-vendor a CRD's published schema from a clone of its repository (never run by the tests).

    git clone https://github.com/kedacore/keda /tmp/keda
    python tests/deploy/crds/refresh.py keda /tmp/keda [REV]

writes tests/deploy/crds/<file> from the CRD at REV (default HEAD): only the served version's
openAPIV3Schema, as published, with where it came from. Then update the table in README.md with
the line this prints, and run tests/deploy/test_crds.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent

# What to vendor: the CRD file in its repository and the version our manifests use.
SOURCES = {
    "keda": {
        "file": "keda.sh_scaledobjects.v1alpha1.json",
        "repository": "https://github.com/kedacore/keda",
        "path": "config/crd/bases/keda.sh_scaledobjects.yaml",
        "version": "v1alpha1",
    },
    "kserve": {
        "file": "serving.kserve.io_inferenceservices.v1beta1.json",
        "repository": "https://github.com/kserve/kserve",
        # The full CRD: config/crd/minimal/ drops the embedded pod specs' fields, which would
        # leave a typo in our container unseen.
        "path": "config/crd/full/serving.kserve.io_inferenceservices.yaml",
        "version": "v1beta1",
    },
}


def git(clone: str, *args: str) -> str:
    return subprocess.run(["git", "-C", clone, *args], check=True, capture_output=True, text=True).stdout


def refresh(name: str, clone: str, rev: str = "HEAD") -> str:
    source = SOURCES[name]
    commit = git(clone, "rev-parse", f"{rev}^{{commit}}").strip()
    # Both projects are Apache-2.0, which allows redistributing the schema with a notice.
    license_text = git(clone, "show", f"{commit}:LICENSE")
    if "Apache License" not in license_text or "Version 2.0" not in license_text:
        sys.exit(f"{name}: LICENSE at {commit} is no longer Apache-2.0: check before vendoring")
    crd = yaml.safe_load(git(clone, "show", f"{commit}:{source['path']}"))
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == source["version"] and v["served"]]
    header = {
        "source": {
            "repository": source["repository"],
            "commit": commit,
            "path": source["path"],
            "license": "Apache-2.0",
        },
        "group": crd["spec"]["group"],
        "version": source["version"],
        "kind": crd["spec"]["names"]["kind"],
    }
    # The schema on one line: KServe's is over 600 KB, three times that indented.
    body = json.dumps(header, indent=2)[:-2]
    body += ',\n  "openAPIV3Schema": ' + json.dumps(served["schema"]["openAPIV3Schema"], separators=(",", ":"))
    (HERE / source["file"]).write_text(body + "\n}\n")
    return f"| {header['kind']} | {source['repository']} | `{commit}` | `{source['path']}` | Apache-2.0 |"


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or sys.argv[1] not in SOURCES:
        sys.exit(__doc__)
    print(refresh(*sys.argv[1:]))
