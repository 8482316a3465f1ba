"""Whether a Ray cluster refuses this run for its authentication token, and the error saying so.

A head that ``ray start --head`` started where ``~/.ray/auth_token`` exists (or under
``RAY_AUTH_MODE=token``) has Ray's token authentication on: every call to it must carry the
cluster's token. A driver sends its token only under ``RAY_AUTH_MODE=token``; ``ray.init`` turns
that on by itself only for a cluster it finds on this machine (``address: auto`` without
``RAY_ADDRESS``) and only where it finds a token, never for an address that is named (in the spec
or in ``RAY_ADDRESS``). The cluster refuses a call without its token, or with another one, and
``ray.init`` asks again for ~20 s before it raises ``ConnectionError("Failed to connect to Ray
cluster at …")``, with Ray's ``AuthenticationError`` only as text in its cause (measured with
ray 2.60). Under ``RAY_AUTH_MODE=token`` without any token, ``ray.init`` raises
``AuthenticationError`` at once.

So before ``ray.init`` joins ``HOST:PORT``, Ray's own GCS client asks it once, within what is left
of CURATE_RAY_CONNECT_DEADLINE (it answers in a few milliseconds): it sends the token ray.init
would send (for a cluster found on this machine, after Ray's own function has turned token
authentication on as ray.init is about to), and a refusal is Ray's ``AuthenticationError``.
Whatever else it meets is left to ray.init, as before; so is ``ray://`` (Ray's client).

A missing token and a wrong one are told apart on this side: the cluster says only "missing or
incorrect", but whether this run sent a token, and from where, is Ray's state in this process.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from curate.errors import CurateError
from curate_ray.address import ToJoin, target

MODE, TOKEN, TOKEN_PATH = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"  # Ray's own names
_WHERE_TOKENS_GO = (f"in {TOKEN}, in a file named by {TOKEN_PATH}, or in ~/.ray/auth_token "
                    f"(Ray reads them in that order)")
_CLUSTERS_TOKEN = "the cluster's token ('ray get-auth-token' on its head prints it)"


def check_token(joining: ToJoin, deadline: float) -> None:
    """Raise the CurateError saying so if the cluster ray.init is about to join for ``joining``
    refuses this run's token (or its lack of one); return otherwise, and where the question cannot
    be asked before ``deadline`` (a ``time.monotonic()`` value): ray.init asks."""
    if "://" in joining.dials or target(joining.dials) is None:
        return  # Ray's client (ray://), or a form ray.init itself rejects
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
        from ray._private.authentication.authentication_utils import is_token_auth_enabled  # noqa: F401
        from ray._raylet import AuthenticationTokenLoader, GcsClient  # noqa: F401
        from ray.exceptions import AuthenticationError
    except ImportError:  # a Ray without token authentication (or with other names for it: ray.init asks)
        return
    if joining.found_here:
        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)  # what ray.init does next
    sends_token, has_token, _ = _token_state()
    if sends_token and not has_token:
        return  # ray.init says so at once; Ray's GCS client would abort this process (a failed check in C++)
    refused = threading.Event()
    done = threading.Event()

    def ask() -> None:
        try:
            GcsClient(address=joining.dials)
        except AuthenticationError:
            refused.set()
        except Exception:  # whatever else it is, ray.init meets it too and says so
            pass
        finally:
            done.set()

    # A thread of its own: Ray's client waits for an address that stops answering as long as ray.init does.
    threading.Thread(target=ask, name="curate-ray-token-check", daemon=True).start()
    if done.wait(max(0.0, deadline - time.monotonic())) and refused.is_set():
        raise token_error(joining.where)


def no_token(exc: BaseException) -> bool:
    """Whether ``ray.init`` raised Ray's error for a run under RAY_AUTH_MODE=token without a token
    (or with a token file it cannot read)."""
    try:
        from ray.exceptions import AuthenticationError
    except ImportError:
        return False
    return isinstance(exc, AuthenticationError)


def token_error(where: str, said: BaseException | None = None) -> CurateError:
    """The error for a cluster at ``where`` that wants a token this run does not send, says how to send
    it; ``said`` is what Ray raised, where it has more to say (an unreadable token file)."""
    sends_token, has_token, source = _token_state()
    if sends_token and has_token:
        return CurateError(
            f"the Ray cluster at {where} refused the authentication token this run sent (from {source}): "
            "it is not the cluster's token",
            hint=f"give the run {_CLUSTERS_TOKEN} {_WHERE_TOKENS_GO}",
        )
    if sends_token:
        detail = getattr(said, "message", None)
        return CurateError(
            f"{MODE}=token, and this run has no authentication token to send to the Ray cluster at {where}"
            + (f": {detail}" if detail else ""),
            hint=f"put {_CLUSTERS_TOKEN} {_WHERE_TOKENS_GO}",
        )
    asks = f"the Ray cluster at {where} asks for an authentication token (Ray's token authentication is on there)"
    if has_token:
        mode = os.environ.get(MODE)
        return CurateError(
            f"{asks}, and this run sends none: it has one ({source}), but Ray sends it only under {MODE}=token "
            f"({MODE} is {'unset' if mode is None else repr(mode)} here)",
            hint=f"run with {MODE}=token (if that token is not the cluster's, give the run {_CLUSTERS_TOKEN} "
            f"{_WHERE_TOKENS_GO})",
        )
    return CurateError(f"{asks}, and this run has none",
                       hint=f"run with {MODE}=token and {_CLUSTERS_TOKEN} {_WHERE_TOKENS_GO}")


def _token_state() -> tuple[bool, bool, str]:
    """Whether this process sends a token (Ray's authentication mode is token), whether Ray finds one
    to send, and where it reads it from."""
    from ray._private.authentication.authentication_utils import is_token_auth_enabled
    from ray._raylet import AuthenticationTokenLoader
    from ray.exceptions import AuthenticationError

    try:
        has_token = AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True)
    except AuthenticationError:  # RAY_AUTH_TOKEN_PATH names a file it cannot read
        has_token = False
    if os.environ.get(TOKEN):
        source = TOKEN
    elif os.environ.get(TOKEN_PATH):
        source = f"{TOKEN_PATH}: {os.environ[TOKEN_PATH]}"
    else:
        source = str(Path.home() / ".ray" / "auth_token")
    return is_token_auth_enabled(), has_token, source
