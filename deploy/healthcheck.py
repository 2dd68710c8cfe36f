"""Container healthcheck: exit 0 when the service answers 200 on /readyz, else 1.

The bento's image (python:3.11-slim) has no curl or wget, so docker-compose.yml runs this with
the image's own python. Standard library only, so it runs before (and without) the service's
dependencies being importable.

    python deploy/healthcheck.py [URL]     # default http://127.0.0.1:3000/readyz
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:3000/readyz"
# Below compose's healthcheck timeout, so a hung server reads as unhealthy, not as a killed check.
TIMEOUT_S = 4.0


def check(url: str) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return response.status == 200, f"{url}: HTTP {response.status}"
    except urllib.error.HTTPError as e:  # 4xx/5xx, e.g. 503 while models load
        return False, f"{url}: HTTP {e.code}"
    except (urllib.error.URLError, OSError) as e:
        return False, f"{url}: {getattr(e, 'reason', e)}"


def main(argv: list[str]) -> int:
    healthy, message = check(argv[1] if len(argv) > 1 else DEFAULT_URL)
    print(message)  # docker keeps the last output of each check: `docker inspect` shows why
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
