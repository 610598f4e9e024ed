"""Which authentication charrec's Ray driver uses on a cluster: the cluster's own, asked first.

A Ray cluster either requires a token on every call (its nodes run with `RAY_AUTH_MODE=token`)
or takes none, and a driver has to match it both ways: without the token the cluster refuses
the driver, and a driver in token mode refuses the cluster's calls back to it (it owns every
task), so every trial fails. Files on the driver's machine say nothing about the cluster: any
local Ray or `ray start` leaves a `~/.ray/auth_token` behind.

So `cluster_auth_mode(address)` asks the cluster's GCS with one call, first without a token (as
Ray connects to an explicit address by default) and, only if that is refused, with the token at
hand (Ray's order: `RAY_AUTH_TOKEN`, the file `RAY_AUTH_TOKEN_PATH` names, `~/.ray/auth_token`).
A cluster that wants a token when none is at hand, or refuses the one at hand, is one
`ClusterError` line before anything starts. `use_auth_mode` then sets that mode for this
process's `ray.init`, and back again afterwards.

The asking runs in a short child process (`python -m charrec.sweep.ray_auth ADDRESS`): it
switches Ray's process-wide settings between its two tries, and Ray's C++ client logs every
refusal to stderr; neither should reach the driver. It uses Ray's private `ray._raylet` API
(Ray 2.60); with a Ray that lacks it, or Kubernetes token auth, charrec leaves the choice to Ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from charrec.errors import ClusterError

AUTH_MODE = "RAY_AUTH_MODE"
PROBE_TIMEOUT_S = 5.0  # per call to the GCS; the TCP probe of the address has already answered
TOKEN_HELP = ("give charrec the cluster's token in RAY_AUTH_TOKEN, in ~/.ray/auth_token or in "
              "the file RAY_AUTH_TOKEN_PATH names (`ray get-auth-token` on the head prints it)")


def cluster_auth_mode(address: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """"disabled" or "token": what the cluster at `address` (HOST:PORT) requires and the token
    at hand satisfies. None: charrec cannot ask this Ray; Ray's own rules apply. ClusterError:
    the cluster wants a token that is not at hand, or refuses the one at hand."""
    try:
        import ray._raylet  # noqa: F401
    except ImportError:  # no Ray (or a stand-in without its private API): Ray's own rules
        return None
    if os.environ.get("RAY_ENABLE_K8S_TOKEN_AUTH", "").lower() in ("1", "true"):
        return None
    try:
        child = subprocess.run([sys.executable, "-m", __name__, address, str(timeout)],
                               capture_output=True, text=True, timeout=4 * timeout + 60)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"the Ray cluster at {address} did not answer charrec's "
                           f"authentication probe") from None
    lines = child.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        answer = {}
    if "mode" in answer:
        return answer["mode"]
    if "refusal" in answer:
        raise ClusterError(f"the Ray cluster at {address} {answer['refusal']}: {TOKEN_HELP}")
    if "error" in answer:
        raise ClusterError(f"the Ray cluster at {address} did not answer charrec's "
                           f"authentication probe: {answer['error']}")
    return None  # the probe itself broke (another Ray?): let Ray decide, as it would anyway


def use_auth_mode(mode: str | None) -> None:
    """Set RAY_AUTH_MODE for this process (None: unset it) and make Ray re-read it. Never
    "token" without a token at hand: Ray aborts the process then."""
    if mode is None:
        os.environ.pop(AUTH_MODE, None)
    else:
        os.environ[AUTH_MODE] = mode
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:
        return
    # the config first, then the token cache (as Ray's own tests reset them)
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


# ------------------------------------------------------------ the child process that asks


def token_source() -> str | None:
    """Where Ray would take the token from (its order), or None if no token is at hand."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return "RAY_AUTH_TOKEN"
    named = os.environ.get("RAY_AUTH_TOKEN_PATH")
    path = Path(named).expanduser() if named else Path.home() / ".ray" / "auth_token"
    try:
        has_text = bool(path.read_text(encoding="utf-8").strip())
    except OSError:
        has_text = False
    if named and not has_text:
        raise ClusterError(f"RAY_AUTH_TOKEN_PATH names {named}, which holds no token")
    return str(path) if has_text else None


def ask_cluster(address: str, timeout: float) -> dict[str, Any]:
    """Runs in the child: {"mode": ...}, {"refusal": ...} or {"error": ...}."""
    from ray._raylet import InnerGcsClient
    from ray.exceptions import AuthenticationError

    def answers(mode: str) -> bool:
        use_auth_mode(mode)
        try:
            client = InnerGcsClient.standalone(address, None, int(timeout * 1000))
            client.internal_kv_get(b"charrec-auth-probe", None, timeout)
        except AuthenticationError:
            return False
        return True

    try:
        if answers("disabled"):
            return {"mode": "disabled"}
        try:
            source = token_source()
        except ClusterError as error:
            return {"refusal": f"requires an authentication token, and {error}"}
        if source is None:
            return {"refusal": "requires an authentication token and none is at hand"}
        if answers("token"):
            return {"mode": "token"}
        return {"refusal": f"refused the authentication token at hand (from {source})"}
    except Exception as error:  # noqa: BLE001 - any other failure is reported as one line
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return {"error": lines[0] if lines else type(error).__name__}


if __name__ == "__main__":
    print(json.dumps(ask_cluster(sys.argv[1], float(sys.argv[2]))), flush=True)
